"""What is on sale and what is switched on: plans, prices and the Standard-only tools."""

from __future__ import annotations

from sqlalchemy import Engine

from app.db import reading
from app.services.billing.entitlements import list_flags


def enabled_flags(*, db: Engine) -> list[str]:
    """Names of the Standard-only tools switched on by the operator."""
    with reading(db) as session:
        return [flag.name for flag in list_flags(session=session) if flag.enabled]
