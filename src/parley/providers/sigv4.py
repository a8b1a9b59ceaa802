"""AWS Signature Version 4 for Bedrock requests, with botocore's signer.

Signing is done by ``botocore.auth.SigV4Auth``, the code every AWS SDK for Python signs
with, rather than by hand: the canonical request (URI double-encoding, header trimming,
payload hash) is where home-made signers go wrong. botocore costs roughly 150 ms to import,
so this module is imported only when a Bedrock deployment is built
(``providers/factory.py``); a Parley without Bedrock never loads it.

The signed headers are ``host``, ``x-amz-date``, ``content-type`` (and
``x-amz-security-token`` with temporary credentials); everything else the transport adds
(``Content-Length``, ``User-Agent``, ``Accept-Encoding``) is left unsigned, as the AWS
SDKs leave it.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

from parley.config.loader import AwsCredentials

SERVICE = "bedrock"
"""Bedrock Runtime's signing name (its endpoint prefix is ``bedrock-runtime``)."""


def host_of(url: str) -> str:
    """The ``Host`` value for ``url``: the port only when it is not the scheme's default,
    exactly as it is signed and as the transport sends it."""
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return host if parts.port in (None, default) else f"{host}:{parts.port}"


class SigV4Signer:
    """Signs one POST at a time; holds the credentials, never logs them."""

    def __init__(self, credentials: AwsCredentials, service: str = SERVICE) -> None:
        self._credentials = credentials
        self._service = service

    @property
    def region(self) -> str:
        return self._credentials.region

    def sign(self, url: str, headers: Mapping[str, str], body: bytes) -> dict[str, str]:
        """``headers`` plus ``Host``, ``X-Amz-Date``, ``Authorization`` (and
        ``X-Amz-Security-Token``), for a POST of ``body`` to ``url`` now."""
        creds = self._credentials
        frozen = ReadOnlyCredentials(
            creds.access_key_id.reveal(),
            creds.secret_access_key.reveal(),
            creds.session_token.reveal() if creds.session_token is not None else None,
        )
        request = AWSRequest(
            method="POST", url=url, data=body, headers={**headers, "Host": host_of(url)}
        )
        SigV4Auth(frozen, self._service, creds.region).add_auth(request)
        return dict(request.headers.items())
