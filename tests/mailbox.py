"""A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps what it receives, for tests to read."""

from __future__ import annotations

import re
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from functools import lru_cache
from typing import Any

from aiosmtpd.controller import Controller

from tests.conftest import free_port

LINK = re.compile(r"https?://\S+")


class Mailbox:
    """Every message delivered to the server, readable by recipient."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self._arrived = threading.Condition()
        # Replies to give the next DATA commands instead of accepting, e.g. "451 try later".
        self.refusals: list[str] = []
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.refusals:
            return self.refusals.pop(0)
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self._arrived:
            self.messages.append(message)
            self._arrived.notify_all()
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        with self._arrived:
            return [m for m in self.messages if m["To"] == address]

    def wait_for(self, address: str, count: int = 1, timeout: float = 30.0) -> EmailMessage:
        """The `count`-th message to `address`, waiting for it to arrive."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                found = [m for m in self.messages if m["To"] == address]
                if len(found) >= count:
                    return found[count - 1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no mail #{count} to {address} within {timeout} s")
                self._arrived.wait(left)

    def link(self, address: str, count: int = 1, timeout: float = 30.0) -> str:
        """The first link in the `count`-th mail to `address`."""
        body = self.wait_for(address, count, timeout).get_content()
        found = LINK.search(body)
        assert found, f"no link in the mail to {address}:\n{body}"
        return found.group(0)


@lru_cache(maxsize=1)
def shared_mailbox() -> Mailbox:
    """One server per test process, shared by fixtures and the browser helpers."""
    mailbox = Mailbox()
    mailbox.controller.start()
    return mailbox
