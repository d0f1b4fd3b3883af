"""What a person sees when an event handler fails unexpectedly: a reference, never the error."""

from __future__ import annotations

import reflex as rx
from reflex.event import EventSpec

from app.services.errors import generic_message, report


def unexpected_error(exception: Exception) -> EventSpec:
    """Reflex's backend exception handler. Its own shows the exception's text outside
    production mode; this logs the traceback under a reference and shows only that."""
    return rx.toast.error(
        generic_message(report(exception, "event handler")), id="backend_error", duration=15_000
    )
