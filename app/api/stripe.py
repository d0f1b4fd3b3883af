"""Stripe's HTTP routes: the webhook (`POST /stripe/webhook`) and the Checkout return page.

The webhook answers 400 to a body whose signature does not verify, 503 while billing is not
configured and 500 when Stripe could not be asked what the event needs, so Stripe delivers it
again later; anything else is acknowledged with 200 once applied (or found already applied).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import stripe
from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from app import routes
from app.services.billing.stripe_billing import (
    BadSignature,
    BillingNotConfigured,
    StripeUnavailable,
)
from app.services.clock import Clock
from app.settings import Settings
from app.usecases import billing

log = logging.getLogger("cutout.billing")

# Stripe's events are a few kilobytes; refuse to buffer anything absurd before verifying it.
MAX_EVENT_BYTES = 512 * 1024
NO_STORE = {"Cache-Control": "no-store"}


def stripe_routes(
    *,
    db: Callable[[], Engine],
    clock: Callable[[], Clock],
    settings: Callable[[], Settings],
    client: Callable[[], stripe.StripeClient | None],
) -> list[Route]:
    """The routes, reading engine, clock, settings and client per request (as app.runtime does)."""

    async def webhook(request: Request) -> Response:
        payload = b""
        async for chunk in request.stream():
            payload += chunk
            if len(payload) > MAX_EVENT_BYTES:
                return JSONResponse({"error": "Event too large."}, status_code=413)
        stripe_client = client()
        if stripe_client is None:
            return JSONResponse({"error": "Billing is not configured."}, status_code=503)
        try:
            result = await asyncio.to_thread(
                billing.handle_webhook,
                db=db(),
                clock=clock(),
                settings=settings(),
                client=stripe_client,
                payload=payload,
                signature=request.headers.get("stripe-signature"),
            )
        except BadSignature as refused:
            log.warning("stripe webhook refused: %s", refused)
            return JSONResponse({"error": f"Bad signature: {refused}"}, status_code=400)
        except BillingNotConfigured:
            return JSONResponse({"error": "Billing is not configured."}, status_code=503)
        except (StripeUnavailable, stripe.StripeError):
            log.warning("stripe webhook: Stripe could not be asked; it will retry", exc_info=True)
            return JSONResponse({"error": "Try again later."}, status_code=500)
        return JSONResponse(
            {"received": True, "duplicate": result.duplicate, "outcome": result.outcome}
        )

    async def checkout_return(request: Request) -> Response:
        session_id = request.query_params.get("session_id", "")
        stripe_client = client()
        if not session_id.startswith("cs_") or stripe_client is None:
            return RedirectResponse(routes.PRICING, status_code=303, headers=NO_STORE)
        back = await asyncio.to_thread(
            billing.finish_checkout,
            db=db(),
            clock=clock(),
            settings=settings(),
            client=stripe_client,
            session_id=session_id,
        )
        return RedirectResponse(back.path, status_code=303, headers=NO_STORE)

    return [
        Route(routes.STRIPE_WEBHOOK, webhook, methods=["POST"]),
        Route(routes.STRIPE_CHECKOUT_RETURN, checkout_return, methods=["GET"]),
    ]
