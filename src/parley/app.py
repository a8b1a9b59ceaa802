"""The ASGI app factory. No I/O at import time: pools and config are built in the lifespan
(or, for config, in the factory so a bad file fails before the server binds)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from parley import __version__
from parley.api import (
    account,
    admin,
    admin_anomalies,
    admin_models,
    admin_usage,
    auth,
    chat_models,
    conversations,
    health,
    invitations,
    messages,
    openai,
    passkeys,
    presets,
    sso,
    web,
    ws,
)
from parley.api.docs import install_docs
from parley.api.errors import install_error_handlers
from parley.api.fastpath import FastPath, ParleyApp
from parley.api.metrics import MetricsListener
from parley.api.middleware import RequestContextMiddleware
from parley.api.openapi import install_openapi
from parley.api.proxies import TrustedProxies
from parley.api.responses import routes as responses_routes
from parley.api.server import ServerLimits
from parley.chat.generation import Generations
from parley.chat.lost import LostAnswers
from parley.chat.purge import sweep_forever
from parley.config import LoadedModels, Settings, load_models
from parley.config.stored import credential_headers
from parley.config.vault import SecretBox, VaultError
from parley.errors import ConfigError, ParleyError
from parley.gateway.accounting import tokens
from parley.gateway.accounting.policy import BudgetBook, Policies
from parley.gateway.cache.store import ResponseCache
from parley.gateway.catalog import FileModels, ModelCatalog
from parley.gateway.live_models import LiveModels
from parley.gateway.pipeline import Gateway
from parley.gateway.registry import ModelRegistry
from parley.gateway.responses import ResponsesCalls
from parley.gateway.routing.probes import probe_forever
from parley.gateway.routing.selector import Selector
from parley.identity.sso import SingleSignOn
from parley.observability import tracing
from parley.observability.logging import configure_logging, get_logger
from parley.observability.metrics import Metrics
from parley.observability.redact import redactor
from parley.providers.factory import build_provider
from parley.providers.http import UpstreamPool
from parley.runtime import settle_heap
from parley.services import Services, open_services
from parley.store.usage import retention_forever

if TYPE_CHECKING:
    from parley.chat.semantic_search import Embed, SemanticSearch
    from parley.gateway.cache.embedders import Embedder, EmbedTexts
    from parley.gateway.cache.index import SemanticIndex
    from parley.gateway.cache.semantic import SemanticCache

log = get_logger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    models: LoadedModels | None = None,
    environ: Mapping[str, str] | None = None,
) -> FastAPI:
    settings = settings or Settings()
    models = models or load_models(settings.config, environ)
    box = _secret_box(settings)
    env: Mapping[str, str] = os.environ if environ is None else environ
    redactor.register(models.secrets())
    if settings.admin_key is not None:
        redactor.register([settings.admin_key.get_secret_value()])
    if settings.metrics_token is not None:
        redactor.register([settings.metrics_token.get_secret_value()])
    metrics = Metrics()
    pool = UpstreamPool()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.tracing == "otlp":
            tracing.enable(__version__)
        if settings.tokenizer_preload:  # else it loads in the background on first need
            await asyncio.to_thread(tokens.encoding)
        services = await open_services(settings, metrics)
        if models.sso is not None:
            services.sso = SingleSignOn(models.sso, services.accounts)
        app.state.services = services
        registry = ModelRegistry(models.groups, partial(build_provider, pool=pool))
        policies = Policies(
            services.admission,
            services.usage,
            metrics,
            BudgetBook.from_config(models.budget, models.user_tiers),
        )
        selector = Selector(models.tiered, models.experiments, metrics)
        semantic = await _semantic_cache(
            models,
            # late-bound on purpose: the gateway is built after its cache
            lambda group, texts: app.state.gateway.embed_texts(group, texts),  # noqa: PLW0108
            settings,
            services,
        )
        cache = ResponseCache(
            metrics,
            max_bytes=settings.cache_memory_bytes,
            max_entries=settings.cache_memory_entries,
            max_entry_bytes=settings.cache_max_entry_bytes,
            flight_wait_s=settings.cache_flight_wait_seconds,
            shared=services.responses,
            semantic=semantic,
        )
        app.state.gateway = Gateway(
            registry,
            metrics,
            drop_params=settings.drop_params,
            policies=policies,
            selector=selector,
            breaker_sync=services.breaker_sync,
            cache=cache,
            embed_batch_max=settings.embeddings_batch_max,
            embed_batch_in_flight=settings.embeddings_batch_in_flight,
        )
        probes: list[asyncio.Task[None]] = []

        def swapped() -> None:
            """New groups: their secrets redacted from logs, their probes running."""
            gateway: Gateway = app.state.gateway
            redactor.register(LoadedModels(gateway.registry.groups, "database").secrets())
            redactor.register(
                v
                for g in gateway.registry.groups
                for d in g.deployments
                for v in credential_headers(d.extra_headers)
            )
            for task in probes:
                task.cancel()
            probes[:] = [
                asyncio.get_running_loop().create_task(
                    probe_forever(gateway.registry, gateway.health), name="parley-probes"
                )
            ]

        catalog = ModelCatalog(
            services.db,
            box,
            FileModels(
                models.groups,
                frozenset(t.name for t in models.tiered)
                | frozenset(e.name for e in models.experiments),
            ),
            env,
            services.bus,
            services.subjects,
        )
        live = app.state.live_models = LiveModels(
            catalog, app.state.gateway, poll_s=settings.models_poll_seconds, swapped=swapped
        )
        await live.start()
        app.state.responses = ResponsesCalls(app.state.gateway)
        app.state.generations = Generations(
            services.conversations,
            app.state.gateway.chat_stream,
            bus=services.bus,
            subjects=services.subjects,
            complete=app.state.gateway.chat,
            title_model=settings.chat_title_model,
            idle_s=settings.generation_idle_seconds,
            window_s=settings.chat_stream_window_ms / 1000,
            db=services.db,
            instance=services.instance,
        )
        await app.state.generations.start_listening()
        lost = LostAnswers(
            services.db,
            services.conversations,
            services.bus,
            services.subjects,
            instance=services.instance,
            running_ids=app.state.generations.running_ids,
            running_texts=app.state.generations.running_texts,
            heartbeat_s=settings.chat_generation_heartbeat_seconds,
            stale_s=settings.chat_generation_stale_seconds,
        )
        lost.start()
        chat_search = _chat_semantic_search(
            settings, models, semantic, app.state.gateway.embed_texts, services
        )
        listeners = [
            task
            for task in (
                await _share_breakers(app.state.gateway, services),
                _follow_invalidations(cache, services),
                _follow_semantic_entries(semantic, services),
                asyncio.get_running_loop().create_task(
                    sweep_forever(services.db, settings.chat_purge_after_days),
                    name="parley-purge",
                ),
                asyncio.get_running_loop().create_task(
                    services.stored_responses.sweep_forever(), name="parley-responses-purge"
                ),
                asyncio.get_running_loop().create_task(
                    retention_forever(
                        services.db,
                        settings.usage_retention_days,
                        settings.usage_hourly_retention_days,
                    ),
                    name="parley-usage-retention",
                )
                if settings.usage_retention_days > 0 or settings.usage_hourly_retention_days > 0
                else None,
            )
            if task is not None
        ]
        metrics_listener = None
        if settings.metrics_address is not None:
            metrics_listener = MetricsListener(settings, metrics)
            await metrics_listener.start()
            app.state.metrics_port = metrics_listener.port
        _log_startup(models, settings)
        settle_heap(settings.gc_gen0_threshold)
        app.state.started = True
        try:
            yield
        finally:
            app.state.started = False
            if metrics_listener is not None:
                await metrics_listener.close()
            await app.state.generations.close(settings.drain_timeout_seconds)
            await lost.stop()  # after the drain: answers draining keep their heartbeat
            await live.close()
            for task in [*listeners, *probes]:
                task.cancel()
            await asyncio.gather(*listeners, *probes, return_exceptions=True)
            await pool.close()
            if chat_search is not None:
                search, owned = chat_search
                await search.stop()
                if owned is not None:
                    owned.close()
            if semantic is not None:
                semantic.close()
            await services.close()
            if settings.tracing == "otlp":
                tracing.disable()
            log.info("stopped")

    app = ParleyApp(
        title="Parley",
        version=__version__,
        lifespan=lifespan,
        openapi_url="/openapi.json" if settings.api_docs else None,
        docs_url=None,  # api/docs.py serves it without a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.models = models
    app.state.started = False

    async def config_loaded() -> str | None:
        return None if app.state.started else "configuration not loaded"

    async def database() -> str | None:
        return await app.state.services.db.ping() if app.state.started else None

    async def shared_state() -> str | None:
        return await app.state.services.state.ping() if app.state.started else None

    async def embedder() -> str | None:
        cache = app.state.gateway.cache if app.state.started else None
        if cache is None or cache.semantic is None:
            return None
        loading = [name for name in cache.semantic.embedders if not cache.semantic.ready(name)]
        return f"embedding model loading: {', '.join(loading)}" if loading else None

    app.state.readiness = {
        "config": config_loaded,
        "database": database,
        "state": shared_state,
        "semantic_cache": embedder,
    }
    install_error_handlers(app)
    if settings.api_docs:
        install_docs(app, "/openapi.json")
    app.include_router(openai.router)
    app.include_router(responses_routes.router)
    app.include_router(messages.router)
    app.include_router(health.router)
    app.include_router(admin.router)
    app.include_router(admin_models.router)
    app.include_router(admin_usage.router)
    app.include_router(admin_anomalies.router)
    app.include_router(auth.router)
    app.include_router(passkeys.router)
    app.include_router(sso.router)
    app.include_router(account.router)
    app.include_router(invitations.router)
    app.include_router(conversations.router)
    app.include_router(conversations.shared_router)
    app.include_router(conversations.search_router)
    app.include_router(presets.router)
    app.include_router(ws.router)
    proxies = TrustedProxies(settings.trusted_proxies)
    app.state.server_limits = ServerLimits(  # read by the HTTP protocol (api/server.py)
        header_seconds=settings.header_timeout_seconds,
        body_seconds=settings.body_timeout_seconds,
        max_connections=settings.max_connections,
        shed_lag_seconds=settings.shed_loop_lag_ms / 1000 or None,
        on_shed=metrics.shed_requests.inc,
    )
    app.include_router(chat_models.router)
    app.include_router(web.build_router(web.WebAssets.load()))
    install_openapi(app)
    app.fast_path = FastPath(
        {
            "/v1/chat/completions": openai.chat_completions,
            "/v1/embeddings": openai.embeddings,
            "/v1/responses": responses_routes.create_response,
            "/v1/messages": messages.messages,
        },
        owner=app,
        max_body_bytes=settings.max_request_bytes,
        metrics=metrics,
        cors=bool(settings.cors_origins),
        proxies=proxies,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=[
                "authorization",
                "content-type",
                "x-api-key",
                "x-request-id",
                "anthropic-version",
                "anthropic-beta",
            ],
            expose_headers=["x-request-id", "retry-after", "x-parley-deployment"],
            max_age=600,
        )
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_request_bytes,
        metrics=metrics,
        proxies=proxies,
    )
    return app


async def _share_breakers(gateway: Gateway, services: Services) -> asyncio.Task[None] | None:
    """Learn which breakers other instances hold open now, then follow their changes."""
    sync = services.breaker_sync
    if sync is None:
        return None
    try:
        labels = [h.label for h in gateway.health.all()]
        for label, seconds in (await sync.open_now(labels)).items():
            gateway.apply_breaker(label, "open", seconds)
    except ParleyError as exc:
        log.warning("could not read shared breaker state", error=exc.message)

    return _keep_following(
        lambda: sync.listen(gateway.apply_breaker), "parley-breakers", "breaker sync"
    )


def _follow_invalidations(cache: ResponseCache, services: Services) -> asyncio.Task[None] | None:
    """Drop in-process cache entries that another instance invalidated."""
    shared = services.responses
    if shared is None:
        return None
    return _keep_following(
        lambda: shared.listen(cache.apply_invalidation), "parley-cache", "cache invalidations"
    )


def _follow_semantic_entries(
    semantic: SemanticCache | None, services: Services
) -> asyncio.Task[None] | None:
    """In-process index with Redis: index the questions other instances answered (all of
    them at start-up). A pgvector index needs nothing: every instance reads the table."""
    entries = services.semantic_entries
    if semantic is None or entries is None:
        return None  # before the import below: numpy loads only where a group needs it
    from parley.gateway.cache.index import MemoryIndex  # noqa: PLC0415

    index = semantic.index
    if not isinstance(index, MemoryIndex):
        return None
    return _keep_following(
        lambda: entries.follow(index.apply_shared), "parley-semantic", "semantic cache sync"
    )


def _keep_following(
    listen: Callable[[], Awaitable[None]], name: str, what: str
) -> asyncio.Task[None]:
    async def follow() -> None:
        while True:
            try:
                await listen()
            except ParleyError as exc:
                log.warning(f"{what} interrupted; retrying", error=exc.message)
                await asyncio.sleep(1.0)

    return asyncio.create_task(follow(), name=name)


async def _semantic_cache(
    models: LoadedModels, embed_texts: EmbedTexts, settings: Settings, services: Services
) -> SemanticCache | None:
    """Imported only when a group asks for it: numpy and the models stay out of the
    process otherwise (start-up time and idle memory)."""
    if not any(g.cache.enabled and g.cache.semantic for g in models.groups):
        return None
    from parley.gateway.cache.index import MemoryIndex, PgVectorIndex  # noqa: PLC0415
    from parley.gateway.cache.semantic import build_semantic_cache  # noqa: PLC0415
    from parley.store.semantic import SemanticRows  # noqa: PLC0415

    index: SemanticIndex
    if settings.cache_semantic_index == "pgvector":
        rows = SemanticRows(services.db)
        await rows.ensure()
        index = PgVectorIndex(rows)
    else:
        index = MemoryIndex(
            max_entries=settings.cache_semantic_entries,
            shared=services.semantic_entries,
            instance=services.instance,
        )
    return build_semantic_cache(models.groups, embed_texts, index)


def _chat_semantic_search(
    settings: Settings,
    models: LoadedModels,
    cache: SemanticCache | None,
    embed_texts: EmbedTexts,
    services: Services,
) -> tuple[SemanticSearch, Embedder | None] | None:
    """Semantic search over messages, and the embedder it made for itself (to close);
    it shares the semantic cache's embedder when both name the same one (one copy of the
    local model in memory)."""
    name = settings.chat_semantic_search
    if name is None:
        return None
    from parley.chat.semantic_search import SemanticSearch  # noqa: PLC0415
    from parley.gateway.cache.embedders import embedder_for  # noqa: PLC0415

    owned: Embedder | None = None
    if cache is not None and name in cache.embedders:
        embedder: Embed = cache.embedders[name].embedder
    else:
        groups = {g.name for g in models.groups}
        embedder = owned = embedder_for(name, groups, embed_texts, "PARLEY_CHAT_SEMANTIC_SEARCH")
    search = SemanticSearch(
        services.db, embedder, min_similarity=settings.chat_semantic_min_similarity
    )
    services.conversations.semantic = search
    services.conversations.committed.append(search.kick)
    search.start()
    return search, owned


def _log_startup(models: LoadedModels, settings: Settings) -> None:
    if settings.auth_required:
        log.info("API keys required on /v1")
    else:
        log.warning(
            "API keys not required on /v1: embedded tier, loopback only "
            "(set PARLEY_ADMIN_KEY or PARLEY_REQUIRE_AUTH=true to require them)",
            host=settings.host,
        )
    if (
        settings.metrics_address is None
        and settings.metrics_token is None
        and not settings.loopback_only()
    ):
        log.warning(
            "/metrics refused on this non-loopback bind: set PARLEY_METRICS_TOKEN or "
            "PARLEY_METRICS_ADDRESS to scrape it",
            host=settings.host,
        )
    for note in models.notes:
        log.warning("config note", note=note)
    if not models.groups:
        log.warning("no models configured", hint=openai.NO_MODELS_HINT)
        return
    log.info(
        "models loaded",
        source=models.source,
        groups=[g.name for g in models.groups],
        deployments=sum(len(g.deployments) for g in models.groups),
    )


def _secret_box(settings: Settings) -> SecretBox:
    """``PARLEY_SECRETS_KEY`` read now, so a malformed key fails before the server binds."""
    keys = settings.secrets_key.get_secret_value() if settings.secrets_key else None
    try:
        box = SecretBox(keys)
    except VaultError as exc:
        raise ConfigError([str(exc)]) from None
    if keys:
        redactor.register([k for k in keys.split(",") if k.strip()])
    return box


def create_app_from_env() -> FastAPI:
    """Entry point for ``uvicorn --factory`` worker processes: everything from PARLEY_*."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format, cache=True)
    return create_app(settings)
