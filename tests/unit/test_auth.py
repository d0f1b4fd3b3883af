"""Sign-up, sign-in and its throttle, sessions, password change and account deletion."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from app.db import reading, writing
from app.models.accounts import Account
from app.models.auth import ApiKey, OAuthIdentity, SignInAttempt, UserSession
from app.models.jobs import CutoutJob
from app.models.ledger import CreditLot, LedgerEntry
from app.services.clock import FrozenClock
from app.services.identity import accounts, api_keys, auth
from app.services.jobs.storage import job_dir
from app.services.mail import Outbox
from app.settings import Settings
from app.usecases import accounts as usecases
from tests.mailbox import Mailbox

PASSWORD = "correct horse battery"


# What sign-up and sign-in read: the trial, the lots' lifetime, the sessions' lifetime.
SETTINGS = Settings(trial_credits=10, lot_valid_days=90, session_days=30, signups_per_hour=1000)


@pytest.fixture(autouse=True)
def _mail(outbox: Outbox, mailbox: Mailbox) -> None:
    global OUTBOX, MAILBOX
    OUTBOX, MAILBOX = outbox, mailbox


OUTBOX: Outbox
MAILBOX: Mailbox


def make_account(db: Engine, clock: FrozenClock, email: str = "ada@example.com") -> int:
    """A confirmed password account, as sign-up and the mailed link make it."""
    before = len(MAILBOX.to(email.strip().lower()))
    usecases.sign_up(
        db=db,
        clock=clock,
        settings=SETTINGS,
        outbox=OUTBOX,
        email=email,
        password=PASSWORD,
        address="192.0.2.200",
    )
    link = MAILBOX.link(email.strip().lower(), before + 1)
    token, _ = usecases.confirm_email(
        db=db,
        clock=clock,
        settings=SETTINGS,
        token=parse_qs(urlsplit(link).query)["token"][0],
        user_agent="t",
    )
    account_id = usecases.account_id_for_token(db=db, clock=clock, token=token)
    assert account_id is not None
    return account_id


def try_sign_in(
    db: Engine, clock: FrozenClock, email: str, password: str, address: str = "203.0.113.7"
) -> usecases.AccountSummary:
    _token, summary = usecases.sign_in(
        db=db,
        clock=clock,
        settings=SETTINGS,
        email=email,
        password=password,
        address=address,
        user_agent="t",
    )
    return summary


def new_session(db: Engine, clock: FrozenClock, account_id: int) -> str:
    with writing(db) as session:
        return auth.create_session(
            session=session,
            clock=clock,
            account_id=account_id,
            user_agent="Mozilla/5.0 phone",
            lifetime=timedelta(days=30),
        )


def resolve(db: Engine, clock: FrozenClock, token: str) -> int | None:
    return usecases.account_id_for_token(db=db, clock=clock, token=token)


def change_password(
    db: Engine, clock: FrozenClock, token: str, current: str, new: str, address: str = "192.0.2.9"
) -> None:
    usecases.change_password(
        db=db,
        clock=clock,
        ref=auth.session_ref(token),
        current=current,
        new=new,
        address=address,
    )


def oauth_account(
    db: Engine, clock: FrozenClock, provider: str, subject: str, email: str
) -> tuple[Account, bool]:
    with writing(db) as session:
        return auth.find_or_create_oauth_account(
            session=session,
            clock=clock,
            provider=provider,
            subject=subject,
            email=email,
            trial_credits=10,
            lot_valid_days=90,
        )


# Sign-in and its throttle


def test_sign_in_accepts_the_password_whatever_the_email_case(
    db: Engine, clock: FrozenClock
) -> None:
    account_id = make_account(db, clock)
    assert try_sign_in(db, clock, " ADA@example.com", PASSWORD).id == account_id


def test_wrong_password_and_unknown_email_get_the_same_answer(
    db: Engine, clock: FrozenClock
) -> None:
    make_account(db, clock)
    with pytest.raises(auth.WrongCredentials) as wrong_password:
        try_sign_in(db, clock, "ada@example.com", "not the password")
    with pytest.raises(auth.WrongCredentials) as unknown_email:
        try_sign_in(db, clock, "nobody@example.com", PASSWORD)
    assert str(wrong_password.value) == str(unknown_email.value) == "Wrong email or password."


def test_failures_for_one_email_are_slowed_down_and_counted_despite_rollback(
    db: Engine, clock: FrozenClock
) -> None:
    account_id = make_account(db, clock)
    for attempt in range(auth.EMAIL_THROTTLE.free):
        with pytest.raises(auth.WrongCredentials):
            # A different address each time: only the per-email count can stop this.
            try_sign_in(db, clock, "ada@example.com", "guess", address=f"198.51.100.{attempt}")
    # Even the right password is not checked while the email is cooling down.
    with pytest.raises(auth.TooManyAttempts, match=r"Try again in 2 s\.") as refused:
        try_sign_in(db, clock, "ada@example.com", PASSWORD, address="198.51.100.99")
    assert refused.value.retry_after_seconds == 2
    clock.advance(timedelta(seconds=2))
    with pytest.raises(auth.WrongCredentials):
        try_sign_in(db, clock, "ada@example.com", "guess again")
    # Each further failure doubles the wait.
    with pytest.raises(auth.TooManyAttempts, match=r"Try again in 4 s\."):
        try_sign_in(db, clock, "ada@example.com", PASSWORD)
    clock.advance(timedelta(seconds=4))
    assert try_sign_in(db, clock, "ada@example.com", PASSWORD).id == account_id
    # A correct password ends the run: the next mistake is not slowed down.
    with pytest.raises(auth.WrongCredentials):
        try_sign_in(db, clock, "ada@example.com", "typo")
    assert try_sign_in(db, clock, "ada@example.com", PASSWORD).id == account_id


def test_failures_from_one_address_are_slowed_down_across_emails(
    db: Engine, clock: FrozenClock
) -> None:
    make_account(db, clock, email="victim@example.com")
    make_account(db, clock, email="mallory@example.com")
    for n in range(auth.ADDRESS_THROTTLE.free):
        if n % 4 == 0:
            # Signing into one's own account does not wipe the address's record.
            try_sign_in(db, clock, "mallory@example.com", PASSWORD, address="192.0.2.1")
        with pytest.raises(auth.WrongCredentials):
            try_sign_in(db, clock, f"user{n}@example.com", "guess", address="192.0.2.1")
    with pytest.raises(auth.TooManyAttempts):
        try_sign_in(db, clock, "victim@example.com", PASSWORD, address="192.0.2.1")
    # Another address is unaffected, and the window forgets old failures.
    assert try_sign_in(db, clock, "victim@example.com", PASSWORD, address="192.0.2.2")
    clock.advance(auth.ADDRESS_THROTTLE.window + timedelta(seconds=1))
    assert try_sign_in(db, clock, "victim@example.com", PASSWORD, address="192.0.2.1")


def test_attempts_store_neither_emails_nor_addresses(db: Engine, clock: FrozenClock) -> None:
    with pytest.raises(auth.WrongCredentials):
        try_sign_in(db, clock, "ada@example.com", "guess", address="203.0.113.7")
    with writing(db) as session:
        keys = [row.key for row in session.exec(select(SignInAttempt)).all()]
        assert len(keys) == 2
        assert not any("ada" in key or "203.0" in key for key in keys)
        clock.advance(timedelta(hours=2))
        assert auth.prune_sign_in_attempts(session=session, clock=clock) == 2


# Sessions


def test_a_session_token_resolves_to_its_account_and_is_stored_hashed(
    db: Engine, clock: FrozenClock
) -> None:
    account_id = make_account(db, clock)
    token = new_session(db, clock, account_id)
    assert len(token) >= 43  # 32 random bytes
    assert resolve(db, clock, token) == account_id
    assert resolve(db, clock, token + "x") is None
    assert resolve(db, clock, "") is None
    with writing(db) as session:
        row = session.exec(
            select(UserSession).where(UserSession.token_hash == auth.token_hash(token))
        ).one()
        assert row.token_hash == auth.token_hash(token) and token not in row.token_hash
        assert row.user_agent == "Mozilla/5.0 phone"


def test_a_session_expires_after_thirty_days(db: Engine, clock: FrozenClock) -> None:
    token = new_session(db, clock, make_account(db, clock))
    clock.advance(timedelta(days=30) - timedelta(seconds=1))
    assert resolve(db, clock, token) is not None
    clock.advance(timedelta(seconds=1))
    assert resolve(db, clock, token) is None


def test_last_seen_is_written_sparsely(db: Engine, clock: FrozenClock) -> None:
    token = new_session(db, clock, make_account(db, clock))
    start = clock.now()
    clock.advance(timedelta(minutes=1))
    resolve(db, clock, token)
    mine = select(UserSession).where(UserSession.token_hash == auth.token_hash(token))
    with reading(db) as session:
        assert session.exec(mine).one().last_seen_at == start
    clock.advance(auth.LAST_SEEN_RESOLUTION)
    resolve(db, clock, token)
    with reading(db) as session:
        assert session.exec(mine).one().last_seen_at == clock.now()


def test_sign_out_ends_one_session_and_sign_out_everywhere_ends_all(
    db: Engine, clock: FrozenClock
) -> None:
    ada = make_account(db, clock)
    bob = make_account(db, clock, email="bob@example.com")
    phone, laptop, tablet = (new_session(db, clock, ada) for _ in range(3))
    bobs = new_session(db, clock, bob)
    with writing(db) as session:
        auth.sign_out(session=session, clock=clock, ref=auth.session_ref(phone))
    assert resolve(db, clock, phone) is None
    assert resolve(db, clock, laptop) == ada
    with writing(db) as session:  # the three above, and the one sign-up opened
        assert auth.sign_out_everywhere(session=session, clock=clock, account_id=ada) == 3
    assert resolve(db, clock, laptop) is None and resolve(db, clock, tablet) is None
    assert resolve(db, clock, bobs) == bob


# Password change


def test_change_password_checks_the_current_one_and_signs_out_other_browsers(
    db: Engine, clock: FrozenClock
) -> None:
    account_id = make_account(db, clock)
    here, elsewhere = new_session(db, clock, account_id), new_session(db, clock, account_id)
    with pytest.raises(auth.WrongPassword):
        change_password(db, clock, here, "not it", "a brand new secret")
    with pytest.raises(auth.PasswordRefused, match="at least 10"):
        change_password(db, clock, here, PASSWORD, "short")
    assert resolve(db, clock, elsewhere) == account_id  # refusals changed nothing
    change_password(db, clock, here, PASSWORD, "a brand new secret")
    assert resolve(db, clock, here) == account_id
    assert resolve(db, clock, elsewhere) is None
    assert try_sign_in(db, clock, "ada@example.com", "a brand new secret").id == account_id
    with pytest.raises(auth.WrongCredentials):
        try_sign_in(db, clock, "ada@example.com", PASSWORD)


def test_asking_for_the_current_password_is_throttled_like_sign_in(
    db: Engine, clock: FrozenClock
) -> None:
    """A stolen session cannot guess its way to the password (or to deleting the account)."""
    account_id = make_account(db, clock)
    stolen = new_session(db, clock, account_id)
    for n in range(auth.EMAIL_THROTTLE.free):
        with pytest.raises(auth.WrongPassword):
            change_password(db, clock, stolen, f"guess {n}", "a brand new secret")
    with pytest.raises(auth.TooManyAttempts):
        change_password(db, clock, stolen, PASSWORD, "a brand new secret")
    with pytest.raises(auth.TooManyAttempts):  # nor delete the account
        usecases.confirm_owner(
            db=db, clock=clock, ref=auth.session_ref(stolen), password=PASSWORD, address="192.0.2.9"
        )
    # The guesses counted against signing in too.
    with pytest.raises(auth.TooManyAttempts):
        try_sign_in(db, clock, "ada@example.com", PASSWORD)


def test_an_oauth_only_account_proves_itself_by_a_fresh_sign_in(
    db: Engine, clock: FrozenClock
) -> None:
    account, created = oauth_account(db, clock, "https://id.example", "42", "Eve@Example.com")
    assert created and account.password_hash is None and account.id is not None
    account_id = account.id
    token = new_session(db, clock, account_id)  # as the provider's callback opens it
    with pytest.raises(auth.WrongCredentials):
        try_sign_in(db, clock, "eve@example.com", "")
    clock.advance(auth.FRESH_SIGN_IN)
    with pytest.raises(auth.FreshSignInNeeded):
        change_password(db, clock, token, "", "now with a password")
    fresh = new_session(db, clock, account_id)
    change_password(db, clock, fresh, "", "now with a password")
    assert try_sign_in(db, clock, "eve@example.com", "now with a password").id == account_id


def test_every_password_sign_in_costs_one_argon2_verification(
    db: Engine, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """So the time taken tells nothing: an unknown address, an account made through a
    provider (no password) and a real password all do the same work."""
    make_account(db, clock)
    oauth_account(db, clock, "https://id.example", "7", "oauth.only@example.com")
    verified: list[str] = []
    real = accounts._hasher

    class Counting:
        def __getattr__(self, name: str) -> object:
            return getattr(real, name)

        def verify(self, password_hash: str, password: str) -> bool:
            verified.append(password)
            return real.verify(password_hash, password)

    monkeypatch.setattr(accounts, "_hasher", Counting())
    for email in ("ada@example.com", "oauth.only@example.com", "nobody@example.com"):
        with pytest.raises(auth.WrongCredentials):
            try_sign_in(db, clock, email, "a wrong password")
    assert verified == ["a wrong password"] * 3


# OAuth account linking


def test_oauth_login_links_to_the_account_with_that_email_then_reuses_the_identity(
    db: Engine, clock: FrozenClock
) -> None:
    account_id = make_account(db, clock)
    linked, created = oauth_account(db, clock, "https://id.example", "sub-1", "ADA@example.com")
    assert (linked.id, created) == (account_id, False)
    # The subject is what counts now, even if the provider reports another email later.
    again, created = oauth_account(db, clock, "https://id.example", "sub-1", "ada.new@example.com")
    assert (again.id, created) == (account_id, False)
    with reading(db) as session:
        assert len(session.exec(select(OAuthIdentity)).all()) == 1
        assert len(session.exec(select(CreditLot)).all()) == 1


# Deleting an account


def add_job(db: Engine, settings: Settings, clock: FrozenClock, owner: str, job_id: str) -> None:
    folder = job_dir(settings, job_id)
    folder.mkdir(parents=True)
    (folder / "cutout.png").write_bytes(b"png")
    with writing(db) as session:
        session.add(
            CutoutJob(
                id=job_id,
                owner=owner,
                original_name="me.jpg",
                width=1,
                height=1,
                created_at=clock.now(),
                expires_at=clock.now() + timedelta(hours=1),
            )
        )


def test_delete_account_removes_personal_data_and_keeps_the_ledger(
    db: Engine, clock: FrozenClock, settings: Settings
) -> None:
    account_id = make_account(db, clock)
    other_id = make_account(db, clock, email="bob@example.com")
    token = new_session(db, clock, account_id)
    add_job(db, settings, clock, auth.account_owner(account_id), "job-ada")
    add_job(db, settings, clock, auth.account_owner(other_id), "job-bob")
    with writing(db) as session:
        key = api_keys.create_api_key(
            session=session, clock=clock, account_id=account_id, name="script"
        )
        auth.find_or_create_oauth_account(
            session=session,
            clock=clock,
            provider="github",
            subject="7",
            email="ada@example.com",
            trial_credits=10,
            lot_valid_days=90,
        )
        entries_before = len(session.exec(select(LedgerEntry)).all())
    with pytest.raises(auth.WrongCredentials):
        try_sign_in(db, clock, "ada@example.com", "typo")

    here = new_session(db, clock, account_id)
    with pytest.raises(auth.WrongPassword):  # deleting asks for the password
        usecases.confirm_owner(
            db=db, clock=clock, ref=auth.session_ref(here), password="not it", address="192.0.2.9"
        )
    assert (
        usecases.confirm_owner(
            db=db, clock=clock, ref=auth.session_ref(here), password=PASSWORD, address="192.0.2.9"
        )
        == account_id
    )
    usecases.delete_account(db=db, clock=clock, settings=settings, account_id=account_id)

    with reading(db) as session:
        account = session.get(Account, account_id)
        assert account is not None
        assert account.email == auth.anonymous_email(account_id)
        assert account.password_hash is None and account.deleted_at == clock.now()
        for table in (UserSession, OAuthIdentity, ApiKey):
            assert session.exec(select(table).where(table.account_id == account_id)).all() == []
        assert [job.id for job in session.exec(select(CutoutJob)).all()] == ["job-bob"]
        assert len(session.exec(select(LedgerEntry)).all()) == entries_before
        assert session.exec(select(CreditLot).where(CreditLot.account_id == account_id)).all()
        # The email's attempts (keyed by it) went with it; the addresses' stay.
        keys = {a.key for a in session.exec(select(SignInAttempt)).all()}
        assert auth._attempt_key("email", "ada@example.com") not in keys
        assert auth._attempt_key("address", "203.0.113.7") in keys
    assert not job_dir(settings, "job-ada").exists()
    assert (job_dir(settings, "job-bob") / "cutout.png").exists()
    assert resolve(db, clock, token) is None
    with pytest.raises(api_keys.InvalidApiKey), writing(db) as session:
        api_keys.authenticate_api_key(session=session, clock=clock, raw_key=key.raw_key)
    clock.advance(timedelta(hours=2))
    with pytest.raises(auth.WrongCredentials):
        try_sign_in(db, clock, "ada@example.com", PASSWORD)
    # The address is free again: a new account (with a new trial) can use it.
    assert make_account(db, clock) != account_id
    with pytest.raises(auth.AccountGone):
        usecases.delete_account(db=db, clock=clock, settings=settings, account_id=account_id)


def test_account_owner_names_the_account() -> None:
    assert auth.account_owner(12) == "account:12"
