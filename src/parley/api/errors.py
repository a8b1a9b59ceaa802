"""Every error leaves as OpenAI-shaped JSON: ``{"error": {message, type, param, code}}``."""

from __future__ import annotations

import msgspec
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from parley.errors import ParleyError
from parley.observability.logging import get_logger
from parley.observability.redact import redactor

log = get_logger(__name__)
_JSON = "application/json"


def error_response(
    status: int,
    message: str,
    error_type: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = msgspec.json.encode(
        {
            "error": {
                "message": redactor.scrub(message),
                "type": error_type,
                "param": param,
                "code": code,
            }
        }
    )
    return Response(body, status_code=status, media_type=_JSON, headers=headers)


def render_parley_error(exc: ParleyError) -> Response:
    if exc.status_code >= 500:
        log.warning("request failed", status=exc.status_code, error=exc.message)
    body = exc.to_body()
    error = body["error"]
    assert isinstance(error, dict)
    error["message"] = redactor.scrub(exc.message)
    return Response(
        msgspec.json.encode(body),
        status_code=exc.status_code,
        media_type=_JSON,
        headers=exc.headers,
    )


async def _parley_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ParleyError)
    return render_parley_error(exc)


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error_type = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
    return error_response(
        exc.status_code, str(exc.detail), error_type, headers=dict(exc.headers or {})
    )


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    param = ".".join(str(p) for p in first["loc"] if p != "body") or None
    return error_response(400, str(first["msg"]), "invalid_request_error", param=param)


async def _unexpected(_: Request, exc: Exception) -> Response:
    return render_unexpected()


def render_unexpected() -> Response:
    """Call inside the ``except`` block: the traceback goes to the log, not the client."""
    log.exception("unhandled error")
    return error_response(
        500,
        "internal error; see server logs with the x-request-id",
        "api_error",
        code="internal_error",
    )


def render_client_gone() -> Response:
    """The client hung up (or was cut off for sending too slowly: ``api/server.py``) before
    its request body arrived: nothing to answer and no bug, so no traceback."""
    log.info("client gone before its request was read")
    return Response(status_code=400)


async def _client_gone(_: Request, exc: Exception) -> Response:
    return render_client_gone()


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(ParleyError, _parley_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
