"""Outgoing mail: SMTP (plain, STARTTLS or implicit TLS) with retries, off the event loop.

Anything in Cutout that mails a person builds a `Mail` and hands it to an `Outbox`
(`app.runtime.outbox()`): `send_later` returns at once and a worker thread delivers, retrying
temporary failures. Without an SMTP URL (a single-machine install), the outbox writes each
mail to the server log instead, so the operator can pass a link on by hand.
"""

from __future__ import annotations

import logging
import queue
import smtplib
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import unquote, urlsplit

log = logging.getLogger("cutout.mail")

SCHEMES = {"smtp": "plain", "smtp+starttls": "starttls", "smtps": "ssl"}
DEFAULT_PORTS = {"plain": 25, "starttls": 587, "ssl": 465}
RETRY_DELAYS = (2.0, 10.0, 60.0)  # seconds before the 2nd, 3rd and 4th try
TIMEOUT = 20.0


class MailConfigError(ValueError):
    """CUTOUT_SMTP_URL cannot be used; the message says why (without the password)."""


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    text: str


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    security: str  # "plain", "starttls" or "ssl"
    username: str = ""
    password: str = field(default="", repr=False)

    @classmethod
    def parse(cls, url: str) -> SmtpConfig:
        """`smtp://host:25` (a local relay), `smtp+starttls://user:pw@host:587` (STARTTLS,
        required) or `smtps://user:pw@host:465` (TLS from the first byte)."""
        parts = urlsplit(url)
        security = SCHEMES.get(parts.scheme.lower())
        if security is None:
            raise MailConfigError(
                f"CUTOUT_SMTP_URL must start with one of {', '.join(s + '://' for s in SCHEMES)}"
            )
        if not parts.hostname:
            raise MailConfigError("CUTOUT_SMTP_URL names no host")
        try:
            port = parts.port or DEFAULT_PORTS[security]
        except ValueError as bad:
            raise MailConfigError("CUTOUT_SMTP_URL has an invalid port") from bad
        return cls(
            host=parts.hostname,
            port=port,
            security=security,
            username=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
        )


class TemporaryFailure(Exception):
    """Worth trying again later: the server was unreachable or said 4xx."""


def compose(mail: Mail, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.to
    message["Subject"] = mail.subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].strip(">") or None)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(mail.text)
    return message


def deliver(
    mail: Mail, *, config: SmtpConfig, sender: str, tls: ssl.SSLContext | None = None
) -> None:
    """One delivery attempt. TemporaryFailure when trying again may help; any other
    smtplib.SMTPException (a refused recipient, bad credentials) will not get better."""
    context = tls or ssl.create_default_context()
    try:
        if config.security == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                config.host, config.port, timeout=TIMEOUT, context=context
            )
        else:
            client = smtplib.SMTP(config.host, config.port, timeout=TIMEOUT)
        with client:
            client.ehlo()
            if config.security == "starttls":
                # Required, not opportunistic: a server that cannot upgrade gets no password.
                client.starttls(context=context)
                client.ehlo()
            if config.username:
                client.login(config.username, config.password)
            client.send_message(compose(mail, sender))
    except smtplib.SMTPResponseException as answer:
        if 400 <= answer.smtp_code < 500:
            raise TemporaryFailure(f"server answered {answer.smtp_code}") from answer
        raise
    except ssl.SSLError:
        raise  # a certificate that does not check out will not on the next try either
    except (OSError, smtplib.SMTPServerDisconnected) as unreachable:
        raise TemporaryFailure(type(unreachable).__name__) from unreachable


class Outbox:
    """Mail queued for a worker thread, so no request waits for an SMTP server."""

    def __init__(
        self,
        *,
        smtp_url: str,
        sender: str,
        tls: ssl.SSLContext | None = None,
        delays: tuple[float, ...] = RETRY_DELAYS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = SmtpConfig.parse(smtp_url) if smtp_url else None
        self.sender = sender
        self._tls = tls
        self._delays = delays
        self._sleep = sleep
        self._queue: queue.Queue[Mail] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def configured(self) -> bool:
        """False: mail goes to the server log, and pages say so."""
        return self.config is not None

    def send_later(self, mail: Mail) -> None:
        """Queue a mail and return at once."""
        if self.config is None:
            # Nothing can be delivered: the log is how a single-machine operator gets the link.
            log.warning(
                "mail is not configured (CUTOUT_SMTP_URL); this mail was not sent:\n"
                "To: %s\nSubject: %s\n\n%s",
                mail.to,
                mail.subject,
                mail.text,
            )
            return
        self._queue.put(mail)
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._run, name="cutout-mail", daemon=True)
                self._worker.start()

    def wait_until_sent(self, timeout: float = 30.0) -> bool:
        """For tests and shutdown: True once everything queued so far was handled."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.05)
        return False

    def _run(self) -> None:
        while True:
            mail = self._queue.get()
            try:
                self._send_with_retries(mail)
            finally:
                self._queue.task_done()

    def _send_with_retries(self, mail: Mail) -> None:
        assert self.config is not None
        for attempt, delay in enumerate((0.0, *self._delays), start=1):
            if delay:
                self._sleep(delay)
            try:
                deliver(mail, config=self.config, sender=self.sender, tls=self._tls)
            except TemporaryFailure as failure:
                log.warning("mail attempt %d failed (%s); will retry", attempt, failure)
                continue
            except (smtplib.SMTPException, ssl.SSLError) as refused:
                # The recipient is personal data and the body may hold a link: neither is logged.
                log.error("mail refused by the server, not retried: %s", type(refused).__name__)
                return
            except Exception:
                log.exception("mail could not be sent")
                return
            return
        log.error("mail gave up after %d attempts", len(self._delays) + 1)
