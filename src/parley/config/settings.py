"""Process settings: the ``PARLEY_*`` environment, read once in the app factory or CLI."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from parley.config.secrets import is_reference

FailureMode = Literal["open", "closed"]


class Settings(BaseSettings):
    """Everything about how this process runs; which models exist lives in the config file."""

    model_config = SettingsConfigDict(env_prefix="PARLEY_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=4000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1)
    config: Path | None = None
    """YAML file of model groups (Parley's format or a LiteLLM proxy config)."""

    drop_params: bool = False
    """When a provider cannot honour a parameter: drop it and warn (true) or refuse with 400."""

    max_request_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    stream_keepalive_seconds: float = Field(default=15.0, gt=0)
    drain_timeout_seconds: float = Field(default=30.0, ge=0)
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    """A connection's first request (from its opening), or a later one (from its first
    byte), must have sent all its headers within this long; else 408 and closed."""
    body_timeout_seconds: float = Field(default=30.0, gt=0)
    """The longest silence while a request body is read (a body shorter than its
    Content-Length waits this long at most); else 408 and closed. Responses are not timed."""
    max_connections: int = Field(default=4096, ge=1)
    """Open connections per process; more are answered 503 ``too_many_connections``."""
    shed_loop_lag_ms: float = Field(default=250.0, ge=0)
    """Event-loop lag (how late a timer runs) past which new model calls (``POST /v1/...``)
    are refused at once with 503 (529 on ``/v1/messages``) and ``Retry-After: 1``, before
    any other work: a process whose CPU is saturated sheds instead of slowing every
    request. Two readings in a row must be over it. 0 turns shedding off."""

    tokenizer_preload: bool = False
    """Load the tokenizer (~40 MB) at start-up instead of on first need."""

    gc_gen0_threshold: int = Field(default=10_000, ge=0)
    """Allocations between young-generation collections (CPython's default is 700). Any
    value above 0 also freezes the start-up heap out of future collections (see
    ``parley/runtime.py``); 0 leaves the collector as the interpreter set it."""

    tracing: Literal["off", "otlp"] = "off"
    """``otlp``: export OpenTelemetry spans over OTLP/HTTP (the ``parley[otel]`` extra),
    configured by the standard ``OTEL_*`` variables. Off: no tracing code runs at all."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["console", "json"] = "console"

    # --- storage and shared state -------------------------------------------------------
    database_url: str = "sqlite+aiosqlite:///parley.db"
    """SQLite file by default; ``postgresql://...`` selects PostgreSQL (asyncpg)."""
    auto_migrate: bool = True
    database_replica_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """PostgreSQL streaming replicas (comma-separated URLs): lag-tolerant reads go to
    them (``store/replicas.py``). None by default: every query goes to the primary."""
    database_replica_max_lag_seconds: float = Field(default=5.0, gt=0)
    """A replica lagging the primary by more than this is taken out of rotation."""
    database_replica_check_seconds: float = Field(default=2.0, gt=0)
    """How often each replica's health and lag are checked."""
    """Run pending migrations at start-up. Clusters run ``parley db upgrade`` once instead."""
    redis_url: str | None = None
    """Shared state (limits, budgets, revocation, usage buffer); in-process when unset."""

    nats_url: str | None = None
    """NATS with JetStream: the event bus between instances (conversation events, live
    answers, WebSocket fan-out); in-process when unset."""
    nats_namespace: str = Field(default="parley", pattern=r"^[A-Za-z0-9_-]{1,32}$")
    """Subject prefix and stream names, so several deployments can share one NATS."""
    bus_keep_events_seconds: float = Field(default=7 * 86400, gt=0)
    """How long JetStream keeps conversation events."""
    bus_keep_generations_seconds: float = Field(default=3600, gt=0)
    """How long JetStream keeps an answer's frames, for following it on another instance."""

    models_poll_seconds: float = Field(default=30.0, gt=0)
    """How often each instance re-reads the model groups kept in the database, in case it
    missed a change's bus message (changes normally arrive at once over the bus)."""
    secrets_key: SecretStr | None = None
    """Fernet keys (comma-separated; the first encrypts, all decrypt) for provider
    credentials stored through ``/admin/models``. Unset: only ``os.environ/NAME``
    references can be stored (``config/vault.py``)."""

    shared_breakers: bool = True
    """With Redis: a breaker opened on one instance opens on every instance (pub/sub)."""

    # --- access -------------------------------------------------------------------------
    admin_key: SecretStr | None = None
    """Bootstrap admin bearer token for ``/admin/*``; setting it also makes ``/v1`` need keys."""
    require_auth: bool = False
    insecure: bool = False
    """Serve ``/v1`` without keys on a non-loopback address. Never in production."""
    cors_origins: list[str] = Field(default_factory=list)
    """Browser origins allowed to call the API (JSON list); none by default."""
    allow_registration: bool | None = None
    """``POST /auth/register``; on by default only in the embedded tier (SQLite)."""
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Reverse proxies (addresses or CIDR networks, comma-separated) whose
    ``X-Forwarded-For`` names the client. None by default: the client is the socket's peer
    and the header is ignored (see ``api/proxies.py``)."""

    api_docs: bool = True
    """``/openapi.json`` and ``/docs`` (Swagger UI from the installed wheel, no CDN)."""

    metrics_token: SecretStr | None = None
    """When set, every ``/metrics`` scrape must send ``Authorization: Bearer <token>``."""
    metrics_sample_seconds: float = Field(default=10, gt=0, le=3600)
    """How often each process reads its sampled gauges (pools, WebSockets, outbox backlog,
    bus lag: ``services.GaugeSampler``); two small counts on the database each time."""
    metrics_address: str | None = None
    """``host:port`` (``[::1]:9464`` for IPv6): serve ``/metrics`` there only, not on the
    main port. Unset: ``/metrics`` is on the main port (open on a loopback bind only, unless
    ``metrics_token`` is set; see ``api/metrics.py``)."""

    # --- sessions and login ---------------------------------------------------------------
    access_token_seconds: int = Field(default=300, ge=30)
    refresh_token_days: float = Field(default=30.0, gt=0)
    signing_key_rotate_days: float = Field(default=30.0, gt=0)
    """A new JWT signing key is made this often; the old one still verifies for a day."""
    login_max_failures: int = Field(default=5, ge=1)
    login_lockout_seconds: float = Field(default=60.0, gt=0)
    login_lockout_max_seconds: float = Field(default=900.0, gt=0)
    login_failure_forget_seconds: float = Field(default=12 * 3600.0, gt=0)
    password_hash_concurrency: int = Field(default=4, ge=1)
    """argon2id hashes at once (64 MiB each); more logins wait instead of exhausting memory."""
    webauthn_rp_id: str | None = None
    """The passkeys' relying-party id: the site's domain (``chat.example.com``). Unset, it is
    taken from the request's host, on a loopback host only (``localhost``); elsewhere
    passkeys are off until it is set (a host header is the client's to choose)."""
    webauthn_origins: list[str] = Field(default_factory=list)
    """Origins passkey ceremonies may come from (JSON list, ``https://chat.example.com``).
    Empty: ``https://<rp id>``, or the request's own origin on a loopback host."""
    webauthn_rp_name: str = "Parley"
    """The name authenticators show when a passkey is made."""
    webauthn_challenge_seconds: int = Field(default=300, ge=10, le=3600)
    """How long a passkey challenge may be answered (each is usable once)."""

    web_session_idle_seconds: float = Field(default=1800.0, gt=0)
    """A browser session (the web app, cookie mode) ends after this long without a request,
    on every instance at once (the shared state holds its last use)."""
    web_session_absolute_seconds: float = Field(default=36000.0, gt=0)
    """A browser session ends this long after its sign-in, however busy (10 hours)."""
    api_session_idle_seconds: float | None = Field(default=None, gt=0)
    """The same for API clients' sessions (JSON refresh tokens); none by default, so
    scripts keep working as before (their refresh tokens last ``refresh_token_days``)."""
    api_session_absolute_seconds: float | None = Field(default=None, gt=0)

    # --- mail, password reset and email verification --------------------------------------
    public_url: str | None = None
    """This deployment's address as users reach it (``https://chat.example.com``): the base of
    links in mail. Required with SMTP on the shared tiers; elsewhere a request's own origin
    is used, which a spoofed ``Host`` header could point elsewhere (see docs/security.md)."""
    smtp_host: str | None = None
    """The SMTP server for reset and verification mail; no mail is sent when unset."""
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    """``starttls`` (587), ``tls`` (implicit TLS, 465) or ``none`` (a loopback relay only)."""
    smtp_username: str | None = None
    smtp_password: str | None = None
    """A reference, ``os.environ/SMTP_PASSWORD``, never the password itself."""
    smtp_from: str = "Parley <parley@localhost>"
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)
    smtp_ca_file: str | None = None
    """CA bundle to verify the server's certificate with (the system store by default)."""
    mail_max_attempts: int = Field(default=8, ge=1)
    mail_retry_base_seconds: float = Field(default=2.0, gt=0)
    """First retry delay of an unsent mail; doubles per attempt up to the maximum."""
    mail_retry_max_seconds: float = Field(default=600.0, gt=0)
    mail_poll_seconds: float = Field(default=1.0, gt=0)
    password_reset_minutes: float = Field(default=30.0, gt=0)
    """How long a reset link works (once)."""
    email_verification: Literal["required", "optional", "off"] = "optional"
    """``required``: chat waits until the address is confirmed; ``optional``: a link is sent
    and a notice shown; ``off``: nothing is sent. ``required`` needs ``smtp_host``."""
    email_verification_hours: float = Field(default=48.0, gt=0)

    # --- risk-based step-up (identity/risk.py; docs/security.md "Risk-based step-up") ---
    risk_enabled: bool = False
    """Score every password login from offline signals and step up or refuse the risky
    ones. Off by default: the signals need real client addresses (``trusted_proxies``
    behind a proxy), email step-up needs ``smtp_host``, and the geo database costs about
    120 MiB of memory per process once loaded."""
    risk_weight_new_device: float = Field(default=0.25, ge=0, le=1)
    """A browser (device cookie) this account never completed a sign-in on."""
    risk_weight_new_network: float = Field(default=0.25, ge=0, le=1)
    """A country never seen for the account (full weight) or a new network (ASN) in a
    known country (half weight)."""
    risk_weight_impossible_travel: float = Field(default=0.8, ge=0, le=1)
    """Faster than ``risk_travel_max_kmh`` from the last sign-in's country."""
    risk_weight_unusual_hour: float = Field(default=0.15, ge=0, le=1)
    """An hour of day (UTC) the account rarely signs in at, once it has a history."""
    risk_weight_recent_failures: float = Field(default=0.3, ge=0, le=1)
    """Failed passwords on the account just before this one (scaled by the lockout's
    ``login_max_failures``)."""
    risk_step_up_at: float = Field(default=0.3, ge=0, le=1)
    """Scores from here ask for a second factor (TOTP, passkey, or a code by email)."""
    risk_deny_at: float = Field(default=0.7, ge=0, le=1)
    """Scores from here are refused (and the account's owner told by email)."""
    risk_notify_on_deny: bool = True
    risk_travel_max_kmh: float = Field(default=1000.0, gt=0)
    """Faster than an airliner between two sign-ins' countries is impossible travel."""
    risk_step_up_code_minutes: float = Field(default=10.0, gt=0, le=60)
    """How long an emailed sign-in code works (once)."""
    # --- end of risk-based step-up ---------------------------------------------------------

    # --- usage anomaly detection (identity/anomaly.py; docs/security.md) -----------------
    anomaly_enabled: bool = False
    """Score each key's and user's recent usage with an IsolationForest trained on this
    installation's own history, and alert on outliers. Off by default: it needs
    ``parley[anomaly]`` (scikit-learn) and some days of history to learn from."""
    anomaly_window_minutes: int = Field(default=60, ge=5, le=1440)
    """The length of the usage window scored (and of the windows trained on)."""
    anomaly_scan_seconds: float = Field(default=300.0, gt=0)
    """How often the trailing window is scored (by one instance at a time)."""
    anomaly_training_days: float = Field(default=14.0, gt=0, le=90)
    """How much history each training reads (within the usage retention)."""
    anomaly_retrain_hours: float = Field(default=24.0, gt=0)
    anomaly_min_windows: int = Field(default=200, ge=10)
    """No scoring until training has this many windows of a scope: too little history
    makes every window look unusual."""
    anomaly_threshold: float = Field(default=0.62, gt=0.5, lt=1)
    """The IsolationForest anomaly score (0.5 ordinary, towards 1 isolated at once) from
    which a window is an anomaly; ``bench/anomaly.py`` measures precision and recall."""
    anomaly_suspend_keys: bool = False
    """Also suspend a key whose window is an anomaly (403 on every instance at once)
    until an admin reviews it; otherwise anomalies only alert."""
    # --- end of usage anomaly detection ----------------------------------------------------

    # --- limits, budgets and usage --------------------------------------------------------
    ip_rpm: int | None = Field(default=None, ge=1)
    ip_tpm: int | None = Field(default=None, ge=1)
    ip_max_parallel: int | None = Field(default=None, ge=1)
    rate_limit_failure_mode: FailureMode = "open"
    """When the shared state is unreachable: serve without rate limits (open) or refuse."""
    budget_failure_mode: FailureMode = "closed"
    """When the shared state is unreachable: refuse budgeted callers (closed) or serve."""
    default_max_tokens_estimate: int = Field(default=1024, ge=1)
    """Completion tokens reserved against TPM limits and budgets when a request sets no
    ``max_tokens``; the reservation is reconciled with the real usage afterwards."""
    alert_webhook_url: str | None = None
    """Budget threshold alerts are POSTed here (``docs/costs.md``); none when unset."""
    alert_webhook_secret: SecretStr | None = None
    """Key of the HMAC-SHA256 ``x-parley-signature`` each alert carries."""
    budget_alert_thresholds: Annotated[list[float], NoDecode] = Field(default_factory=list)
    """Percentages (``50,80,100``) alerted for budgets that name none of their own (keys',
    users' and teams' budgets, and model-file budgets without ``alert_thresholds``)."""
    alert_retry_base_seconds: float = Field(default=1.0, gt=0)
    """First retry delay of a failed alert; doubles per attempt, at most 300 s."""
    alert_max_attempts: int = Field(default=8, ge=1)
    alert_poll_seconds: float = Field(default=1.0, gt=0)
    usage_flush_seconds: float = Field(default=0.1, gt=0)
    usage_batch_size: int = Field(default=500, ge=1)
    """The most rows one insert writes. The writer flushes what is queued every
    ``usage_flush_seconds`` (small batches, little event-loop time each) and writes full
    batches back to back when it falls behind, so its throughput is this many rows per
    insert's latency: 50 could not keep up with 1,200 requests/s on a busy core, and the
    queue grew until it dropped records (see docs/benchmarks.md)."""
    usage_claim_idle_seconds: float = Field(default=30.0, gt=0)
    """With Redis: usage entries a dead instance read but never wrote are taken over by
    another instance after this long."""
    usage_retention_days: float = Field(default=90, ge=0)
    """Raw usage rows (one per request) older than this are deleted by an hourly purge in
    bounded batches; the hourly and daily rollups that reports, the console and budgets
    read are kept. 0 keeps raw rows for ever. Deployment-scoped budgets are summed from raw
    rows, so keep this longer than their period (``docs/usage.md``)."""
    usage_hourly_retention_days: float = Field(default=90, ge=0)
    """Hourly usage rollup rows older than this are deleted by the same hourly purge, in
    bounded batches; the daily rollups are kept for ever (reports by day, key, user, team
    and group, and budgets, read them for old whole days). 0 keeps hourly rows for ever.
    At least 8 days, so the overview's week and a report's part days at its ends (read
    from hourly rows) stay whole (``docs/usage.md``)."""
    key_cache_seconds: float = Field(default=30.0, ge=0)

    embeddings_batch_max: int = Field(default=256, ge=1)
    """``/v1/embeddings`` requests to one deployment that arrive while its calls are busy
    share the next upstream call, up to this many inputs (1: never share)."""
    embeddings_batch_in_flight: int = Field(default=4, ge=1)
    """Upstream embeddings calls per deployment before new requests queue to share one."""

    generation_idle_seconds: float = Field(default=120, gt=0)
    """A client following an answer generated on another instance gives up (with an
    error event) when nothing arrives for this long: that instance has died."""
    chat_generation_heartbeat_seconds: float = Field(default=5, gt=0, le=300)
    """How often an instance refreshes the database record of the answers it is
    generating (one statement for all of them), and looks for answers whose instance died
    (``chat/lost.py``)."""
    chat_generation_stale_seconds: float = Field(default=15, gt=0)
    """An answer whose record went unrefreshed this long is lost (its instance died): the
    first instance to notice saves it as far as it got, marked ``error``. Keep it several
    heartbeats long, and longer than the clock skew between instances."""
    chat_stream_window_ms: float = Field(default=100, ge=0, le=1000)
    """The web app's answer streams write at most once per this long, the deltas that
    came meanwhile merged into one: a browser draws a frame per event, not one per token.
    0 writes every delta as it comes."""
    ws_queue_messages: int = Field(default=1000, ge=10)
    """Messages a WebSocket may fall behind by before it is closed (code 1013) so the
    client reconnects and reloads, instead of the server buffering without bound."""

    chat_purge_after_days: float = Field(default=30, ge=0)
    """A deleted conversation (and its event log, search rows and shares) is removed for
    good this long after its deletion (an hourly sweep)."""

    responses_store_default: bool = True
    """What ``/v1/responses`` does when a request leaves ``store`` out: keep the response
    (OpenAI's own default, which ``previous_response_id`` in clients such as the Agents
    SDK relies on). ``store: false`` is always honoured."""

    responses_keep_days: float = Field(default=30, gt=0)
    """A stored ``/v1/responses`` answer is readable (and continuable) this long, then
    purged by an hourly sweep in each instance."""

    chat_imports_per_user: int = Field(default=1, ge=1)
    """Imports (``POST /api/conversations/import``) one user may run at once, across every
    instance (shared state); one more is a 429 ``import_in_progress``."""
    chat_imports_per_instance: int = Field(default=2, ge=1)
    """Imports one instance runs at once, whoever sends them; one more is a 503
    ``imports_busy``. Each takes a core while its body is parsed and converted."""

    chat_semantic_search: str | None = None
    """``local`` (all-MiniLM-L6-v2, ``parley[semantic]``) or an embeddings model group:
    search also finds messages by meaning, fused with full-text hits (off when unset)."""
    chat_semantic_min_similarity: float = Field(default=0.35, ge=-1, le=1)
    """Messages less similar than this to the query are not semantic hits."""

    chat_title_model: str | None = None
    """A cheap model group that titles a conversation after its first exchange (off when
    unset). Billed to the user, like the conversation."""

    # --- response cache (per-group switches live in the model file) -----------------------
    cache_memory_bytes: int = Field(default=64 * 1024 * 1024, ge=0)
    """The in-process cache (L1) holds at most this many bytes of answers..."""
    cache_memory_entries: int = Field(default=10_000, ge=0)
    """...and at most this many answers; the least recently used go first."""
    cache_max_entry_bytes: int = Field(default=1024 * 1024, ge=1)
    """Answers larger than this (encoded) are never cached."""
    cache_semantic_index: Literal["memory", "pgvector"] = "memory"
    """Where the semantic cache indexes questions: in process (shared through Redis when
    configured) or in PostgreSQL with pgvector (needs a PostgreSQL database_url)."""
    cache_semantic_entries: int = Field(default=100_000, ge=1)
    """Questions the semantic cache indexes (about 1.6 KB each); the oldest leave first."""
    cache_flight_wait_seconds: float = Field(default=30.0, ge=0)
    """Identical requests arriving while one is being answered wait this long for its
    answer, then call upstream themselves."""

    @field_validator("budget_alert_thresholds", mode="before")
    @classmethod
    def _split_thresholds(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [float(entry) for entry in value.split(",") if entry.strip()]
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: Any) -> Any:
        """``PARLEY_TRUSTED_PROXIES=10.0.0.0/8, 192.168.1.7``: a comma-separated list."""
        if isinstance(value, str):
            return [entry.strip() for entry in value.split(",") if entry.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: list[str]) -> list[str]:
        networks = []
        for entry in value:
            try:
                networks.append(str(ipaddress.ip_network(entry.strip(), strict=False)))
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or CIDR network") from None
        return networks

    @field_validator("usage_hourly_retention_days")
    @classmethod
    def _hourly_long_enough(cls, value: float) -> float:
        if 0 < value < 8:
            raise ValueError("must be 0 (keep for ever) or at least 8 days")
        return value

    @field_validator("smtp_password")
    @classmethod
    def _password_reference(cls, value: str | None) -> str | None:
        if value is not None and not is_reference(value):
            raise ValueError("must be a reference like os.environ/SMTP_PASSWORD, not the password")
        return value

    @model_validator(mode="after")
    def _lost_after_heartbeats(self) -> Settings:
        if self.chat_generation_stale_seconds <= self.chat_generation_heartbeat_seconds:
            raise ValueError(
                "chat_generation_stale_seconds must be longer than "
                "chat_generation_heartbeat_seconds (an answer would be lost while it runs)"
            )
        return self

    @model_validator(mode="after")
    def _risk_bands(self) -> Settings:
        if self.risk_step_up_at > self.risk_deny_at:
            raise ValueError("risk_step_up_at must not be above risk_deny_at")
        return self

    @model_validator(mode="after")
    def _mail_needs(self) -> Settings:
        if self.email_verification == "required" and self.smtp_host is None:
            raise ValueError("email_verification=required needs smtp_host (mail must be sent)")
        if self.smtp_host is not None and self.shared_tier and self.public_url is None:
            raise ValueError("smtp_host on a shared tier needs public_url (the links' base)")
        return self

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        """Accept the URLs people paste (``postgresql://``, ``sqlite:///``) and pick the
        async driver Parley ships with."""
        return _async_url(value)

    @field_validator("database_replica_urls", mode="before")
    @classmethod
    def _split_replicas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [entry.strip() for entry in value.split(",") if entry.strip()]
        return value

    @field_validator("database_replica_urls")
    @classmethod
    def _replica_drivers(cls, value: list[str]) -> list[str]:
        urls = [_async_url(url) for url in value]
        if any(not url.startswith("postgresql+") for url in urls):
            raise ValueError("read replicas are PostgreSQL URLs (postgresql://...)")
        return urls

    @field_validator("metrics_address")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is not None:
            _split_host_port(value)
        return value

    def metrics_bind(self) -> tuple[str, int]:
        """``metrics_address`` as (host, port); only called when it is set."""
        assert self.metrics_address is not None
        return _split_host_port(self.metrics_address)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def shared_tier(self) -> bool:
        """PostgreSQL or Redis: several instances may be serving, so keys are mandatory."""
        return not self.is_sqlite or self.redis_url is not None

    @property
    def auth_required(self) -> bool:
        return self.admin_key is not None or self.require_auth or self.shared_tier

    @property
    def registration_open(self) -> bool:
        if self.allow_registration is not None:
            return self.allow_registration
        return self.is_sqlite and self.redis_url is None

    def loopback_only(self) -> bool:
        return is_loopback(self.host)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _split_host_port(value: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port``; ValueError (a settings error naming the variable)
    for anything else. Port 0 lets the system choose (tests)."""
    host, sep, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]") if host.startswith("[") else host
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"must be host:port (like 127.0.0.1:9464), got {value!r}")
    return host, int(port)


def _async_url(value: str) -> str:
    for plain, async_ in (
        ("postgres://", "postgresql+asyncpg://"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if value.startswith(plain):
            return async_ + value.removeprefix(plain)
    return value
