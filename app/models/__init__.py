"""SQLModel tables, one module per aggregate. Importing this package registers them all."""

from app.models.accounts import Account, Plan
from app.models.auth import (
    ApiKey,
    EmailLink,
    InstallSecret,
    LinkPurpose,
    OAuthIdentity,
    SignInAttempt,
    TrialClaim,
    UserSession,
)
from app.models.billing import (
    PaymentStatus,
    Product,
    StripeEvent,
    StripePayment,
    StripeSubscription,
)
from app.models.bulk import BatchStatus, BulkBatch, BulkItem
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
from app.models.trial import TrialPreview

__all__ = [
    "Account",
    "ApiKey",
    "BatchStatus",
    "BulkBatch",
    "BulkItem",
    "CreditLot",
    "CutoutJob",
    "EmailLink",
    "EntryKind",
    "FeatureFlag",
    "InstallSecret",
    "JobStatus",
    "LinkPurpose",
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
    "TrialClaim",
    "TrialPreview",
    "UserSession",
    "Wallet",
]
