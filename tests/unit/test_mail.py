"""The outbox against real SMTP servers (aiosmtpd) on 127.0.0.1: STARTTLS with a login,
implicit TLS, a temporary refusal retried, a permanent one not, and no SMTP at all."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.services.mail import Mail, MailConfigError, Outbox, SmtpConfig
from tests.conftest import free_port
from tests.mailbox import Mailbox

MAIL = Mail(to="someone@example.com", subject="Hello", text="A link: https://x.example/a")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made here (nothing is fetched)."""
    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


def trusting(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


def only(user: str, password: str) -> Any:
    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        ok = data.login.decode() == user and data.password.decode() == password
        return AuthResult(success=ok)

    return authenticate


@pytest.fixture
def starttls_server(certificate: tuple[Path, Path]) -> Iterator[Mailbox]:
    mailbox = Mailbox()
    mailbox.controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=mailbox.port,
        tls_context=server_context(certificate),
        require_starttls=True,
        auth_require_tls=True,
        authenticator=only("cutout", "s3cret pass"),
    )
    mailbox.controller.start()
    yield mailbox
    mailbox.controller.stop()


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> Iterator[Mailbox]:
    mailbox = Mailbox()
    mailbox.controller = Controller(
        mailbox, hostname="127.0.0.1", port=mailbox.port, ssl_context=server_context(certificate)
    )
    mailbox.controller.start()
    yield mailbox
    mailbox.controller.stop()


def test_starttls_with_a_login_delivers(
    starttls_server: Mailbox, certificate: tuple[Path, Path]
) -> None:
    url = f"smtp+starttls://cutout:s3cret%20pass@127.0.0.1:{starttls_server.port}"
    outbox = Outbox(smtp_url=url, sender="Cutout <cutout@x.example>", tls=trusting(certificate))
    outbox.send_later(MAIL)
    received = starttls_server.wait_for("someone@example.com")
    assert received["Subject"] == "Hello" and "https://x.example/a" in received.get_content()
    assert received["From"] == "Cutout <cutout@x.example>"


def test_implicit_tls_delivers(tls_server: Mailbox, certificate: tuple[Path, Path]) -> None:
    url = f"smtps://127.0.0.1:{tls_server.port}"
    outbox = Outbox(smtp_url=url, sender="cutout@x.example", tls=trusting(certificate))
    outbox.send_later(MAIL)
    assert tls_server.wait_for("someone@example.com")["Subject"] == "Hello"


def test_a_certificate_that_does_not_check_out_is_not_sent_to(
    tls_server: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = Outbox(
        smtp_url=f"smtps://127.0.0.1:{tls_server.port}", sender="c@x.example", delays=(0.01,)
    )  # the system's trust store does not know this certificate
    with caplog.at_level(logging.WARNING, logger="cutout.mail"):
        outbox.send_later(MAIL)
        assert outbox.wait_until_sent()
    assert tls_server.messages == []
    assert "not retried" in caplog.text and "someone@example.com" not in caplog.text


def test_a_temporary_refusal_is_retried_off_the_caller(
    mailbox: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    mailbox.refusals.extend(["451 4.3.0 try again later", "421 4.3.0 busy"])
    slept: list[float] = []
    outbox = Outbox(smtp_url=mailbox.url, sender="c@x.example", sleep=slept.append)
    mail = Mail(to="retry@example.com", subject="Third time", text="lucky")
    with caplog.at_level(logging.WARNING, logger="cutout.mail"):
        outbox.send_later(mail)  # returns at once; the worker thread does the rest
        assert outbox.wait_until_sent()
    assert [m["Subject"] for m in mailbox.to("retry@example.com")] == ["Third time"]
    assert slept == [2.0, 10.0]  # waited before the 2nd and 3rd tries
    assert caplog.text.count("will retry") == 2


def test_a_permanent_refusal_is_not_retried(
    mailbox: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    mailbox.refusals.append("550 5.1.1 no such mailbox")
    slept: list[float] = []
    outbox = Outbox(smtp_url=mailbox.url, sender="c@x.example", sleep=slept.append)
    with caplog.at_level(logging.ERROR, logger="cutout.mail"):
        outbox.send_later(Mail(to="gone@example.com", subject="x", text="secret link"))
        assert outbox.wait_until_sent()
    assert slept == [] and mailbox.to("gone@example.com") == []
    assert "not retried" in caplog.text
    assert "gone@example.com" not in caplog.text and "secret link" not in caplog.text


def test_an_unreachable_server_is_given_up_on_after_the_retries(
    caplog: pytest.LogCaptureFixture,
) -> None:
    slept: list[float] = []
    outbox = Outbox(
        smtp_url=f"smtp://127.0.0.1:{free_port()}", sender="c@x.example", sleep=slept.append
    )
    with caplog.at_level(logging.WARNING, logger="cutout.mail"):
        outbox.send_later(MAIL)
        assert outbox.wait_until_sent()
    assert slept == [2.0, 10.0, 60.0]
    assert "gave up after 4 attempts" in caplog.text


def test_without_smtp_the_mail_goes_to_the_log(caplog: pytest.LogCaptureFixture) -> None:
    outbox = Outbox(smtp_url="", sender="c@x.example")
    assert not outbox.configured
    with caplog.at_level(logging.WARNING, logger="cutout.mail"):
        outbox.send_later(MAIL)
    assert "https://x.example/a" in caplog.text and "CUTOUT_SMTP_URL" in caplog.text


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://relay.local", ("relay.local", 25, "plain", "", "")),
        (
            "smtp+starttls://u%40x:p%3Aw@mail.example",
            ("mail.example", 587, "starttls", "u@x", "p:w"),
        ),
        ("smtps://mail.example:2465", ("mail.example", 2465, "ssl", "", "")),
    ],
)
def test_smtp_urls(url: str, expected: tuple[str, int, str, str, str]) -> None:
    config = SmtpConfig.parse(url)
    assert (config.host, config.port, config.security, config.username, config.password) == (
        expected
    )
    assert expected[4] == "" or expected[4] not in repr(config)  # the password stays out of logs


@pytest.mark.parametrize("url", ["http://mail.example", "smtp://", "smtps://host:notaport"])
def test_bad_smtp_urls_say_what_is_wrong(url: str) -> None:
    with pytest.raises(MailConfigError, match="CUTOUT_SMTP_URL"):
        SmtpConfig.parse(url)
