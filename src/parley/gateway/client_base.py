"""The SSRF guard for a client-chosen upstream (``api_base`` / ``base_url`` in a request).

A deployment's credentials are the operator's: they may only ever go to the URL the
operator configured. Where an admin sets ``allow_client_api_base``, a request may name its
own upstream, but then it is the client's upstream, called with the client's key (the
``x-parley-upstream-key`` header) and nothing of the deployment's: no ``api_key``, no
``azure_ad_token``, no AWS credentials and none of its ``extra_headers`` (Parley cannot
tell which of those carry credentials, so none go). Every attempt (retries and fallbacks
included) builds its deployment here, so no path sends a configured secret to the client's
URL.
"""

from __future__ import annotations

import dataclasses
from urllib.parse import urlsplit

from parley.config.loader import Deployment
from parley.config.secrets import Secret
from parley.errors import InvalidRequest
from parley.providers.http1 import split_url

UPSTREAM_KEY_HEADER = "x-parley-upstream-key"
"""The request header carrying the client's own key for the upstream it names."""


def client_deployment(
    deployment: Deployment,
    override: str,
    param: str,
    upstream_key: Secret | None,
    model: str,
) -> Deployment:
    """``deployment`` pointed at ``override`` with the client's key in place of its own
    credentials; ``InvalidRequest`` (400 naming ``param``) when that is not allowed."""
    if not deployment.allow_client_api_base:
        raise InvalidRequest(f"{param} cannot be set per request for model {model!r}", param=param)
    try:
        split_url(override)  # the transport's own reading of it
    except ValueError:
        raise InvalidRequest(f"{param} must be an http(s) URL", param=param) from None
    if "@" in urlsplit(override).netloc:
        raise InvalidRequest(
            f"{param} must not carry credentials (user:password@); "
            f"send your upstream key in the {UPSTREAM_KEY_HEADER} header",
            param=param,
        )
    if upstream_key is None:
        raise InvalidRequest(
            f"{param} needs your own upstream key in the {UPSTREAM_KEY_HEADER} header: "
            "a client-chosen upstream never receives the deployment's credentials",
            param=param,
            code="missing_upstream_key",
        )
    return dataclasses.replace(
        deployment,
        api_base=override.rstrip("/"),
        api_key=upstream_key,
        azure_ad_token=None,
        aws=None,  # Bedrock: the client's key goes as a Bedrock API key (bearer)
        extra_headers={},
    )
