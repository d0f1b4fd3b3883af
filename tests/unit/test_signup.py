"""Sign-up confirmed by mail, password resets, the password rules, one trial per address.

Mail goes through Cutout's own outbox over SMTP to a real aiosmtpd server on 127.0.0.1; the
tests read the links from what it received, as a person would from their inbox.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from app.db import reading, writing
from app.models.accounts import Account
from app.models.auth import ApiKey, EmailLink, TrialClaim, UserSession
from app.models.ledger import CreditLot, LotSource
from app.services.billing.pricing import MILLI
from app.services.clock import FrozenClock
from app.services.identity import accounts, auth
from app.services.mail import Outbox
from app.settings import Settings
from app.usecases import accounts as usecases
from app.usecases.housekeeping import run_housekeeping
from tests.mailbox import Mailbox

PASSWORD = "correct horse battery"
SETTINGS = Settings(
    trial_credits=10,
    lot_valid_days=90,
    session_days=30,
    public_url="https://cutout.example",
    signups_per_hour=1000,
)
HERE = "203.0.113.7"


def token_of(link: str) -> str:
    return parse_qs(urlsplit(link).query)["token"][0]


def sign_up(db: Engine, clock: FrozenClock, outbox: Outbox, email: str, **changes: object):  # type: ignore[no-untyped-def]
    fields: dict = {"password": PASSWORD, "address": HERE, **changes}
    usecases.sign_up(db=db, clock=clock, settings=SETTINGS, outbox=outbox, email=email, **fields)


def confirm(db: Engine, clock: FrozenClock, link: str) -> tuple[str, str]:
    return usecases.confirm_email(
        db=db, clock=clock, settings=SETTINGS, token=token_of(link), user_agent="t"
    )


def trial_lots(db: Engine, email: str) -> list[int]:
    with reading(db) as session:
        account = session.exec(select(Account).where(Account.email == email)).one()
        lots = session.exec(
            select(CreditLot).where(
                CreditLot.account_id == account.id, CreditLot.source == LotSource.trial
            )
        ).all()
        return [lot.amount for lot in lots]


def test_sign_up_mails_a_link_and_the_trial_comes_with_confirmation(
    db: Engine, clock: FrozenClock, outbox: Outbox, mailbox: Mailbox
) -> None:
    sign_up(db, clock, outbox, "  Ada.Signup@Example.COM ", next_path="/pricing")
    with reading(db) as session:
        account = session.exec(select(Account)).one()
        assert account.email == "ada.signup@example.com"
        assert account.email_verified_at is None
        account_id = account.id
    assert trial_lots(db, "ada.signup@example.com") == []
    with pytest.raises(auth.EmailNotConfirmed):
        usecases.sign_in(
            db=db,
            clock=clock,
            settings=SETTINGS,
            email="ada.signup@example.com",
            password=PASSWORD,
            address=HERE,
            user_agent="t",
        )

    mail = mailbox.wait_for("ada.signup@example.com")
    assert "Confirm" in mail["Subject"] and mail["From"] == "Cutout <cutout@test.example>"
    link = mailbox.link("ada.signup@example.com")
    assert link.startswith("https://cutout.example/verify?token=")
    token, next_path = confirm(db, clock, link)
    assert next_path == "/pricing"
    assert usecases.account_id_for_token(db=db, clock=clock, token=token) == account_id
    assert trial_lots(db, "ada.signup@example.com") == [10 * MILLI]
    # The link worked once: a second use (or a scanner's) finds it spent.
    with pytest.raises(auth.LinkInvalid):
        confirm(db, clock, link)
    with reading(db) as session:  # only the link's hash was kept
        assert session.exec(select(EmailLink)).one().token_hash == auth.token_hash(token_of(link))


def test_a_taken_address_gets_the_same_answer_and_its_owner_a_mail(
    db: Engine, clock: FrozenClock, outbox: Outbox, mailbox: Mailbox
) -> None:
    email = "taken@example.com"
    sign_up(db, clock, outbox, email)
    confirm(db, clock, mailbox.link(email))
    sign_up(db, clock, outbox, email, password="somebody else's guess")  # no error either

    second = mailbox.wait_for(email, count=2)
    assert "already have" in second["Subject"] and "token=" not in second.get_content()
    with reading(db) as session:
        assert len(session.exec(select(Account)).all()) == 1
    # The owner's password was not touched.
    assert usecases.sign_in(
        db=db,
        clock=clock,
        settings=SETTINGS,
        email=email,
        password=PASSWORD,
        address=HERE,
        user_agent="t",
    )


def test_a_newer_sign_up_for_an_unconfirmed_address_voids_the_older_link(
    db: Engine, clock: FrozenClock, outbox: Outbox, mailbox: Mailbox
) -> None:
    email = "twice@example.com"
    sign_up(db, clock, outbox, email, password="first try password")
    sign_up(db, clock, outbox, email, password="second try password")
    first, second = mailbox.link(email, 1), mailbox.link(email, 2)
    with pytest.raises(auth.LinkInvalid):
        confirm(db, clock, first)
    confirm(db, clock, second)
    assert usecases.sign_in(
        db=db,
        clock=clock,
        settings=SETTINGS,
        email=email,
        password="second try password",
        address=HERE,
        user_agent="t",
    )


def test_a_confirmation_link_expires(
    db: Engine, clock: FrozenClock, outbox: Outbox, mailbox: Mailbox
) -> None:
    sign_up(db, clock, outbox, "late@example.com")
    link = mailbox.link("late@example.com")
    clock.advance(timedelta(hours=SETTINGS.verify_link_hours))
    with pytest.raises(auth.LinkInvalid):
        confirm(db, clock, link)
    with pytest.raises(auth.LinkInvalid):
        confirm(db, clock, link.replace("token=", "token=x"))
    # A day later housekeeping forgets the link (it names an address).
    clock.advance(timedelta(days=1, seconds=1))
    assert run_housekeeping(db=db, settings=SETTINGS, clock=clock).links == 1
    with reading(db) as session:
        assert session.exec(select(EmailLink)).all() == []


@pytest.mark.parametrize(
    ("email", "password", "confirm_with", "code"),
    [
        ("not-an-email", PASSWORD, PASSWORD, "email"),
        ("bob@example.com", "too short", "too short", "short"),
        ("bob@example.com", "qwertyuiop", "qwertyuiop", "common"),
        ("bob@example.com", "Password123", "Password123", "common"),
        ("bob@example.com", "aaaaaaaaaaaa", "aaaaaaaaaaaa", "common"),
        ("bobby.tables@example.com", "Bobby.Tables", "Bobby.Tables", "mine"),
        ("bob@example.com", PASSWORD, PASSWORD + "!", "differ"),
    ],
)
def test_sign_up_explains_each_refusal(
    db: Engine,
    clock: FrozenClock,
    outbox: Outbox,
    email: str,
    password: str,
    confirm_with: str,
    code: str,
) -> None:
    with pytest.raises(auth.AuthError) as refused:
        sign_up(db, clock, outbox, email, password=password, confirm=confirm_with)
    assert refused.value.code == code
    message = str(refused.value)
    assert message.endswith(".") and message == auth.message_for(code)
    with reading(db) as session:
        assert session.exec(select(Account)).all() == []


def test_password_rules_say_how_to_do_better() -> None:
    assert accounts.password_problem("a rather long phrase") is None
    assert auth.message_for("short") == "A password needs at least 10 characters."
    assert "unrelated words" in auth.message_for("common")
    assert accounts.password_problem("ADA@example.com", email="ada@example.com") == "mine"
    assert accounts.password_problem("four words are better") is None


def test_one_trial_per_address_ever(
    db: Engine, clock: FrozenClock, outbox: Outbox, mailbox: Mailbox, settings: Settings
) -> None:
    email = "again@example.com"
    sign_up(db, clock, outbox, email)
    _, _ = confirm(db, clock, mailbox.link(email))
    with reading(db) as session:
        first_id = session.exec(select(Account.id).where(Account.email == email)).one()
        claims = session.exec(select(TrialClaim.email_hash)).all()
    assert len(claims) == 1 and "again" not in claims[0]  # a salted hash, not the address
    usecases.delete_account(db=db, clock=clock, settings=settings, account_id=first_id)

    sign_up(db, clock, outbox, email)
    confirm(db, clock, mailbox.link(email, 2))
    assert trial_lots(db, email) == []  # the new account got no second trial


def test_password_reset_sets_the_password_and_ends_every_session(
    db: Engine, clock: FrozenClock, outbox: Outbox, mailbox: Mailbox
) -> None:
    email = "forgetful@example.com"
    sign_up(db, clock, outbox, email)
    old_session, _ = confirm(db, clock, mailbox.link(email))
    usecases.request_password_reset(
        db=db,
        clock=clock,
        settings=SETTINGS,
        outbox=outbox,
        email=" Forgetful@example.com",
        address=HERE,
    )
    mail = mailbox.wait_for(email, count=2)
    assert "Reset" in mail["Subject"]
    link = mailbox.link(email, 2)
    assert link.startswith("https://cutout.example/reset?token=")

    with pytest.raises(auth.PasswordRefused):
        usecases.reset_password(
            db=db, clock=clock, settings=SETTINGS, token=token_of(link),
            password="short", confirm="short", user_agent="t",
        )  # fmt: skip
    new_session = usecases.reset_password(
        db=db, clock=clock, settings=SETTINGS, token=token_of(link),
        password="a new and long one", confirm="a new and long one", user_agent="t",
    )  # fmt: skip
    assert usecases.account_id_for_token(db=db, clock=clock, token=old_session) is None
    assert usecases.account_id_for_token(db=db, clock=clock, token=new_session) is not None
    with pytest.raises(auth.LinkInvalid):  # once only
        usecases.reset_password(
            db=db, clock=clock, settings=SETTINGS, token=token_of(link),
            password="yet another one", confirm="yet another one", user_agent="t",
        )  # fmt: skip
    with pytest.raises(auth.WrongCredentials):
        usecases.sign_in(
            db=db, clock=clock, settings=SETTINGS, email=email, password=PASSWORD,
            address=HERE, user_agent="t",
        )  # fmt: skip


def test_a_reset_link_expires(
    db: Engine, clock: FrozenClock, outbox: Outbox, mailbox: Mailbox
) -> None:
    email = "slow@example.com"
    sign_up(db, clock, outbox, email)
    confirm(db, clock, mailbox.link(email))
    usecases.request_password_reset(
        db=db, clock=clock, settings=SETTINGS, outbox=outbox, email=email, address=HERE
    )
    link = mailbox.link(email, 2)
    clock.advance(timedelta(minutes=SETTINGS.reset_link_minutes))
    with pytest.raises(auth.LinkInvalid):
        usecases.reset_password(
            db=db, clock=clock, settings=SETTINGS, token=token_of(link),
            password="a new and long one", confirm="a new and long one", user_agent="t",
        )  # fmt: skip


def test_reset_for_an_unknown_address_answers_the_same_and_mails_nobody(
    db: Engine, clock: FrozenClock, outbox: Outbox, mailbox: Mailbox
) -> None:
    usecases.request_password_reset(
        db=db, clock=clock, settings=SETTINGS, outbox=outbox, email="ghost@example.com",
        address=HERE,
    )  # fmt: skip
    assert outbox.wait_until_sent()
    assert mailbox.to("ghost@example.com") == []


def test_one_address_cannot_flood_sign_ups_or_mail(
    db: Engine, clock: FrozenClock, outbox: Outbox, mailbox: Mailbox
) -> None:
    strict = SETTINGS.model_copy(update={"signups_per_hour": 3})
    for n in range(3):
        usecases.sign_up(
            db=db, clock=clock, settings=strict, outbox=outbox, email=f"bulk{n}@example.com",
            password=PASSWORD, address="198.51.100.1",
        )  # fmt: skip
    with pytest.raises(auth.TooManyRequests) as refused:
        usecases.sign_up(
            db=db, clock=clock, settings=strict, outbox=outbox, email="bulk3@example.com",
            password=PASSWORD, address="198.51.100.1",
        )  # fmt: skip
    assert refused.value.retry_after_seconds == 3600 and refused.value.code == "busy"
    with pytest.raises(auth.TooManyRequests):  # reset mails count against the same limit
        usecases.request_password_reset(
            db=db, clock=clock, settings=strict, outbox=outbox, email="bulk0@example.com",
            address="198.51.100.1",
        )  # fmt: skip
    # Another address is not held up; an hour later this one is not either.
    usecases.sign_up(
        db=db, clock=clock, settings=strict, outbox=outbox, email="bulk3@example.com",
        password=PASSWORD, address="198.51.100.2",
    )  # fmt: skip
    clock.advance(timedelta(hours=1))
    usecases.sign_up(
        db=db, clock=clock, settings=strict, outbox=outbox, email="bulk4@example.com",
        password=PASSWORD, address="198.51.100.1",
    )  # fmt: skip
    with reading(db) as session:
        assert len(session.exec(select(Account)).all()) == 5


def test_one_mailbox_gets_at_most_five_links_an_hour(
    db: Engine, clock: FrozenClock, outbox: Outbox, mailbox: Mailbox
) -> None:
    email = "victim.of.resets@example.com"
    sign_up(db, clock, outbox, email)
    confirm(db, clock, mailbox.link(email))
    for n in range(10):  # from ten different addresses
        usecases.request_password_reset(
            db=db, clock=clock, settings=SETTINGS, outbox=outbox, email=email,
            address=f"192.0.2.{n}",
        )  # fmt: skip
    assert outbox.wait_until_sent()
    assert len(mailbox.to(email)) == auth.MAILS_PER_EMAIL_PER_HOUR


def test_provider_sign_in_takes_over_an_unconfirmed_sign_up(
    db: Engine, clock: FrozenClock, outbox: Outbox, mailbox: Mailbox
) -> None:
    """Pre-account takeover: Mallory signs up with Ada's address and a password of his own,
    hoping Ada signs in with her provider later and he keeps a way in. He does not."""
    email = "ada.victim@example.com"
    sign_up(db, clock, outbox, email, password="mallory's own password")
    mallorys_link = mailbox.link(email)
    with writing(db) as session:  # as if Mallory had a session and a key already
        account = session.exec(select(Account).where(Account.email == email)).one()
        assert account.id is not None
        auth.create_session(
            session=session, clock=clock, account_id=account.id, lifetime=timedelta(days=1)
        )
        session.add(
            ApiKey(
                account_id=account.id,
                name="m",
                prefix="co_x",
                key_hash="0" * 64,
                created_at=clock.now(),
            )
        )

    with writing(db) as session:
        taken, created = auth.find_or_create_oauth_account(
            session=session,
            clock=clock,
            provider="https://id.example",
            subject="ada",
            email=email,
            trial_credits=10,
            lot_valid_days=90,
        )
        assert (taken.id, created) == (account.id, False)
    with reading(db) as session:
        owned = session.get(Account, account.id)
        assert owned is not None and owned.password_hash is None
        assert owned.email_verified_at is not None
        assert all(s.revoked_at for s in session.exec(select(UserSession)).all())
        assert all(k.revoked_at for k in session.exec(select(ApiKey)).all())
    with pytest.raises(auth.WrongCredentials):
        usecases.sign_in(
            db=db, clock=clock, settings=SETTINGS, email=email,
            password="mallory's own password", address=HERE, user_agent="t",
        )  # fmt: skip
    with pytest.raises(auth.LinkInvalid):
        confirm(db, clock, mallorys_link)
    assert trial_lots(db, email) == [10 * MILLI]  # Ada's trial, once
