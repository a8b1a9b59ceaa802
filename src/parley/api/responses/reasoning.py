"""Thinking blocks as Responses ``reasoning`` items, and back.

OpenAI keeps a reasoning model's state between stateless turns in the reasoning item's
``encrypted_content``: an opaque string the client hands back, unread, in the next
``input`` (the SDK's pattern: append ``response.output`` to the next request's items).
Parley does the same for the thinking blocks Anthropic and Claude on Bedrock return, which
must come back with their signatures in front of the turn's tool use or Claude refuses the
turn: the blocks' text goes in ``summary`` as ``summary_text`` parts (Anthropic's
thinking is what it lets the user see), and the blocks themselves, each with its
``signature`` (a redacted block with its ``data``), go in ``encrypted_content`` as
``parley.v1.`` followed by the base64url (unpadded) of their JSON.

Nothing here is encrypted or signed by Parley, on purpose. The text is in the summary
already, and each block was signed by the provider, which checks the signature when the
turn comes back: a block a client altered is refused upstream exactly as it would be if
the client had sent it to Anthropic itself. Parley reads the blocks from
``encrypted_content`` only, never from the summary, so what goes back is byte for byte
what came. The prefix carries a version (a later Parley reads what this one wrote) and
tells Parley's content from OpenAI's own (``gAAAA...``), which only OpenAI can read.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import msgspec

from parley.schema.chat import ThinkingBlock

PREFIX = "parley."
"""What every ``encrypted_content`` Parley writes starts with, whatever its version."""
_V1 = PREFIX + "v1."
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
_encode = msgspec.json.Encoder().encode
_decoder = msgspec.json.Decoder(list[ThinkingBlock])


def sendable(blocks: list[ThinkingBlock]) -> list[ThinkingBlock]:
    """The blocks an upstream can take back: signed thinking and redacted thinking. Text
    without a signature (another model's thoughts on Bedrock) stays in the summary only:
    Claude refuses it, and the adapters leave it out anyway."""
    return [
        b
        for b in blocks
        if (b.type == "redacted_thinking" and b.data) or (b.type == "thinking" and b.signature)
    ]


def pack(blocks: list[ThinkingBlock]) -> str:
    """``blocks`` as an ``encrypted_content`` string."""
    payload = base64.urlsafe_b64encode(_encode(blocks)).rstrip(b"=")
    return _V1 + payload.decode("ascii")


def is_parleys(value: object) -> bool:
    """Whether ``value`` is an ``encrypted_content`` Parley wrote (readable or not)."""
    return isinstance(value, str) and value.startswith(PREFIX)


def unpack(value: str) -> list[ThinkingBlock]:
    """The thinking blocks ``pack`` wrote. ``ValueError`` (saying why) for anything
    else: another version, base64 or JSON that is not Parley's, a block without its
    signature or data."""
    if not value.startswith(_V1):
        known = "another version of Parley" if is_parleys(value) else "something other than Parley"
        raise ValueError(f"it was written by {known}")
    payload = value[len(_V1) :]
    if not _BASE64URL.fullmatch(payload):
        raise ValueError("it is not base64url")
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        blocks = _decoder.decode(raw)
    except (binascii.Error, msgspec.DecodeError) as exc:
        raise ValueError("its blocks cannot be read") from exc
    if not blocks:
        raise ValueError("it holds no thinking blocks")
    for block in blocks:
        if block.type == "thinking" and (block.thinking is None or not block.signature):
            raise ValueError("a thinking block has no text or no signature")
        if block.type == "redacted_thinking" and not block.data:
            raise ValueError("a redacted_thinking block has no data")
    return blocks


def is_parleys_item(item: object) -> bool:
    """A reasoning item carrying Parley's ``encrypted_content``: only a translating
    deployment can use it (OpenAI would refuse content it did not encrypt)."""
    return (
        isinstance(item, dict)
        and item.get("type") == "reasoning"
        and is_parleys(item.get("encrypted_content"))
    )


def summary_part(text: str) -> dict[str, Any]:
    return {"type": "summary_text", "text": text}


def summaries(blocks: list[ThinkingBlock]) -> list[str]:
    """The text of each thinking block that has some, one summary part each."""
    return [b.thinking for b in blocks if b.type == "thinking" and b.thinking]


def thinking_item(
    item_id: str, summary: list[str], blocks: list[ThinkingBlock], status: str
) -> dict[str, Any]:
    """The reasoning output item of thinking blocks. ``encrypted_content`` only when some
    block can go back; always then, whatever ``include`` says (docs/api.md: the SDK's
    stateless pattern has to work for a client that never asked)."""
    item: dict[str, Any] = {
        "type": "reasoning",
        "id": item_id,
        "summary": [summary_part(text) for text in summary],
        "status": status,
    }
    kept = sendable(blocks)
    if kept:
        item["encrypted_content"] = pack(kept)
    return item
