"""The SMTP client against a real SMTP server (aiosmtpd) that requires STARTTLS and a
login: the upgrade happens, the certificate is checked, the password comes from its
``os.environ/`` reference, and a server without STARTTLS is refused, not sent in clear."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from parley.config import Settings
from parley.mail.smtp import MailError, SmtpSender, SmtpSettings
from parley.mail.templates import render
from parley.services import smtp_sender
from parley.testing.servers import free_port
from tests.smtp import Inbox, html_of, text_of
from tests.unit.providers.test_http1 import _self_signed


def _login(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        b"parley",
        b"mail-secret-123",
    )
    return AuthResult(success=ok)


def _server(inbox: Inbox, tmp: Path, *, tls: bool) -> tuple[Controller, Path]:
    cert, key = _self_signed(tmp)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=context if tls else None,
        require_starttls=tls,
        authenticator=_login,
        auth_require_tls=tls,
    )
    controller.start()
    return controller, cert


def _message() -> Any:
    return render(
        "password_reset",
        "ada@example.com",
        {"name": "Ada", "link": "http://h/reset-password#token=prs_x", "minutes": "30"},
    )


async def test_starttls_with_login_and_a_checked_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox = Inbox()
    controller, cert = _server(inbox, tmp_path, tls=True)
    try:
        monkeypatch.setenv("TEST_SMTP_PASSWORD", "mail-secret-123")
        settings = Settings(
            smtp_host="127.0.0.1",
            smtp_port=controller.port,
            smtp_username="parley",
            smtp_password="os.environ/TEST_SMTP_PASSWORD",
            smtp_ca_file=str(cert),
            smtp_from="Parley <parley@example.com>",
        )
        sender = smtp_sender(settings)
        assert sender is not None
        assert "mail-secret-123" not in repr(sender.settings)
        await sender.send(_message())
        [received] = inbox.messages
        assert received["From"] == "Parley <parley@example.com>"
        assert "#token=prs_x" in text_of(received)
        assert 'href="http://h/reset-password#token=prs_x"' in html_of(received)

        untrusted = SmtpSender(SmtpSettings(host="127.0.0.1", port=controller.port))
        with pytest.raises(MailError):  # the system store does not know this certificate
            await untrusted.send(_message())
    finally:
        controller.stop()


async def test_a_server_without_starttls_is_refused(tmp_path: Path) -> None:
    inbox = Inbox()
    controller, _ = _server(inbox, tmp_path, tls=False)
    try:
        sender = SmtpSender(SmtpSettings(host="127.0.0.1", port=controller.port))
        with pytest.raises(MailError):
            await sender.send(_message())
        assert inbox.messages == []
    finally:
        controller.stop()


def test_an_inline_smtp_password_is_refused() -> None:
    with pytest.raises(ValueError, match=r"os\.environ/SMTP_PASSWORD"):
        Settings(smtp_host="mail.example.com", smtp_password="hunter2-inline")
