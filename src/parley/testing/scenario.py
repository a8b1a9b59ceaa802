"""What a fake upstream does for one call: timing, faults and the answer's content.

Behaviour comes from three places, later ones winning: the server's defaults, directives in
the model name (TensorZero-style magic names), and faults queued by a test. Directives are
joined with ``+``, e.g. ``gpt-4o-mini+ttft-2+stream-cut-3``:

    latency-S        wait S seconds before response headers
    ttft-S           (streams) wait S seconds after headers before the first chunk
    chunk-delay-S    (streams) wait S seconds between chunks
    tokens-N         answer with N words instead of echoing the prompt
    markdown-N       answer with about N characters of Markdown (headings, lists, code
                     fences, tables, math), whole sections, the same every time
    delta-chars-N    (streams) send the answer's text in N-character deltas, not by word
    error-NNN        answer HTTP NNN in the provider's error format
    rate-limited     429 with Retry-After: 7
    slow             ttft-5
    stream-cut[-N]   reset the connection after N chunks (default 2)
    stream-malformed[-N]  send an unparsable chunk after N chunks (default 2)
    stream-error[-N] send the provider's in-band error event after N chunks (default 2)
    no-usage         (OpenAI format) leave usage out, as some compatible servers do
    sparse           (OpenAI format) leave out id, created, model and choices' index, as
                     some compatible servers do
    reasoning        (OpenAI format) send reasoning_content before the answer (in the
                     message, or as deltas), as vLLM, llama.cpp and DeepSeek do
    context-overflow 400 saying the prompt exceeds the model's context window
    content-filter   400 saying the content was refused by the content policy
    parallel-tools   call every offered tool, not just the first (streams interleave the
                     calls' argument pieces in the OpenAI format)
    fine-args        (streams) split tool-call arguments into 3-character pieces
    cached-N         (OpenAI, Gemini formats) report N prompt tokens read from the cache
                     (Anthropic's fake reports cache reads and writes from the request's
                     ``cache_control`` breakpoints instead)
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import struct
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class Behaviour:
    latency: float = 0.0
    ttft: float = 0.0
    chunk_delay: float = 0.0
    tokens: int | None = None
    markdown: int | None = None
    delta_chars: int | None = None
    status: int | None = None
    retry_after: str | None = None
    cut_after: int | None = None
    malformed_after: int | None = None
    omit_usage: bool = False
    error_after: int | None = None
    error_message: str | None = None
    sparse: bool = False
    reasoning: bool = False
    parallel_tools: bool = False
    fine_args: bool = False
    cached: int = 0


CONTEXT_OVERFLOW = (
    "This model's maximum context length is 8192 tokens. However, your messages resulted "
    "in 9120 tokens. Please reduce the length of the messages."
)
CONTENT_FILTER = (
    "Your request was rejected as a result of our safety system: it may contain content "
    "that is not allowed by our content policy."
)


_DIRECTIVE = re.compile(
    r"^(?P<name>latency|ttft|chunk-delay|tokens|markdown|delta-chars|error|stream-cut"
    r"|stream-malformed|stream-error|cached)"
    r"(?:-(?P<value>[0-9.]+))?$"
)


def parse_model(model: str, base: Behaviour) -> Behaviour:
    behaviour = base
    for part in model.split("+")[1:] if "+" in model else [model]:
        if part == "rate-limited":
            behaviour = replace(behaviour, status=429, retry_after="7")
            continue
        if part == "no-usage":
            behaviour = replace(behaviour, omit_usage=True)
            continue
        if part == "sparse":
            behaviour = replace(behaviour, sparse=True)
            continue
        if part == "reasoning":
            behaviour = replace(behaviour, reasoning=True)
            continue
        if part == "parallel-tools":
            behaviour = replace(behaviour, parallel_tools=True)
            continue
        if part == "fine-args":
            behaviour = replace(behaviour, fine_args=True)
            continue
        if part == "context-overflow":
            behaviour = replace(behaviour, status=400, error_message=CONTEXT_OVERFLOW)
            continue
        if part == "content-filter":
            behaviour = replace(behaviour, status=400, error_message=CONTENT_FILTER)
            continue
        if part == "slow":
            behaviour = replace(behaviour, ttft=5.0)
            continue
        match = _DIRECTIVE.match(part)
        if match is None:
            continue
        name, value = match["name"], match["value"]
        if name == "latency" and value:
            behaviour = replace(behaviour, latency=float(value))
        elif name == "ttft" and value:
            behaviour = replace(behaviour, ttft=float(value))
        elif name == "chunk-delay" and value:
            behaviour = replace(behaviour, chunk_delay=float(value))
        elif name == "tokens" and value:
            behaviour = replace(behaviour, tokens=int(value))
        elif name == "markdown" and value:
            behaviour = replace(behaviour, markdown=int(value))
        elif name == "delta-chars" and value:
            behaviour = replace(behaviour, delta_chars=int(value))
        elif name == "error" and value:
            behaviour = replace(behaviour, status=int(value))
        elif name == "stream-cut":
            behaviour = replace(behaviour, cut_after=int(value or 2))
        elif name == "stream-error":
            behaviour = replace(behaviour, error_after=int(value or 2))
        elif name == "stream-malformed":
            behaviour = replace(behaviour, malformed_after=int(value or 2))
        elif name == "cached" and value:
            behaviour = replace(behaviour, cached=int(value))
    return behaviour


@dataclass(slots=True)
class Conversation:
    """The provider-neutral reading of a request that the answer is made from."""

    last_user_text: str
    prompt_words: int
    tools: list[dict[str, Any]]  # [{"name", "schema"}]
    forced_tool: str | None
    tool_result: str | None  # text of the latest tool result, if the last turn is one
    json_schema: dict[str, Any] | None
    json_mode: bool
    tools_disabled: bool = False
    thinking: bool = False
    """Anthropic's ``thinking`` is enabled: answer with a signed thinking block first."""


@dataclass(slots=True)
class Answer:
    text: str | None
    tool_name: str | None = None
    tool_args: dict[str, Any] | None = None
    reasoning: str | None = None
    more_calls: list[tuple[str, dict[str, Any]]] | None = None
    """Further tool calls made alongside the first (``parallel-tools``)."""
    fine_args: bool = False
    cached: int = 0
    delta_chars: int | None = None

    @property
    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        if self.tool_name is None:
            return []
        return [(self.tool_name, self.tool_args or {}), *(self.more_calls or [])]

    @property
    def words(self) -> list[str]:
        if self.text is None:
            return []
        parts = self.text.split(" ")
        return [p + (" " if i < len(parts) - 1 else "") for i, p in enumerate(parts)]

    @property
    def deltas(self) -> list[str]:
        """The text as a stream sends it: word by word, or in ``delta_chars`` pieces."""
        if self.text is None or not self.delta_chars:
            return self.words
        size = self.delta_chars
        return [self.text[i : i + size] for i in range(0, len(self.text), size)]


def answer(conv: Conversation, behaviour: Behaviour) -> Answer:
    """Deterministic: a tool call when tools are offered, JSON in JSON mode, else an echo;
    with ``reasoning``, a line of reasoning before it."""
    result = _answer(conv, behaviour)
    result.delta_chars = behaviour.delta_chars
    if behaviour.reasoning or conv.thinking:
        result.reasoning = f"Thinking about: {conv.last_user_text}"
    if behaviour.parallel_tools and result.tool_name is not None and conv.forced_tool is None:
        result.more_calls = [
            (tool["name"], example_for(tool["schema"], conv.last_user_text))
            for tool in conv.tools[1:]
        ]
    result.fine_args = behaviour.fine_args
    result.cached = behaviour.cached
    return result


def _answer(conv: Conversation, behaviour: Behaviour) -> Answer:
    if conv.forced_tool is not None:
        schema = next((t["schema"] for t in conv.tools if t["name"] == conv.forced_tool), None)
        return Answer(None, conv.forced_tool, example_for(schema, conv.last_user_text))
    if conv.tools and conv.tool_result is None and not conv.tools_disabled:
        tool = conv.tools[0]
        return Answer(None, tool["name"], example_for(tool["schema"], conv.last_user_text))
    if conv.json_mode:
        value = example_for(conv.json_schema, conv.last_user_text)
        return Answer(_dumps(value))
    if behaviour.markdown is not None:
        return Answer(markdown_document(behaviour.markdown))
    if behaviour.tokens is not None:
        return Answer(" ".join(f"w{i}" for i in range(behaviour.tokens)))
    if conv.tool_result is not None:
        return Answer(f"The tool returned: {conv.tool_result}")
    return Answer(f"You said: {conv.last_user_text}")


_SECTION = """## Part {n}: a worked example

This part explains **step {n}** of the method, with `inline code`, a [link](https://example.com/{n})
and a little math, $a_{n} = a_{{n-1}} + {n}$, inside an ordinary paragraph of prose that goes on
for a few lines, as a model's answer does when it explains something at length.

1. First, read the input and check that it is well formed.
2. Then transform it, keeping *every* field that the caller sent.
   - a nested point about edge cases
   - another nested point, with `code`
3. Finally, write the result.

```python
def step_{n}(values: list[int]) -> int:
    total = 0
    for value in values:
        total += value * {n}
    return total
```

| input | output | note |
|---|---|---|
| 1 | {n} | the simplest case |
| 2 | {n2} | doubled |

> A quoted remark about part {n}, to close it.

"""


def markdown_document(size: int) -> str:
    """About ``size`` characters of varied Markdown (whole sections, so every fence and
    table is closed): what a long answer looks like to a renderer."""
    sections: list[str] = []
    length = 0
    n = 1
    while length < size:
        section = _SECTION.format(n=n, n2=2 * n)
        sections.append(section)
        length += len(section)
        n += 1
    return "".join(sections)


def example_for(schema: dict[str, Any] | None, text: str) -> dict[str, Any]:
    """An object satisfying the (simple) schema: every property filled with a typed value
    (``{}`` for a schema that declares no properties: a call without arguments)."""
    if schema and schema.get("properties") == {}:
        return {}
    if not schema or not schema.get("properties"):
        return {"answer": text}
    result: dict[str, Any] = {}
    for name, prop in schema["properties"].items():
        kind = prop.get("type") if isinstance(prop, dict) else None
        if kind in ("integer", "number"):
            result[name] = 42
        elif kind == "boolean":
            result[name] = True
        elif kind == "array":
            result[name] = [text]
        elif kind == "object":
            result[name] = example_for(prop, text)
        elif isinstance(prop, dict) and prop.get("enum"):
            result[name] = prop["enum"][0]
        else:
            result[name] = text
    return result


def embedding(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector derived from the text's hash."""
    values: list[float] = []
    counter = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values.extend(v / 2**31 for v in struct.unpack("<8i", digest))
        counter += 1
    values = values[:dimensions]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def count_words(text: str) -> int:
    return len(text.split())


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
