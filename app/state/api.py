"""API page state: the signed-in account's keys, as names and prefixes only."""

from __future__ import annotations

import asyncio

import reflex as rx

from app import runtime
from app.state.auth import AuthState
from app.usecases import api_calls


class ApiPageState(AuthState):
    keys: list[dict[str, str]] = []

    @rx.event
    async def on_load(self) -> None:
        summary = await self.current_account()
        if summary is None:
            self.keys = []
            return
        found = await asyncio.to_thread(api_calls.keys_of, db=runtime.db(), account_id=summary.id)
        self.keys = [
            {
                "name": key.name,
                "prefix": key.prefix + "…",
                "used": key.last_used_at.strftime("%Y-%m-%d %H:%M UTC")
                if key.last_used_at
                else "never",
            }
            for key in found
        ]
