"""Answers generated for the chat product, independent of any HTTP connection.

Sending a message appends it, then starts a generation task that streams the answer
through the gateway (keys, limits, budgets, cache and routing all apply, billed to the
user) and saves it when it ends: complete, stopped (what was generated so far), or error.
A client that goes away does not stop it; any client can follow it from the start while it
runs (``follow``), and read the saved message once it has ended.

Each event a follower receives is one SSE ``data:`` line holding a JSON object with a
``type``: ``start`` (the message ids), ``delta`` (``content``), then ``done`` (``status``
and the saved message ids) or ``error`` (an OpenAI-shaped ``error``) followed by ``done``.

The instance that runs a generation also emits each event on the bus (subject
``<ns>.u.<owner>.gen.<conversation>.<message>``): the user's WebSocket sessions see the
deltas wherever they are connected, and with NATS a follower on another instance replays
them from the start (``follow_elsewhere``). A stop asked of another instance is broadcast
on ``<ns>.ctl.stop``; the instance running the answer stops it.

Each answer is also recorded in the database while it runs (``store/running.py``); if its
instance dies, a follower or any instance's sweeper saves it as lost (``chat/lost.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from parley.bus import Bus, Subjects, Subscription
from parley.chat.conversations import DEFAULT_TITLE, Conversations
from parley.chat.lost import LOST_ERROR, SoFar, forgets, save_lost
from parley.chat.parts import text_of, text_part
from parley.errors import InvalidRequest, ParleyError
from parley.gateway.accounting.caller import Caller
from parley.observability.logging import get_logger
from parley.providers.base import ChunkStream
from parley.schema.chat import (
    AssistantMessage,
    ChatRequest,
    ContentPart,
    ImagePart,
    ImageURL,
    Message,
    SystemMessage,
    TextPart,
    UserMessage,
)
from parley.store import running
from parley.store.db import Database

log = get_logger(__name__)
HISTORY = 100
"""Messages of the current branch sent upstream with a new one (the newest)."""


class OpenedStream(Protocol):
    chunks: ChunkStream
    headers: dict[str, str]
    """The gateway's routing headers: ``x-parley-model-group`` names the group that serves
    (another than asked when a budget downgraded the request)."""


class StreamChat(Protocol):
    """The gateway's ``chat_stream`` (what a generation calls)."""

    def __call__(
        self, request: ChatRequest, caller: Caller, request_id: str
    ) -> contextlib.AbstractAsyncContextManager[OpenedStream]: ...


@dataclass(slots=True)
class Generation:
    conversation_id: str
    owner_id: str
    user_message_id: str
    message_id: str
    model: str
    subject: str
    bus: Bus
    window_s: float = 0.0
    """A follower writes at most once per this long (``follow``)."""
    frames: list[bytes] = field(default_factory=list)
    deltas: list[str | None] = field(default_factory=list)
    """Per frame: a delta's text, or None for any other event (what ``follow`` merges)."""
    done: bool = False
    task: asyncio.Task[None] | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def push(self, event: dict[str, Any]) -> None:
        data = msgspec.json.encode(event)
        self.frames.append(sse_data(data))
        self.deltas.append(event["content"] if event["type"] == "delta" else None)
        self._changed.set()
        await self.bus.emit(self.subject, data)

    def text(self) -> str:
        """The answer's text so far."""
        return "".join(d for d in self.deltas if d)

    async def follow(self) -> AsyncIterator[bytes]:
        """Every event from the start, then new ones as they come, until the end.

        What is waiting goes out as one write, each run of deltas merged into one delta;
        and a follower writes at most once per ``window_s``. A fast model (or a replay)
        makes hundreds of small deltas a second: a browser given one event a frame instead
        of each of them spends its time drawing, not reading. The first event after a
        quiet spell and the last one go out at once, so neither the first token nor the
        end waits for a window."""
        loop = asyncio.get_running_loop()
        sent, written = 0, -self.window_s
        while True:
            if sent < len(self.frames):
                wait = written + self.window_s - loop.time()
                if wait > 0 and not self.done:
                    await asyncio.sleep(wait)
                ready = len(self.frames)
                yield self._merged(sent, ready)
                sent, written = ready, loop.time()
                continue
            if self.done:
                return
            self._changed.clear()
            if sent < len(self.frames) or self.done:
                continue
            await self._changed.wait()

    def _merged(self, start: int, end: int) -> bytes:
        """Frames ``start:end`` as one write, each run of deltas as one delta event."""
        if end - start == 1:
            return self.frames[start]
        out: list[bytes] = []
        run: list[str] = []
        for frame, delta in zip(self.frames[start:end], self.deltas[start:end], strict=True):
            if delta is not None:
                run.append(delta)
                continue
            if run:
                out.append(sse_frame({"type": "delta", "content": "".join(run)}))
                run = []
            out.append(frame)
        if run:
            out.append(sse_frame({"type": "delta", "content": "".join(run)}))
        return b"".join(out)


def event_error(exc: ParleyError) -> dict[str, Any]:
    """An error for an answer's event stream: the API's error object, plus ``retry_after``
    (whole seconds) when waiting helps, since a stream's events carry no headers."""
    body = exc.to_body()["error"]
    assert isinstance(body, dict)
    error: dict[str, Any] = dict(body)
    wait = getattr(exc, "retry_after", None)
    if wait:
        error["retry_after"] = wait
    return error


def sse_frame(event: dict[str, Any]) -> bytes:
    """One event as the SSE ``data:`` line a follower receives."""
    return sse_data(msgspec.json.encode(event))


def sse_data(data: bytes) -> bytes:
    return b"data: " + data + b"\n\n"


def _history(settings: dict[str, Any], branch: list[dict[str, Any]]) -> list[Message]:
    history: list[Message] = []
    system = settings.get("system_prompt")
    if isinstance(system, str) and system:
        history.append(SystemMessage(system))
    for message in branch:
        text = text_of(message["content"])
        if message["role"] == "user":
            history.append(UserMessage(_user_content(message["content"])))
        elif message["role"] == "assistant" and message["status"] == "complete":
            history.append(AssistantMessage(text))
    return history


def _user_content(parts: list[dict[str, Any]]) -> str | list[ContentPart]:
    """Plain text unless the message holds images a provider can fetch (``https:`` or
    ``data:`` URLs; an imported ``file-service://`` reference is left out)."""
    images = [p for p in parts if p.get("type") == "image" and sendable(p["url"])]
    if not images:
        return text_of(parts)
    out: list[ContentPart] = []
    for part in parts:
        if part.get("type") == "text":
            out.append(TextPart(part["text"]))
        elif part.get("type") == "image" and sendable(part["url"]):
            out.append(ImagePart(ImageURL(part["url"])))
    return out


def sendable(url: str) -> bool:
    return url.startswith(("https://", "http://", "data:image/"))


class Complete(Protocol):
    """The gateway's ``chat`` (for titles)."""

    async def __call__(self, request: ChatRequest, caller: Caller, request_id: str) -> Any: ...


TITLE_PROMPT = (
    "Write a short title (at most six words) for a conversation that starts with the "
    "user's message below. Answer with the title only, no quotes."
)


class _StopRequest(msgspec.Struct):
    owner_id: str
    message_id: str


class Generations:
    def __init__(
        self,
        conversations: Conversations,
        stream_chat: StreamChat,
        *,
        bus: Bus,
        subjects: Subjects,
        complete: Complete | None = None,
        title_model: str | None = None,
        idle_s: float = 120,
        window_s: float = 0.0,
        db: Database | None = None,
        instance: str = "",
    ) -> None:
        """``db``: record each running answer there for ``instance`` (``store/running.py``),
        so that one whose instance dies is saved as lost even if nobody follows it."""
        self._conversations = conversations
        self._stream_chat = stream_chat
        self._bus = bus
        self._subjects = subjects
        self._complete = complete
        self._title_model = title_model
        self._idle_s = idle_s
        self._window_s = window_s
        self._db = db
        self._instance = instance
        self._running: dict[str, Generation] = {}
        self._stop_subscription: Subscription | None = None
        self._stopping: set[asyncio.Task[None]] = set()

    async def start_listening(self) -> None:
        """Hear stop requests that other instances relay for answers running here."""
        self._stop_subscription = await self._bus.subscribe(self._subjects.stop, self._on_stop)

    def _on_stop(self, _subject: str, data: bytes) -> None:
        try:
            asked = msgspec.json.decode(data, type=_StopRequest)
        except msgspec.DecodeError:
            return
        generation = self._running.get(asked.message_id)
        if generation is None or generation.owner_id != asked.owner_id:
            return
        task = asyncio.get_running_loop().create_task(self.stop(generation))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def start(
        self,
        owner_id: str,
        conversation_id: str,
        caller: Caller,
        *,
        content: list[dict[str, Any]],
        model: str | None,
        parent_id: str | None = None,
        at_root: bool = False,
    ) -> Generation:
        """Append the user's message (under ``parent_id``, else the current leaf, or as a
        new first message with ``at_root``), then start answering it. Fails before
        anything is written when the conversation is not the owner's or has no model."""
        conversation = await self._conversations.get(owner_id, conversation_id)
        model = self._model(conversation, model)
        saved = await self._conversations.add_message(
            owner_id,
            conversation_id,
            role="user",
            content=content,
            parent_id=parent_id,
            at_root=at_root,
            conversation=conversation,
        )
        return await self._answer(owner_id, conversation, saved["id"], model, caller)

    async def edit(
        self,
        owner_id: str,
        conversation_id: str,
        caller: Caller,
        *,
        message_id: str,
        content: list[dict[str, Any]],
        model: str | None,
    ) -> Generation:
        """A new version of a user's message: a sibling branch beside it, answered anew."""
        edited = await self._conversations.message(owner_id, conversation_id, message_id)
        if edited["role"] != "user":
            raise InvalidRequest("only a user's message can be edited", param="message_id")
        return await self.start(
            owner_id,
            conversation_id,
            caller,
            content=content,
            model=model,
            parent_id=edited["parent_id"],
            at_root=edited["parent_id"] is None,
        )

    async def regenerate(
        self,
        owner_id: str,
        conversation_id: str,
        caller: Caller,
        *,
        message_id: str,
        model: str | None,
    ) -> Generation:
        """Another answer to the question an assistant message answered (optionally from
        another model): a sibling branch beside it."""
        answer = await self._conversations.message(owner_id, conversation_id, message_id)
        if answer["role"] != "assistant" or answer["parent_id"] is None:
            raise InvalidRequest("only an answer can be regenerated", param="message_id")
        conversation = await self._conversations.get(owner_id, conversation_id)
        model = self._model(conversation, model or answer["model"])
        return await self._answer(owner_id, conversation, answer["parent_id"], model, caller)

    @staticmethod
    def _model(conversation: dict[str, Any], model: str | None) -> str:
        model = model or conversation["model"]
        if not model:
            raise InvalidRequest("name a model: this conversation has none", param="model")
        return str(model)

    async def _answer(
        self,
        owner_id: str,
        conversation: dict[str, Any],
        user_message_id: str,
        model: str,
        caller: Caller,
    ) -> Generation:
        conversation_id = conversation["id"]
        branch, _ = await self._conversations.branch_of(
            conversation, limit=HISTORY, before=user_message_id
        )
        request = ChatRequest(
            model=model,
            messages=_history(conversation["settings"], branch),
            stream=True,
            temperature=conversation["settings"].get("temperature"),
            top_p=conversation["settings"].get("top_p"),
            max_tokens=conversation["settings"].get("max_tokens"),
        )
        message_id = uuid.uuid4().hex
        generation = Generation(
            conversation_id,
            owner_id,
            user_message_id,
            message_id,
            model,
            self._subjects.generation(owner_id, conversation_id, message_id),
            self._bus,
            self._window_s,
        )
        if self._db is not None:
            now_ms = int(time.time() * 1000)
            await running.record(
                self._db,
                running.Running(
                    message_id,
                    conversation_id,
                    owner_id,
                    user_message_id,
                    model,
                    self._instance,
                    now_ms,
                    now_ms,
                ),
            )
        await generation.push(
            {
                "type": "start",
                "user_message_id": generation.user_message_id,
                "message_id": generation.message_id,
                "model": generation.model,
            }
        )
        self._running[generation.message_id] = generation
        first = conversation["message_count"] <= 1 and conversation["title"] == DEFAULT_TITLE
        question = text_of(branch[-1]["content"]) if first and branch else None
        generation.task = asyncio.get_running_loop().create_task(
            self._run(generation, request, caller, question),
            name=f"parley-generation-{generation.message_id}",
        )
        return generation

    def running(self, message_id: str) -> Generation | None:
        return self._running.get(message_id)

    def running_ids(self) -> Collection[str]:
        """The answers this instance is generating (whose heartbeat the sweeper keeps)."""
        return list(self._running)

    def running_texts(self) -> dict[str, str]:
        """The same, each with its text so far (kept with the heartbeat where the bus
        keeps no frames)."""
        return {message_id: g.text() for message_id, g in self._running.items()}

    async def elsewhere(self, owner_id: str, conversation_id: str, message_id: str) -> bool:
        """Whether the bus holds frames of this answer (it runs, or ran, on another
        instance). Always false on the in-process bus."""
        try:
            subject = self._subjects.generation(owner_id, conversation_id, message_id)
        except ValueError:  # not an id Parley made
            return False
        return await self._bus.has(subject)

    async def follow_elsewhere(
        self, owner_id: str, conversation_id: str, message_id: str
    ) -> AsyncIterator[bytes]:
        """An answer running on another instance, from its first frame, as SSE frames.
        If the bus goes quiet for ``idle_s`` (that instance died), ends with an error."""
        subject = self._subjects.generation(owner_id, conversation_id, message_id)
        frames = self._bus.replay(subject, self._idle_s)
        if frames is None:
            return
        so_far = SoFar()
        try:
            async for data in frames:
                yield sse_data(data)
                if so_far.add(data).type == "done":
                    return
        except TimeoutError:
            await self._save_lost(owner_id, conversation_id, message_id, so_far)
            yield sse_frame({"type": "error", "error": LOST_ERROR})
            yield sse_frame({"type": "done", "status": "error", "message_id": message_id})
        finally:
            await frames.aclose()

    async def _save_lost(
        self, owner_id: str, conversation_id: str, message_id: str, so_far: SoFar
    ) -> None:
        """Save an answer whose instance died as far as it got, marked ``error``, so the
        conversation shows it (with Retry) instead of a question left waiting. Whoever
        notices first saves it (and deletes its running record, as a sweeper would); a
        second follower's or sweeper's save finds it there and is dropped."""
        if so_far.user_message_id is None:
            return
        try:
            await save_lost(
                self._conversations,
                owner_id,
                conversation_id,
                message_id,
                so_far=so_far,
                within=forgets(self._db, message_id),
            )
        except ParleyError as exc:  # saved by another follower, or the chat is gone
            log.info("lost answer not saved", message_id=message_id, reason=exc.message)

    async def stop_elsewhere(self, owner_id: str, message_id: str) -> None:
        """Ask whichever instance runs this answer to stop it."""
        await self._bus.emit(
            self._subjects.stop, msgspec.json.encode(_StopRequest(owner_id, message_id))
        )

    async def stop(self, generation: Generation) -> None:
        """Stop generating; what was generated so far is saved, marked ``stopped``."""
        if generation.task is not None and not generation.done:
            generation.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await generation.task

    async def close(self, drain_s: float = 0) -> None:
        """Shutdown: running answers get ``drain_s`` to finish (and be saved, and
        titled); those still running then are stopped and saved as far as they got."""
        if self._stop_subscription is not None:
            await self._stop_subscription.unsubscribe()
        tasks = [g.task for g in self._running.values() if g.task is not None]
        if tasks and drain_s > 0:
            log.info("letting running answers finish", count=len(tasks), drain_s=drain_s)
            await asyncio.wait(tasks, timeout=drain_s)
        for generation in list(self._running.values()):
            await self.stop(generation)

    @staticmethod
    async def _served_by(generation: Generation, headers: Mapping[str, str]) -> None:
        """When a budget sent the answer to a cheaper group, the answer is saved as that
        group's and the tabs following it are told which model is answering, and why."""
        served = headers.get("x-parley-model-group")
        original = headers.get("x-parley-downgraded-from")
        if served is None or original is None or served == generation.model:
            return
        generation.model = served
        await generation.push(
            {
                "type": "model",
                "model": served,
                "downgraded_from": original,
                "reason": headers.get("x-parley-downgrade-reason", ""),
            }
        )

    async def _run(
        self,
        generation: Generation,
        request: ChatRequest,
        caller: Caller,
        first_question: str | None = None,
    ) -> None:
        parts: list[str] = []
        status, error = "complete", None
        try:
            async with self._stream_chat(request, caller, generation.message_id) as opened:
                await self._served_by(generation, opened.headers)
                async for chunk in opened.chunks:
                    for choice in chunk.choices:
                        if choice.delta.content:
                            parts.append(choice.delta.content)
                            await generation.push(
                                {"type": "delta", "content": choice.delta.content}
                            )
        except asyncio.CancelledError:
            status = "stopped"
        except ParleyError as exc:
            status, error = "error", event_error(exc)
        except Exception:  # a bug: saved as an error, logged with its traceback
            log.exception("generation failed", message_id=generation.message_id)
            status, error = "error", {"message": "internal error", "type": "api_error"}
        try:
            await self._conversations.add_message(
                generation.owner_id,
                generation.conversation_id,
                role="assistant",
                content=text_part("".join(parts)),
                parent_id=generation.user_message_id,
                model=generation.model,
                status=status,
                message_id=generation.message_id,
                within=forgets(self._db, generation.message_id),
            )
        except ParleyError as exc:  # its running record stays: a sweeper saves it as lost
            log.warning("could not save a generated answer", error=exc.message)
            status, error = "error", event_error(exc)
        if error is not None:
            await generation.push({"type": "error", "error": error})
        generation.done = True
        await generation.push(
            {
                "type": "done",
                "status": status,
                "user_message_id": generation.user_message_id,
                "message_id": generation.message_id,
            }
        )
        self._running.pop(generation.message_id, None)
        if status == "complete" and first_question is not None:
            await self._title(generation, caller, first_question)

    async def _title(self, generation: Generation, caller: Caller, question: str) -> None:
        """After the first exchange: a title from the configured cheap model group (off
        when none is configured). Best effort: a failure leaves the default title."""
        if self._complete is None or self._title_model is None:
            return
        request = ChatRequest(
            model=self._title_model,
            messages=[SystemMessage(TITLE_PROMPT), UserMessage(question[:2000])],
            max_tokens=20,
            temperature=0.2,
        )
        try:
            outcome = await self._complete(request, caller, f"{generation.message_id}.title")
            text = outcome.completion.choices[0].message.content or ""
            title = (
                text.strip().splitlines()[0].strip(" \"'*#.").strip()[:80] if text.strip() else ""
            )
            if title:
                await self._conversations.rename(
                    generation.owner_id, generation.conversation_id, title
                )
        except (ParleyError, IndexError) as exc:
            log.warning("could not title a conversation", error=str(exc))
