"""Pricing page state: which Standard-only tools the operator has switched on."""

from __future__ import annotations

import asyncio

import reflex as rx

from app import runtime
from app.state.auth import AuthState
from app.usecases import catalog


class PricingState(AuthState):
    live_tools: list[str] = []

    @rx.event
    async def on_load(self) -> None:
        await self.current_account()
        self.live_tools = await asyncio.to_thread(catalog.enabled_flags, db=runtime.db())
