"""Upstream calls for ``/v1/embeddings``: concurrent requests routed to the same
deployment (with the same ``dimensions`` and ``user``) share upstream calls through a
``Batcher``, so a burst of small requests becomes a few list requests (every supported
provider takes a list).

Each request keeps its own admission, routing, retries and usage record; only the upstream
call is shared. A batch that fails fails every request in it, and each one's resilience
loop retries elsewhere as it would have alone. Token counts: a request that had its call
to itself keeps the upstream's count; requests that shared one are counted locally.
"""

from __future__ import annotations

import msgspec

from parley.config.loader import Deployment
from parley.errors import UpstreamProtocolError
from parley.gateway.batching import Batcher
from parley.observability.metrics import Metrics
from parley.providers.base import Provider
from parley.schema.chat import EmbeddingRequest, EmbeddingResult

_Item = tuple[list[float], int | None]
"""A vector and the whole call's upstream token count."""


class EmbeddingCalls:
    def __init__(self, metrics: Metrics, *, max_batch: int, max_in_flight: int) -> None:
        self._metrics = metrics
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._batchers: dict[
            tuple[str, int | None, str | None], tuple[Deployment, Batcher[_Item]]
        ] = {}

    def retain(self, labels: set[str]) -> None:
        """Forget the batchers of deployments gone since the groups changed (a batch
        already running holds its own batcher and finishes)."""
        self._batchers = {k: v for k, v in self._batchers.items() if k[0] in labels}

    async def call(
        self,
        deployment: Deployment,
        provider: Provider,
        request: EmbeddingRequest,
        texts: list[str],
    ) -> EmbeddingResult:
        if self._max_batch <= 1:
            return await self._upstream(deployment, provider, request, len(texts))
        key = (deployment.label, request.dimensions, request.user)
        found = self._batchers.get(key)
        if found is not None and (found[0] is deployment or found[0] == deployment):
            batcher = found[1]
        else:  # new, or its deployment changed at run time (``Gateway.swap``)
            shape = EmbeddingRequest(
                model=deployment.model, input=[], dimensions=request.dimensions, user=request.user
            )
            batcher = Batcher(
                lambda batch: self._items(deployment, provider, shape, batch),
                max_batch=self._max_batch,
                max_in_flight=self._max_in_flight,
            )
            self._batchers[key] = (deployment, batcher)
        done = await batcher.submit(texts)
        vectors = [vector for vector, _ in done.items]
        alone = done.submissions == 1
        return EmbeddingResult(vectors, deployment.model, done.items[0][1] if alone else None)

    async def _items(
        self, deployment: Deployment, provider: Provider, shape: EmbeddingRequest, texts: list[str]
    ) -> list[_Item]:
        request = msgspec.structs.replace(shape, input=texts)
        result = await self._upstream(deployment, provider, request, len(texts))
        return [(vector, result.prompt_tokens) for vector in result.vectors]

    async def _upstream(
        self, deployment: Deployment, provider: Provider, request: EmbeddingRequest, count: int
    ) -> EmbeddingResult:
        with self._metrics.upstream_call(deployment):
            result = await provider.embed(request)
        if len(result.vectors) != count:
            raise UpstreamProtocolError(
                f"upstream {deployment.label} returned {len(result.vectors)} "
                f"embeddings for {count} inputs",
                deployment=deployment.label,
            )
        return result
