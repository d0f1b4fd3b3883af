"""Unexpected errors: logged with their traceback under a short reference the person can quote;
the page shows only the reference, never the exception's text."""

from __future__ import annotations

import logging
import secrets

log = logging.getLogger("cutout.errors")

GENERIC = "Something went wrong on our side. If it keeps happening, quote reference {ref}."


def report(error: BaseException, context: str = "") -> str:
    """Log `error` with its traceback; returns the reference to show instead of its text."""
    ref = secrets.token_hex(4)
    log.error(
        "unexpected error, reference %s%s",
        ref,
        f" ({context})" if context else "",
        exc_info=(type(error), error, error.__traceback__),
    )
    return ref


def generic_message(ref: str) -> str:
    return GENERIC.format(ref=ref)
