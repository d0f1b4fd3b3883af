"""SQLModel tables, one module per aggregate. Importing this package registers them all."""

from app.models.accounts import Account, Plan
from app.models.auth import ApiKey, OAuthIdentity, SignInAttempt, UserSession
from app.models.billing import (
    PaymentStatus,
    Product,
    StripeEvent,
    StripePayment,
    StripeSubscription,
)
from app.models.jobs import CutoutJob, JobStatus
from app.models.ledger import (
    CreditLot,
    EntryKind,
    FeatureFlag,
    LedgerEntry,
    LotScope,
    LotSource,
    Reservation,
    ReservationStatus,
    Wallet,
)

__all__ = [
    "Account",
    "ApiKey",
    "CreditLot",
    "CutoutJob",
    "EntryKind",
    "FeatureFlag",
    "JobStatus",
    "LedgerEntry",
    "LotScope",
    "LotSource",
    "OAuthIdentity",
    "PaymentStatus",
    "Plan",
    "Product",
    "Reservation",
    "ReservationStatus",
    "SignInAttempt",
    "StripeEvent",
    "StripePayment",
    "StripeSubscription",
    "UserSession",
    "Wallet",
]
