"""AWS event-stream decoding (``application/vnd.amazon.eventstream``), for ConverseStream.

Each message is binary-framed: a prelude (total length, headers length, the prelude's CRC32),
typed headers (``:message-type``, ``:event-type`` or ``:exception-type``,
``:content-type``), a payload, and a CRC32 of the whole message. The framing and both CRC
checks are botocore's ``EventStreamBuffer`` (the parser the AWS SDK for Python reads these
streams with); this module feeds it the upstream's bytes as they arrive and turns its
parse errors, a bad checksum included, into ``UpstreamProtocolError``. Imported only with
a Bedrock deployment, like ``sigv4``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

from botocore.eventstream import EventStreamBuffer, ParserError

from parley.errors import UpstreamProtocolError


@dataclass(frozen=True, slots=True)
class StreamMessage:
    message_type: str
    """``event``, ``exception`` or ``error``."""
    kind: str
    """The event's or exception's name (``contentBlockDelta``, ``throttlingException``);
    for ``error`` messages, their ``:error-code``."""
    payload: bytes
    headers: dict[str, Any]


async def iter_messages(
    chunks: AsyncIterator[bytes], deployment: str
) -> AsyncIterator[StreamMessage]:
    """Whole messages, in order, however the bytes were split across reads."""
    buffer = EventStreamBuffer()
    async for chunk in chunks:
        buffer.add_data(chunk)
        try:
            ready = list(buffer)
        except ParserError as exc:
            raise UpstreamProtocolError(
                f"upstream {deployment} sent a malformed event-stream message "
                f"({type(exc).__name__})",
                deployment=deployment,
            ) from exc
        for message in ready:
            # botocore-stubs types these headers as int; botocore returns a dict
            headers: dict[str, Any] = dict(cast("dict[str, Any]", message.headers))
            message_type = str(headers.get(":message-type", "event"))
            if message_type == "error":
                kind = str(headers.get(":error-code", "error"))
            elif message_type == "exception":
                kind = str(headers.get(":exception-type", "exception"))
            else:
                kind = str(headers.get(":event-type", ""))
            yield StreamMessage(message_type, kind, bytes(message.payload), headers)
