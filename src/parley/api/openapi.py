"""The published OpenAPI document: what each route really reads and answers.

Handlers read raw bodies and query strings (msgspec on the hot path, pydantic for the
rest), so FastAPI alone sees routes with no inputs. ``ROUTES`` names, per operation, the
type its body is validated with and the query parameters it reads; ``build_openapi``
takes FastAPI's document and adds them, with JSON Schemas generated from those same types
(``msgspec.json.schema_components``, pydantic's ``models_json_schema``), so the document
cannot drift from validation. Error answers are declared as the OpenAI error envelope
every route sends (FastAPI's 422 ``HTTPValidationError`` is never sent). The document is
built once, on first request of ``/openapi.json``, and cached (FastAPI's own contract).
A test checks every route reading a body or query string is listed here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from parley.api import account, admin_models, auth, conversations, passkeys, presets
from parley.config.models import ModelGroupConfig
from parley.identity.schemas import (
    AnomalyReview,
    AnomalyScan,
    InvitationCreate,
    KeyCreate,
    MemberSet,
    PasswordReset,
    TeamCreate,
    TeamUpdate,
    UserUpdate,
)
from parley.schema.chat import ChatRequest, EmbeddingRequest
from parley.schema.messages import CountTokensRequest, MessagesRequest
from parley.schema.responses import ResponsesRequest

_REF = "#/components/schemas/{name}"
_ERROR = "ErrorResponse"
_ANTHROPIC_ERROR = "AnthropicErrorResponse"


@dataclass(frozen=True, slots=True)
class Query:
    name: str
    schema: dict[str, Any]
    description: str = ""
    required: bool = False


@dataclass(frozen=True, slots=True)
class Inputs:
    """What one operation reads: a body type (or a JSON Schema) and query parameters."""

    body: type[BaseModel] | type[msgspec.Struct] | dict[str, Any] | None = None
    body_required: bool = True
    query: Sequence[Query] = ()
    success: Sequence[str] = field(default=("application/json",))
    """Media types a 2xx answer may have."""
    error: str = _ERROR
    """The component naming the envelope its errors come in."""


def _string(description: str = "", **extra: Any) -> dict[str, Any]:
    return {"type": "string", **extra} | ({"description": description} if description else {})


def _int(low: int, high: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": low, "maximum": high}


def _flag() -> dict[str, Any]:
    return {"type": "string", "enum": ["true", "false"]}


def _q(
    name: str, schema: dict[str, Any], description: str = "", *, required: bool = False
) -> Query:
    return Query(name, schema, description, required)


_LIMIT_OFFSET = (
    _q("limit", _int(1, 1000), "page size (default 100)"),
    _q("offset", _int(0, 10**9), "rows to skip"),
)
_GRACE = {
    "type": "object",
    "properties": {"grace_seconds": {"type": "number", "minimum": 0, "default": 86400}},
    "description": "How long the old key keeps working (seconds).",
}
_IMPORT = {
    "description": "A Parley export (GET .../export) or ChatGPT's conversations.json "
    "(a list of conversations, or one of them).",
    "anyOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}],
}
_TIME = _string("milliseconds since the epoch, or an ISO 8601 date/time (UTC by default)")

_USAGE_QUERY = (
    _q(
        "group_by",
        _string(enum=["day", "hour", "key", "user", "team", "model_group"]),
        "default day",
    ),
    _q("sort", _string(enum=["bucket", "cost", "requests"]), "default bucket"),
    _q("team_id", _string()),
    _q("key_id", _string()),
    _q("user_id", _string()),
    _q("model_group", _string()),
    _q("start", _TIME),
    _q("end", _TIME),
    *_LIMIT_OFFSET,
)

ROUTES: dict[tuple[str, str], Inputs] = {
    # /v1 (msgspec)
    ("post", "/v1/chat/completions"): Inputs(
        ChatRequest, success=("application/json", "text/event-stream")
    ),
    ("post", "/v1/embeddings"): Inputs(EmbeddingRequest),
    ("post", "/v1/responses"): Inputs(
        ResponsesRequest, success=("application/json", "text/event-stream")
    ),
    ("get", "/v1/responses/{response_id}/input_items"): Inputs(
        query=(
            _q("limit", _int(1, 100), "page size (default 20)"),
            _q("order", _string(enum=["asc", "desc"]), "default desc (newest first)"),
            _q("after", _string("an item id: list the items after it")),
        )
    ),
    # /v1/messages (msgspec, schema/messages.py): Anthropic's shapes, errors included
    ("post", "/v1/messages"): Inputs(
        MessagesRequest, success=("application/json", "text/event-stream"), error=_ANTHROPIC_ERROR
    ),
    ("post", "/v1/messages/count_tokens"): Inputs(CountTokensRequest, error=_ANTHROPIC_ERROR),
    # /admin (pydantic, identity/schemas.py)
    ("post", "/admin/keys"): Inputs(KeyCreate),
    ("get", "/admin/keys"): Inputs(query=(_q("team_id", _string()), _q("user_id", _string()))),
    ("post", "/admin/keys/{key_id}/rotate"): Inputs(_GRACE, body_required=False),
    ("delete", "/admin/cache"): Inputs(
        query=(
            _q("namespace", _string("a cache namespace, as in x-parley-cache's docs")),
            _q("team_id", _string("the team's namespace (team.<id>)")),
            _q("model", _string("a model group")),
        )
    ),
    ("get", "/admin/usage"): Inputs(
        query=(*_USAGE_QUERY, _q("format", _string(enum=["json", "csv"]), "csv: as usage.csv")),
        success=("application/json", "text/csv"),
    ),
    ("get", "/admin/usage.csv"): Inputs(query=_USAGE_QUERY, success=("text/csv",)),
    ("get", "/admin/overview"): Inputs(
        query=(
            _q("window", _string(enum=["hour", "day", "week"]), "default day"),
            _q("team_id", _string("a team you administer (team admins)")),
        )
    ),
    ("get", "/admin/audit"): Inputs(
        query=(
            _q("actor", _string("a user id, admin-key, cli or anonymous")),
            _q("action", _string("an action (key.create), or a prefix ending in .*")),
            _q("target", _string()),
            _q("team_id", _string("a team you administer (team admins)")),
            _q("start", _TIME),
            _q("end", _TIME),
            _q("cursor", _string("next_cursor of the previous page")),
            _q("limit", _int(1, 1000), "page size (default 100)"),
        )
    ),
    ("get", "/admin/alerts"): Inputs(
        query=(
            _q("status", _string(enum=["pending", "delivered", "failed"])),
            *_LIMIT_OFFSET,
        )
    ),
    ("get", "/admin/spend/forecast"): Inputs(),
    ("get", "/admin/anomalies"): Inputs(
        query=(
            _q("status", _string("open, dismissed or confirmed")),
            *_LIMIT_OFFSET,
        )
    ),
    ("post", "/admin/anomalies/scan"): Inputs(AnomalyScan, body_required=False),
    ("post", "/admin/anomalies/{anomaly_id}/review"): Inputs(AnomalyReview),
    ("post", "/admin/models"): Inputs(ModelGroupConfig),
    ("put", "/admin/models/{name}"): Inputs(ModelGroupConfig),
    ("post", "/admin/models/test"): Inputs(
        ModelGroupConfig,
        query=(_q("deployment", _int(0, 1000), "the deployment to try (default 0)"),),
    ),
    ("post", "/admin/models/{name}/rollback"): Inputs(admin_models.Rollback),
    ("get", "/admin/models/{name}/revisions"): Inputs(query=(_q("limit", _int(1, 1000)),)),
    ("post", "/admin/teams"): Inputs(TeamCreate),
    ("get", "/admin/teams"): Inputs(),
    ("patch", "/admin/teams/{team_id}"): Inputs(TeamUpdate),
    ("put", "/admin/teams/{team_id}/members/{user_id}"): Inputs(MemberSet),
    ("post", "/admin/teams/{team_id}/invitations"): Inputs(InvitationCreate),
    ("get", "/admin/users"): Inputs(query=_LIMIT_OFFSET),
    ("patch", "/admin/users/{user_id}"): Inputs(UserUpdate),
    ("post", "/admin/users/{user_id}/password-reset"): Inputs(PasswordReset, body_required=False),
    ("post", "/admin/users/{user_id}/mfa-reset"): Inputs(),
    # /auth
    ("post", "/auth/register"): Inputs(auth.Register),
    ("post", "/auth/login"): Inputs(auth.Login),
    ("post", "/auth/login/mfa"): Inputs(auth.LoginMfa),
    ("post", "/auth/login/step-up"): Inputs(auth.LoginStepUp),
    ("post", "/auth/refresh"): Inputs(auth.Refresh),
    ("post", "/auth/password"): Inputs(auth.PasswordChange),
    ("post", "/auth/password-reset"): Inputs(auth.ResetRequest),
    ("post", "/auth/password-reset/confirm"): Inputs(auth.ResetConfirm),
    ("post", "/auth/verify-email"): Inputs(auth.TokenBody),
    ("post", "/auth/email"): Inputs(auth.EmailChange),
    ("post", "/auth/mfa/verify"): Inputs(auth.Code),
    ("post", "/auth/mfa/disable"): Inputs(auth.Code),
    ("post", "/auth/passkeys/register"): Inputs(passkeys.PasskeyRegister),
    ("post", "/auth/passkeys/login"): Inputs(passkeys.PasskeyLogin),
    ("post", "/auth/passkeys/mfa/options"): Inputs(passkeys.PasskeyMfaOptions),
    ("patch", "/auth/passkeys/{passkey_id}"): Inputs(passkeys.PasskeyRename),
    ("post", "/api/account/delete"): Inputs(account.AccountDelete),
    # /api/conversations, /api/search, /api/presets
    ("post", "/api/conversations"): Inputs(conversations.ConversationCreate),
    ("get", "/api/conversations"): Inputs(
        query=(
            _q("limit", _int(1, 200), "page size (default 50)"),
            _q("cursor", _string("next_cursor of the previous page")),
            _q("archived", _flag(), "default false"),
            _q("pinned", _flag()),
            _q("tag", _string()),
        )
    ),
    ("post", "/api/conversations/import"): Inputs(_IMPORT),
    ("get", "/api/conversations/{conversation_id}/export"): Inputs(
        query=(_q("format", _string(enum=["json", "markdown"]), "default json"),),
        success=("application/json", "text/markdown"),
    ),
    ("get", "/api/conversations/{conversation_id}"): Inputs(
        query=(
            _q("limit", _int(1, 500), "messages of the current branch (default 50)"),
            _q("before", _string("a message id: the page before it")),
        )
    ),
    ("patch", "/api/conversations/{conversation_id}"): Inputs(conversations.ConversationUpdate),
    ("delete", "/api/conversations/{conversation_id}"): Inputs(
        query=(_q("purge", _flag(), "true: remove for good now"),)
    ),
    ("post", "/api/conversations/{conversation_id}/branch"): Inputs(conversations.BranchSelect),
    ("post", "/api/conversations/{conversation_id}/messages"): Inputs(conversations.MessageSend),
    ("get", "/api/conversations/{conversation_id}/messages/{message_id}/stream"): Inputs(
        success=("text/event-stream",)
    ),
    ("post", "/api/conversations/{conversation_id}/messages/{message_id}/edit"): Inputs(
        conversations.MessageEdit
    ),
    ("post", "/api/conversations/{conversation_id}/messages/{message_id}/regenerate"): Inputs(
        conversations.Regenerate
    ),
    ("post", "/api/conversations/{conversation_id}/fork"): Inputs(conversations.Fork),
    ("post", "/api/conversations/{conversation_id}/shares"): Inputs(conversations.ShareCreate),
    ("get", "/api/search"): Inputs(
        query=(
            _q("q", _string("every word must match", minLength=1, maxLength=1000), required=True),
            _q("limit", _int(1, 100), "default 20"),
            _q("mode", _string(enum=["hybrid", "text"])),
            _q("conversation_id", _string()),
            _q("kind", _string(enum=["message", "title"])),
            _q("role", _string(enum=["user", "assistant"])),
            _q("since", _int(0, 2**53), "milliseconds since the epoch"),
            _q("until", _int(0, 2**53), "milliseconds since the epoch"),
        )
    ),
    ("post", "/api/presets"): Inputs(presets.PresetCreate),
    ("patch", "/api/presets/{preset_id}"): Inputs(presets.PresetUpdate),
    # text answers
    ("get", "/metrics"): Inputs(success=("text/plain",)),
}

_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "OpenAI's error envelope; every error Parley sends has this shape.",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}


_ANTHROPIC_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Anthropic's error envelope, which /v1/messages answers in.",
    "required": ["type", "error"],
    "properties": {
        "type": {"const": "error"},
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
        },
    },
}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document with each route's real inputs and error answers."""
    doc = get_openapi(title=app.title, version=app.version, routes=app.routes)
    components = doc.setdefault("components", {})
    schemas: dict[str, Any] = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)  # FastAPI's 422 body: Parley answers 400 in its own shape
    schemas[_ERROR] = _ERROR_SCHEMA
    schemas[_ANTHROPIC_ERROR] = _ANTHROPIC_ERROR_SCHEMA
    body_refs = _body_schemas(schemas)
    components["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key (pk-...), the admin key, or a user's access token.",
        }
    }
    for path, operations in doc.get("paths", {}).items():
        for method, operation in operations.items():
            _describe(operation, ROUTES.get((method, path), Inputs()), body_refs)
    return doc


def _describe(operation: dict[str, Any], inputs: Inputs, refs: dict[object, Any]) -> None:
    if inputs.body is not None:
        operation["requestBody"] = {
            "required": inputs.body_required,
            "content": {"application/json": {"schema": refs[id(inputs.body)]}},
        }
    if inputs.query:
        params = operation.setdefault("parameters", [])
        for query in inputs.query:
            entry: dict[str, Any] = {"name": query.name, "in": "query", "schema": query.schema}
            if query.description:
                entry["description"] = query.description
            if query.required:
                entry["required"] = True
            params.append(entry)
    responses = operation.setdefault("responses", {})
    responses.pop("422", None)
    ok = responses.pop("200", {"description": "Success"})
    ok["content"] = {media: {} for media in inputs.success}
    if "application/json" in inputs.success:
        ok["content"]["application/json"] = {"schema": {}}
    responses["2XX"] = ok
    envelope = "Anthropic's" if inputs.error == _ANTHROPIC_ERROR else "OpenAI's"
    error = {
        "description": f"An error in {envelope} envelope",
        "content": {"application/json": {"schema": {"$ref": _REF.format(name=inputs.error)}}},
    }
    responses["4XX"] = error
    responses["5XX"] = error


def _body_schemas(schemas: dict[str, Any]) -> dict[object, Any]:
    """JSON Schemas for every body type in ``ROUTES``, added to ``schemas``; returns each
    body's schema (a ``$ref``, or the inline schema) by the identity of its type."""
    bodies = [inputs.body for inputs in ROUTES.values() if inputs.body is not None]
    structs = _unique(b for b in bodies if isinstance(b, type) and issubclass(b, msgspec.Struct))
    models = _unique(b for b in bodies if isinstance(b, type) and issubclass(b, BaseModel))
    refs: dict[object, Any] = {id(b): b for b in bodies if isinstance(b, dict)}
    struct_refs, struct_defs = msgspec.json.schema_components(structs, ref_template=_REF)
    model_refs, model_defs = models_json_schema(
        [(m, "validation") for m in models], ref_template="#/components/schemas/{model}"
    )
    for name, schema in [*struct_defs.items(), *model_defs.get("$defs", {}).items()]:
        if schemas.get(name, schema) != schema:
            raise ValueError(f"two request types are named {name!r}; rename one")
        schemas[name] = schema
    refs.update({id(s): ref for s, ref in zip(structs, struct_refs, strict=True)})
    refs.update({id(m): model_refs[(m, "validation")] for m in models})
    return refs


def _unique(items: Any) -> list[Any]:
    seen: list[Any] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def install_openapi(app: FastAPI) -> None:
    """Serve ``build_openapi``'s document at the app's ``openapi_url``, built once."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
