"""The chat body's decode: fields Parley has no type for are kept (``extra``), never
silently lost, and spliced back at the top level for an upstream that takes them."""

from __future__ import annotations

import json

import msgspec
import pytest

from parley.config.loader import parse_models, resolve_groups
from parley.errors import ConfigError
from parley.providers.http import UpstreamPool
from parley.providers.openai_compatible import OpenAICompatibleProvider
from parley.schema.chat import decode_chat_request

BASE = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def decode(**fields: object) -> object:
    return decode_chat_request(json.dumps({**BASE, **fields}).encode())


def test_a_typed_body_has_no_extra() -> None:
    request = decode(temperature=0.5, top_k=3, store=True)
    assert request.extra is None  # type: ignore[attr-defined]


def test_unknown_top_level_fields_are_kept_as_sent() -> None:
    request = decode(min_p=0.1, repeat_penalty=1.1, chat_template_kwargs={"a": [1]})
    assert request.extra == {  # type: ignore[attr-defined]
        "min_p": 0.1,
        "repeat_penalty": 1.1,
        "chat_template_kwargs": {"a": [1]},
    }


def test_a_clients_own_extra_key_is_just_another_unknown_field() -> None:
    request = decode(extra={"min_p": 0.1})
    assert request.extra == {"extra": {"min_p": 0.1}}  # type: ignore[attr-defined]


def test_unknown_fields_inside_cache_are_still_refused() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"unknown field `zz` - at `\$.cache`"):
        decode(cache={"zz": 1}, min_p=0.1)


async def test_extras_are_spliced_into_the_upstream_body() -> None:
    parsed = parse_models(
        {
            "models": [
                {
                    "name": "g",
                    "deployments": [
                        {
                            "provider": "openai_compatible",
                            "model": "llama",
                            "api_base": "http://127.0.0.1:9/v1",
                        }
                    ],
                }
            ]
        }
    )
    (group,) = resolve_groups(parsed, {})
    pool = UpstreamPool()
    deployment = group.deployments[0]
    provider = OpenAICompatibleProvider(
        deployment, pool.client_for(deployment.api_base, deployment.timeout, 1, deployment.label)
    )
    try:
        body = provider._chat_body(decode(min_p=0.1, top_k=4))  # type: ignore[arg-type]
        assert json.loads(body) == {**BASE, "model": "llama", "min_p": 0.1, "top_k": 4}
    finally:
        await pool.close()


def test_refused_params_cannot_refuse_what_every_request_has() -> None:
    dep = {"provider": "openai_compatible", "model": "m", "api_base": "http://127.0.0.1:9/v1"}
    with pytest.raises(ConfigError, match=r"refused_params: cannot refuse 'messages'"):
        parse_models(
            {"models": [{"name": "g", "deployments": [{**dep, "refused_params": ["messages"]}]}]}
        )
