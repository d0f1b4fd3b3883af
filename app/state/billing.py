"""Purchase state: the buy buttons anywhere (pricing, the home page's top-up, API packs) and what
the page says when the person comes back from Stripe Checkout."""

from __future__ import annotations

import asyncio
import logging

import reflex as rx
import stripe

from app import routes, runtime
from app.models.billing import Product
from app.services.billing.stripe_billing import BillingError, BillingNotConfigured
from app.state.auth import AuthState
from app.usecases import billing

log = logging.getLogger("cutout.billing")

OUTCOME_MESSAGES = {
    "complete": "Payment received, thank you: your credits and plan are up to date.",
    "pending": "Stripe has your payment and it is still settling: the credits appear as soon "
    "as it clears.",
    "failed": "The payment did not go through, so nothing was added. You can try again.",
    "cancelled": "Checkout was cancelled: nothing was charged.",
}


class PurchaseState(AuthState):
    purchase_problem: str = ""
    # The product whose Checkout is being prepared, so only its button spins.
    purchase_busy: str = ""

    @rx.var
    def billing_ready(self) -> bool:
        return billing.billing_enabled(settings=runtime.settings())

    @rx.var
    def purchase_outcome(self) -> str:
        """What to say about the purchase the person just came back from, if any."""
        return OUTCOME_MESSAGES.get(
            self.router.url.query_parameters.get(routes.PURCHASE_PARAM, ""), ""
        )

    @rx.var
    def purchase_succeeded(self) -> bool:
        return self.router.url.query_parameters.get(routes.PURCHASE_PARAM) == "complete"

    @rx.event
    async def buy(self, product: str):  # type: ignore[no-untyped-def]
        """Open Stripe Checkout for `product`; afterwards Stripe brings the person back here."""
        here = self.router.url.path or routes.PRICING
        account = await self.current_account()
        if account is None:
            yield rx.redirect(routes.sign_in_url(here))
            return
        if product not in Product.__members__:
            self.purchase_problem = "That is not something Cutout sells."
            return
        self.purchase_problem = ""
        self.purchase_busy = product
        yield
        client = runtime.stripe_client()
        try:
            if client is None:
                raise BillingNotConfigured()
            url = await asyncio.to_thread(
                billing.start_checkout,
                db=runtime.db(),
                clock=runtime.clock(),
                settings=runtime.settings(),
                client=client,
                account_id=account.id,
                product=Product(product),
                return_path=here,
            )
        except BillingError as refused:
            self.purchase_problem = str(refused)
            return
        except stripe.StripeError:
            log.exception("starting checkout for %s failed", product)
            self.purchase_problem = "Checkout could not be opened. Nothing was charged."
            return
        finally:
            self.purchase_busy = ""
        yield rx.redirect(url)
