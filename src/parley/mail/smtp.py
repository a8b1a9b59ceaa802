"""Sending one message over SMTP with aiosmtplib (asyncio-native, maintained).

``security`` is ``starttls`` (port 587: plain connect, then upgrade; refused if the server
does not offer it), ``tls`` (port 465: TLS from the first byte) or ``none`` (a local relay
on loopback only, e.g. a sidecar). Certificates are verified against the system store, or
``ca_file`` when set. The password is resolved from its ``os.environ/`` reference when the
sender is built and is never logged: failures are reported by their class and SMTP code.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Literal

import aiosmtplib

from parley.config.secrets import Secret

Security = Literal["starttls", "tls", "none"]


class MailError(Exception):
    """The server refused or could not be reached; the outbox retries later."""


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int = 587
    security: Security = "starttls"
    username: str | None = None
    password: Secret | None = None
    sender: str = "Parley <parley@localhost>"
    timeout_s: float = 10.0
    ca_file: str | None = None


class SmtpSender:
    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    def _tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.settings.ca_file)

    async def send(self, message: EmailMessage) -> None:
        s = self.settings
        if "From" not in message:
            message["From"] = s.sender
        try:
            await aiosmtplib.send(
                message,
                hostname=s.host,
                port=s.port,
                username=s.username,
                password=s.password.reveal() if s.password else None,
                use_tls=s.security == "tls",
                start_tls=s.security == "starttls",
                tls_context=self._tls_context() if s.security != "none" else None,
                timeout=s.timeout_s,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            code = getattr(exc, "code", None)
            detail = f"{type(exc).__name__}" + (f" {code}" if code else "")
            raise MailError(detail) from exc
