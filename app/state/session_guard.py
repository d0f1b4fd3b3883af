"""Before every event: which session it came with, and a clean slate when the person changes.

Reflex keeps page state per browser tab (its client token), not per person. When the person
behind a tab changes (signed out, signed in as someone else, session revoked or expired,
account deleted), every page state is reset before the event runs, so nobody sees the file
names, balances or job ids of whoever used the tab before. It walks the whole state tree, so a
page state added later is covered without being named here.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from reflex.middleware import Middleware
from reflex.state import BaseState

from app import runtime
from app.state.auth import AuthState
from app.usecases import accounts
from app.web_session import REF_COOKIE, cookie_value, upload_refs

if TYPE_CHECKING:
    from reflex.app import App
    from reflex_base.event import Event


def event_session_ref(root: BaseState, event: Event) -> str:
    """The session reference this event arrived with: the upload request's own for an upload
    (Reflex does not pass its headers on), else the websocket handshake's."""
    client_token = root.router.session.client_token
    uploaded = upload_refs.get(client_token, event.name)
    if uploaded is not None:
        return uploaded
    return cookie_value(root.router.headers.cookie, REF_COOKIE)


async def reset_page_states(root: BaseState) -> None:
    """Every state under the root back to its defaults (the root keeps its router data and
    hydration flag). Substates the state manager had not loaded yet are loaded first."""
    pending = list(root.get_substates())
    while pending:
        cls = pending.pop()
        await root.get_state(cls)
        pending.extend(cls.get_substates())
    for child in root.substates.values():
        child.reset()  # recursive


class SessionGuard(Middleware):
    async def preprocess(self, app: App, state: BaseState, event: Event) -> None:
        root = state._get_root_state()
        ref = event_session_ref(root, event)
        account_id = (
            await asyncio.to_thread(
                accounts.account_id_for_ref, db=runtime.db(), clock=runtime.clock(), ref=ref
            )
            if ref
            else None
        )
        owner = str(account_id or "")
        auth = await root.get_state(AuthState)
        if auth._owner != owner:
            await reset_page_states(root)
            auth._owner = owner
        valid_ref = ref if account_id else ""
        if auth._session_ref != valid_ref:
            auth._session_ref = valid_ref
        return None
