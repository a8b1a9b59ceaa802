"""Between the two shapes of an answer: a streamed answer is assembled into one completion
(to cache it once it is complete), and a cached completion is replayed as stream chunks
(to answer a streaming request from the cache)."""

from __future__ import annotations

from dataclasses import dataclass, field

from msgspec import UNSET

from parley.schema.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChunkChoice,
    Delta,
    FunctionCall,
    FunctionDelta,
    ResponseMessage,
    ThinkingBlock,
    ToolCall,
    ToolCallDelta,
    Usage,
)


def _thinking_delta(block: ThinkingBlock) -> Delta:
    if block.type == "redacted_thinking":
        return Delta(redacted_reasoning=block.data or "")
    return Delta(
        reasoning_content=block.thinking or None, reasoning_signature=block.signature or ""
    )


@dataclass(slots=True)
class _ToolCallParts:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _ChoiceParts:
    content: list[str] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    tool_calls: dict[int, _ToolCallParts] = field(default_factory=dict)
    finish_reason: str | None = None
    stop_sequence: str | None = None
    thinking: list[ThinkingBlock] = field(default_factory=list)
    """Signed (or redacted) thinking blocks, so a cached answer keeps its signatures."""
    open_thinking: list[str] = field(default_factory=list)


class Assembler:
    """Collects a stream's chunks; ``completion()`` is None unless every choice finished."""

    def __init__(self) -> None:
        self._choices: dict[int, _ChoiceParts] = {}
        self._head: ChatCompletionChunk | None = None

    def add(self, chunk: ChatCompletionChunk) -> None:
        if self._head is None:
            self._head = chunk
        for choice in chunk.choices:
            parts = self._choices.get(choice.index)
            if parts is None:
                parts = self._choices[choice.index] = _ChoiceParts()
            delta = choice.delta
            if delta.content:
                parts.content.append(delta.content)
            if delta.refusal:
                parts.refusal.append(delta.refusal)
            if delta.reasoning_content:
                parts.reasoning.append(delta.reasoning_content)
                parts.open_thinking.append(delta.reasoning_content)
            if delta.reasoning_signature is not None:
                text = "".join(parts.open_thinking)
                parts.open_thinking.clear()
                block = ThinkingBlock(
                    "thinking", thinking=text, signature=delta.reasoning_signature
                )
                parts.thinking.append(block)
            if delta.redacted_reasoning is not None:
                parts.thinking.append(
                    ThinkingBlock("redacted_thinking", data=delta.redacted_reasoning)
                )
            for call in delta.tool_calls or ():
                tool = parts.tool_calls.get(call.index)
                if tool is None:
                    tool = parts.tool_calls[call.index] = _ToolCallParts()
                if call.id:
                    tool.id = call.id
                if call.function is not None:
                    if call.function.name:
                        tool.name = call.function.name
                    if call.function.arguments:
                        tool.arguments.append(call.function.arguments)
            if choice.finish_reason is not None:
                parts.finish_reason = choice.finish_reason
                if isinstance(choice.stop_sequence, str):
                    parts.stop_sequence = choice.stop_sequence

    def completion(self, usage: Usage | None) -> ChatCompletion | None:
        head = self._head
        if head is None or not self._choices:
            return None
        if any(parts.finish_reason is None for parts in self._choices.values()):
            return None
        choices = [
            Choice(
                index,
                _message(parts),
                parts.finish_reason,
                stop_sequence=UNSET if parts.stop_sequence is None else parts.stop_sequence,
            )
            for index, parts in sorted(self._choices.items())
        ]
        return ChatCompletion(
            head.id,
            head.created,
            head.model,
            choices,
            usage=usage,
            system_fingerprint=head.system_fingerprint,
        )


def _message(parts: _ChoiceParts) -> ResponseMessage:
    calls = [
        ToolCall(tool.id, FunctionCall(tool.name, "".join(tool.arguments)))
        for _, tool in sorted(parts.tool_calls.items())
    ]
    return ResponseMessage(
        content="".join(parts.content) if parts.content or not calls else None,
        tool_calls=calls or None,
        refusal="".join(parts.refusal) if parts.refusal else None,
        reasoning_content="".join(parts.reasoning) if parts.reasoning else UNSET,
        thinking_blocks=parts.thinking or UNSET,
    )


def replay(completion: ChatCompletion, *, include_usage: bool) -> list[ChatCompletionChunk]:
    """The chunks a streaming client would have seen: per choice, the role with the whole
    content (and tool calls), then its finish reason; then usage when asked for."""

    def chunk(choices: list[ChunkChoice]) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            completion.id,
            completion.created,
            completion.model,
            choices,
            system_fingerprint=completion.system_fingerprint,
        )

    chunks: list[ChatCompletionChunk] = []
    for choice in completion.choices:
        message = choice.message
        tool_calls = [
            ToolCallDelta(
                i, call.id, "function", FunctionDelta(call.function.name, call.function.arguments)
            )
            for i, call in enumerate(message.tool_calls or ())
        ]
        reasoning = message.reasoning_content
        if isinstance(message.thinking_blocks, list):  # each block with its signature
            reasoning = UNSET
            chunks += [
                chunk([ChunkChoice(choice.index, _thinking_delta(block))])
                for block in message.thinking_blocks
            ]
        delta = Delta(
            role="assistant",
            content=message.content,
            tool_calls=tool_calls or None,
            refusal=message.refusal,
            reasoning_content=reasoning if isinstance(reasoning, str) else None,
        )
        chunks.append(chunk([ChunkChoice(choice.index, delta)]))
        end = ChunkChoice(choice.index, Delta(), choice.finish_reason)
        end.stop_sequence = choice.stop_sequence
        chunks.append(chunk([end]))
    if include_usage and completion.usage is not None:
        last = chunk([])
        last.usage = completion.usage
        chunks.append(last)
    return chunks
