"""What the web pages ask of the business, one unit of work per call: sign-in, quotes, charging."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import Session

from app.db import session_scope
from app.models.accounts import Account
from app.models.ledger import Wallet
from app.services import api_keys, auth, cutouts, ledger
from app.services.api_keys import ApiKeyView
from app.services.clock import Clock
from app.services.cutouts import JobView
from app.services.entitlements import entitlement, list_flags
from app.services.pricing import Feature, cost_of
from app.settings import Settings


class NotAllowed(PermissionError):
    """The account may not do this now; the message says why."""


@dataclass(frozen=True)
class AccountSummary:
    id: int
    email: str
    plan: str
    web_available: int  # milli-credits
    api_available: int


@dataclass(frozen=True)
class Quote:
    cost: int
    available: int

    @property
    def enough(self) -> bool:
        return self.available >= self.cost


@dataclass(frozen=True)
class Dashboard:
    summary: AccountSummary
    wallets: dict[Wallet, ledger.WalletBalance]
    history: ledger.HistoryPage
    jobs: list[JobView]
    keys: list[ApiKeyView]


def _summary(
    session: Session,
    clock: Clock,
    account: Account,
    wallets: dict[Wallet, ledger.WalletBalance] | None = None,
) -> AccountSummary:
    assert account.id is not None
    if wallets is None:
        wallets = ledger.balance(session=session, clock=clock, account_id=account.id)
    return AccountSummary(
        id=account.id,
        email=account.email,
        plan=account.plan.value,
        web_available=wallets[Wallet.web].available,
        api_available=wallets[Wallet.api].available,
    )


def account_for_token(*, db: Engine, clock: Clock, token: str) -> AccountSummary | None:
    if not token:
        return None
    with session_scope(db) as session:
        account = auth.resolve_session(session=session, clock=clock, token=token)
        return _summary(session, clock, account) if account else None


def account_id_for_token(*, db: Engine, clock: Clock, token: str) -> int | None:
    """Just who is signed in, for routes that need no balance (every image load asks)."""
    if not token:
        return None
    with session_scope(db) as session:
        account = auth.resolve_session(session=session, clock=clock, token=token)
        return account.id if account else None


def sign_up(
    *, db: Engine, clock: Clock, email: str, password: str, user_agent: str, lifetime: timedelta
) -> tuple[str, AccountSummary]:
    with session_scope(db) as session:
        account = auth.sign_up(session=session, clock=clock, email=email, password=password)
        token = _open_session(session, clock, account, user_agent, lifetime)
        return token, _summary(session, clock, account)


def sign_in(
    *,
    db: Engine,
    clock: Clock,
    email: str,
    password: str,
    address: str,
    user_agent: str,
    lifetime: timedelta,
) -> tuple[str, AccountSummary]:
    with session_scope(db) as session:
        account = auth.sign_in(
            session=session, clock=clock, email=email, password=password, address=address
        )
        token = _open_session(session, clock, account, user_agent, lifetime)
        return token, _summary(session, clock, account)


def _open_session(
    session: Session, clock: Clock, account: Account, user_agent: str, lifetime: timedelta
) -> str:
    assert account.id is not None
    return auth.create_session(
        session=session,
        clock=clock,
        account_id=account.id,
        user_agent=user_agent[:200],
        lifetime=lifetime,
    )


def sign_out(*, db: Engine, clock: Clock, token: str) -> None:
    with session_scope(db) as session:
        auth.sign_out(session=session, clock=clock, token=token)


def sign_out_everywhere(*, db: Engine, clock: Clock, account_id: int) -> None:
    with session_scope(db) as session:
        auth.sign_out_everywhere(session=session, clock=clock, account_id=account_id)


def change_password(
    *, db: Engine, clock: Clock, account_id: int, current: str, new: str, keep_token: str
) -> None:
    with session_scope(db) as session:
        auth.change_password(
            session=session,
            clock=clock,
            account_id=account_id,
            current=current,
            new=new,
            keep_token=keep_token,
        )


def delete_account(*, db: Engine, clock: Clock, settings: Settings, account_id: int) -> None:
    with session_scope(db) as session:
        auth.delete_account(session=session, clock=clock, settings=settings, account_id=account_id)


def cutout_cost(job: JobView) -> int:
    return cost_of(job.width, job.height, (Feature.background_removal,))


def quote(*, db: Engine, clock: Clock, account_id: int, job: JobView) -> Quote:
    with session_scope(db) as session:
        wallets = ledger.balance(session=session, clock=clock, account_id=account_id)
        return Quote(cost=cutout_cost(job), available=wallets[Wallet.web].available)


def charge_and_process(
    *, db: Engine, settings: Settings, clock: Clock, account_id: int, job_id: str
) -> JobView:
    """Reserve the cost, run the cutout, then capture it; a failure releases every credit.

    Blocking: run it in the worker pool. Raises ledger.InsufficientCredits before any work.
    """
    owner = auth.account_owner(account_id)
    job = cutouts.get_job(db=db, owner=owner, job_id=job_id)
    cost = cutout_cost(job)
    key = f"cutout:{job_id}"  # one charge per job, however often the request is retried
    with session_scope(db) as session:
        account = session.get(Account, account_id)
        if account is None:
            raise NotAllowed("This account no longer exists.")
        allowed = entitlement(session=session, account=account, feature=Feature.background_removal)
        if not allowed.allowed or allowed.wallet is None:
            raise NotAllowed(allowed.reason)
        ledger.reserve_credits(
            session=session,
            clock=clock,
            account_id=account_id,
            wallet=allowed.wallet,
            amount=cost,
            key=key,
            timeout_seconds=settings.reservation_timeout_seconds,
        )
    try:
        view = cutouts.process_job(db=db, settings=settings, clock=clock, job_id=job_id)
    except BaseException:
        _release(db, clock, account_id, key)
        raise
    if view.status == "done":
        with session_scope(db) as session:
            ledger.capture_reservation(
                session=session, clock=clock, account_id=account_id, key=key, amount=cost
            )
    else:
        _release(db, clock, account_id, key)
    return view


def _release(db: Engine, clock: Clock, account_id: int, key: str) -> None:
    with session_scope(db) as session:
        ledger.release_reservation(session=session, clock=clock, account_id=account_id, key=key)


def dashboard(*, db: Engine, clock: Clock, account_id: int, page: int = 1) -> Dashboard:
    # Jobs first, on their own connection: SQLite's write lock is per connection, so a second
    # connection opened inside the transaction below would wait for it forever.
    jobs = cutouts.list_jobs(db=db, owner=auth.account_owner(account_id), limit=20)
    with session_scope(db) as session:
        account = session.get(Account, account_id)
        if account is None or account.deleted_at is not None:
            raise NotAllowed("This account no longer exists.")
        wallets = ledger.balance(session=session, clock=clock, account_id=account_id)
        return Dashboard(
            summary=_summary(session, clock, account, wallets),
            wallets=wallets,
            history=ledger.history(session=session, account_id=account_id, page=page, per_page=20),
            jobs=jobs,
            keys=api_keys.list_api_keys(session=session, account_id=account_id),
        )


def create_api_key(*, db: Engine, clock: Clock, account_id: int, name: str) -> tuple[str, str]:
    """The raw key (shown once) and its display prefix."""
    with session_scope(db) as session:
        created = api_keys.create_api_key(
            session=session, clock=clock, account_id=account_id, name=name
        )
        return created.raw_key, created.view.prefix


def revoke_api_key(*, db: Engine, clock: Clock, account_id: int, key_id: int) -> None:
    with session_scope(db) as session:
        api_keys.revoke_api_key(session=session, clock=clock, account_id=account_id, key_id=key_id)


def local_time(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC")


def enabled_flags(*, db: Engine) -> list[str]:
    """Names of the Standard-only tools switched on by the operator."""
    with session_scope(db) as session:
        return [flag.name for flag in list_flags(session=session) if flag.enabled]
