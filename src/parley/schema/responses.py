"""The OpenAI Responses API request (``POST /v1/responses``), as Parley reads it.

The typed fields are the ones Parley translates to Chat Completions or acts on itself
(``store``, ``previous_response_id``); input items and tools stay JSON objects here and are
read item by item by the translator (``api/responses/translate.py``), whose errors name
the item (``input[2].call_id``). The decode is not strict about other top-level fields:
an OpenAI upstream receives the body as it came (it validates them itself), and the
translator refuses the ones another provider cannot honour.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta, Struct

from parley.schema.chat import PositiveInt, Temperature, UnitInterval


class ResponsesRequest(Struct, omit_defaults=True):
    model: Annotated[str, Meta(min_length=1)]
    input: str | list[dict[str, Any]] | None = None
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    text: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    max_output_tokens: PositiveInt | None = None
    parallel_tool_calls: bool | None = None
    temperature: Temperature | None = None
    top_p: UnitInterval | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    previous_response_id: str | None = None
    stream: bool = False
    user: str | None = None
    truncation: str | None = None
    include: list[str] | None = None
    background: bool | None = None
    conversation: str | dict[str, Any] | None = None
    prompt: dict[str, Any] | None = None
    top_logprobs: Annotated[int, Meta(ge=0, le=20)] | None = None
    service_tier: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    max_tool_calls: PositiveInt | None = None
    stream_options: dict[str, Any] | None = None


_decoder = msgspec.json.Decoder(ResponsesRequest)
RESPONSES_FIELDS = frozenset(f.encode_name for f in msgspec.structs.fields(ResponsesRequest))
"""The top-level fields Parley reads; others reach OpenAI deployments only."""


def decode_responses_request(body: bytes) -> tuple[ResponsesRequest, dict[str, Any]]:
    """The typed request and the body as a JSON object (what an OpenAI upstream gets)."""
    request = _decoder.decode(body)
    raw = msgspec.json.decode(body)
    assert isinstance(raw, dict)  # the typed decode accepted an object
    return request, raw
