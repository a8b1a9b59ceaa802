"""Hostile request input gets a 400 in the route's own error format, never a 500: JSON
nested deeper than the decoder's stack (every JSON route, unauthenticated ones included)
and deadline headers that are not a sane number of seconds."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import structlog.testing

from parley.api.jsonbody import MAX_JSON_DEPTH
from tests.conftest import ParleyFactory

ADMIN = "admin-secret-for-tests-0123456789"
CHAT = {"model": "openai", "messages": [{"role": "user", "content": "hi"}]}


def nested(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


def deep_in(body: dict[str, Any], levels: int) -> bytes:
    """``body`` with a ``"deep"`` value nested ``levels`` arrays down (as JSON bytes)."""
    head = httpx.Request("POST", "/", json={**body, "deep": 0}).content
    return head.replace(b'"deep":0', b'"deep":' + nested(levels))


def assert_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


@pytest.fixture
def url(parley: ParleyFactory) -> str:
    return parley(admin_key=ADMIN, allow_registration=True)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/auth/login", {"email": "ada@example.com", "password": "x" * 12}),
        ("/auth/register", {"email": "ada@example.com", "password": "x" * 12, "name": "A"}),
        ("/admin/keys", {"name": "ci"}),
        ("/admin/teams", {"name": "t"}),
    ],
)
def test_deep_json_is_a_400_on_framework_routes(url: str, path: str, body: Any) -> None:
    """Nesting past the decoder's recursion limit (2,000 levels) and just past Parley's own
    bound are both a 400 ``invalid_json`` naming the limit, with no traceback logged;
    exactly the bound still reaches validation (a field error, not a JSON error)."""
    headers = {"authorization": f"Bearer {ADMIN}", "content-type": "application/json"}
    with structlog.testing.capture_logs() as logs:
        for levels in (2_000, MAX_JSON_DEPTH):
            # the top-level object is one level, so "deep" adds levels - 1 more for the limit
            response = httpx.post(
                url + path, content=deep_in(body, levels), headers=headers, timeout=20
            )
            error = assert_error(response, 400)
            assert error["code"] == "invalid_json"
            assert f"{MAX_JSON_DEPTH} levels" in error["message"]
        ok_depth = httpx.post(
            url + path, content=deep_in(body, MAX_JSON_DEPTH - 1), headers=headers, timeout=20
        )
        assert assert_error(ok_depth, 400)["code"] != "invalid_json"  # "deep" is not a field
        whole = httpx.post(url + path, content=nested(5_000), headers=headers, timeout=20)
        assert assert_error(whole, 400)["code"] == "invalid_json"
    assert not [entry for entry in logs if entry["log_level"] in ("error", "critical")]
    assert not [entry for entry in logs if "exc_info" in entry]


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/embeddings"])
def test_deep_json_is_a_400_on_v1(url: str, path: str) -> None:
    """/v1 decodes typed bodies: nesting inside a free-form field (tool parameters,
    metadata) past the recursion limit is an OpenAI-shaped 400, not a 500."""
    body = (
        CHAT | {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}
        if path.endswith("completions")
        else {"model": "openai", "input": []}
    )
    raw = httpx.Request("POST", "/", json=body).content
    if path.endswith("completions"):
        raw = raw.replace(b'"parameters":{}', b'"parameters":{"x":' + nested(3_000) + b"}")
    else:
        raw = raw.replace(b'"input":[]', b'"input":' + nested(3_000))
    headers = {"authorization": f"Bearer {ADMIN}", "content-type": "application/json"}
    with structlog.testing.capture_logs() as logs:
        response = httpx.post(url + path, content=raw, headers=headers, timeout=20)
    error = assert_error(response, 400)
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "invalid_json"
    assert not [entry for entry in logs if "exc_info" in entry]


@pytest.mark.parametrize(
    "value", ["nan", "NaN", "inf", "-inf", "1e308", "86401", "0", "-1", "1_0", "0x10", "\xb2"]
)
@pytest.mark.parametrize("header", ["x-parley-timeout", "x-stainless-timeout"])
def test_bad_deadline_headers_are_a_400(url: str, header: str, value: str) -> None:
    """Non-numbers (Python's float() takes '1_0' and 'nan'), non-finite, non-positive and
    over-a-day deadlines are refused. The OpenAI SDK's own ``x-stainless-timeout`` is the
    exception for long values: a client willing to wait longer than a day sets no deadline."""
    headers = {"authorization": f"Bearer {ADMIN}", header: value.encode("latin-1")}
    with structlog.testing.capture_logs() as logs:
        response = httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=headers)
    if header == "x-stainless-timeout" and value in ("1e308", "86401"):
        assert response.status_code == 200, response.text
        return
    error = assert_error(response, 400)
    assert error["type"] == "invalid_request_error"
    assert header in error["message"]
    assert not [entry for entry in logs if "exc_info" in entry]


@pytest.mark.parametrize("value", ["30", "0.5", "86400", "600.0", "2.5e1", ".5"])
def test_sane_deadline_headers_are_served(url: str, value: str) -> None:
    headers = {"authorization": f"Bearer {ADMIN}", "x-parley-timeout": value}
    response = httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=headers)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("value", ["\xb2", "0", "6", "1.0"])
def test_bad_priority_header_is_a_400(url: str, value: str) -> None:
    """``str.isdigit`` is true for '\xb2' (superscript two), which ``int`` refuses: a 500."""
    headers = {"authorization": f"Bearer {ADMIN}", "x-parley-priority": value.encode("latin-1")}
    response = httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=headers)
    assert assert_error(response, 400)["message"].startswith("x-parley-priority")


def test_cache_control_max_age_takes_ascii_digits_only(url: str) -> None:
    """'²' passed ``isdigit`` and reached ``float``: a 400 worded by Python, not by us."""
    headers = {"authorization": f"Bearer {ADMIN}", "cache-control": b"max-age=\xb2"}
    response = httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=headers)
    message = assert_error(response, 400)["message"]
    assert message == "Cache-Control max-age must be a whole number of seconds"
