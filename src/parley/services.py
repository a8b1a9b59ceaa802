"""The long-lived services one app instance owns, built in the lifespan and closed with it:
database, shared state, API keys, admission and the usage recorder."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from parley.bus import Bus, Subjects
from parley.bus.memory import MemoryBus
from parley.chat.conversations import Conversations
from parley.chat.imports import Importer
from parley.chat.live import Hub
from parley.chat.outbox import Relay
from parley.chat.presets import Presets
from parley.chat.shares import Shares
from parley.chat.worker import Worker
from parley.config.secrets import resolve
from parley.config.settings import Settings
from parley.errors import ConfigError
from parley.gateway.accounting.alerts import BudgetAlerts
from parley.gateway.accounting.caller import Limits
from parley.gateway.accounting.limits import Admission, LimitSettings
from parley.gateway.accounting.usage import (
    USAGE_COLUMNS,
    MemoryUsageQueue,
    SpillingUsageQueue,
    UsageQueue,
    UsageRecorder,
)
from parley.identity.accounts import Accounts, LockoutPolicy, SessionLimits, SessionPolicy
from parley.identity.anomaly import AnomalyDetector
from parley.identity.keys import KeyStore
from parley.identity.login_risk import MAILS as LOGIN_MAILS
from parley.identity.login_risk import LoginRisk
from parley.identity.passwords import Passwords
from parley.identity.recovery import Recovery, RecoveryPolicy
from parley.identity.risk import RiskPolicy
from parley.identity.sessions import Sessions
from parley.identity.sso import SingleSignOn
from parley.identity.tokens import TokenSigner
from parley.mail.outbox import MailOutbox, RetryPolicy
from parley.mail.smtp import SmtpSender, SmtpSettings
from parley.observability.logging import get_logger
from parley.observability.metrics import Metrics
from parley.state import BreakerSync, ResponseStore, SharedEntries, StateBackend
from parley.state.keys import SEMANTIC_STREAM
from parley.state.memory import MemoryState
from parley.store import migrate
from parley.store.db import Database
from parley.store.responses import ResponseArchive
from parley.store.usage import insert_usage, spend_since

log = get_logger(__name__)


def smtp_sender(settings: Settings) -> SmtpSender | None:
    """The SMTP client the settings describe (its password resolved now), or None."""
    if settings.smtp_host is None:
        return None
    password = resolve(settings.smtp_password) if settings.smtp_password else None
    return SmtpSender(
        SmtpSettings(
            host=settings.smtp_host,
            port=settings.smtp_port,
            security=settings.smtp_security,
            username=settings.smtp_username,
            password=password,
            sender=settings.smtp_from,
            timeout_s=settings.smtp_timeout_seconds,
            ca_file=settings.smtp_ca_file,
        )
    )


def recovery_policy(settings: Settings) -> RecoveryPolicy:
    return RecoveryPolicy(
        reset_seconds=settings.password_reset_minutes * 60,
        verify_seconds=settings.email_verification_hours * 3600,
        verification=settings.email_verification,
    )


def risk_policy(settings: Settings) -> RiskPolicy:
    s = settings
    return RiskPolicy(
        weights={
            "new_device": s.risk_weight_new_device,
            "new_network": s.risk_weight_new_network,
            "impossible_travel": s.risk_weight_impossible_travel,
            "unusual_hour": s.risk_weight_unusual_hour,
            "recent_failures": s.risk_weight_recent_failures,
        },
        step_up_at=s.risk_step_up_at,
        deny_at=s.risk_deny_at,
        travel_max_kmh=s.risk_travel_max_kmh,
        max_failures=s.login_max_failures,
    )


class GaugeSampler(Worker):
    """Gauges that are read, not counted (a pool's use, the WebSockets open, the outboxes'
    backlogs, the bus lag), set every ``period_s`` by each process. A timer, not a read at
    scrape time: with several workers ``/metrics`` is answered from the files every worker
    writes (``observability/metrics.py``), so each keeps its own values current. The
    worker's loop logs a failed reading and retries; the gauges keep their last values."""

    name = "parley-gauges"

    def __init__(self, sample: Callable[[], Awaitable[None]], period_s: float) -> None:
        super().__init__(poll_s=period_s, max_backoff_s=period_s)
        self._sample = sample

    async def step(self) -> int:
        await self._sample()
        return 0


@dataclass(slots=True)
class Services:
    settings: Settings
    db: Database
    state: StateBackend
    keys: KeyStore
    admission: Admission
    usage: UsageRecorder
    accounts: Accounts
    breaker_sync: BreakerSync | None = None
    responses: ResponseStore | None = None
    """The shared response-cache tier (Redis), when configured."""
    semantic_entries: SharedEntries | None = None
    """With Redis: the semantic cache's questions, for every instance's index."""
    instance: str = ""
    bus: Bus = field(default_factory=MemoryBus)
    subjects: Subjects = field(default_factory=Subjects)
    conversations: Conversations = field(init=False)
    imports: Importer = field(init=False)
    shares: Shares = field(init=False)
    presets: Presets = field(init=False)
    relay: Relay = field(init=False)
    hub: Hub = field(init=False)
    mail: MailOutbox = field(init=False)
    """Reset and verification mail, delivered off the request path (``mail/outbox.py``)."""
    recovery: Recovery = field(init=False)
    stored_responses: ResponseArchive = field(init=False)
    """``/v1/responses`` answers kept with ``store`` (SQL, so every instance sees them)."""
    alerts: BudgetAlerts = field(init=False)
    """Budget threshold webhooks (``gateway/accounting/alerts.py``)."""
    sso: SingleSignOn | None = None
    """OpenID Connect sign-in, when the config file names providers (set by the app)."""
    anomalies: AnomalyDetector | None = field(init=False, default=None)
    """Usage anomaly detection, when ``anomaly_enabled`` (``identity/anomaly.py``)."""
    gauges: GaugeSampler = field(init=False)
    """The sampled gauges: pools, WebSockets, outbox backlogs, bus lag."""

    def __post_init__(self) -> None:
        s = self.settings
        self.alerts = BudgetAlerts(
            self.db,
            url=s.alert_webhook_url,
            secret=s.alert_webhook_secret.get_secret_value() if s.alert_webhook_secret else None,
            default_thresholds=s.budget_alert_thresholds,
            backoff_base_s=s.alert_retry_base_seconds,
            max_attempts=s.alert_max_attempts,
            poll_s=s.alert_poll_seconds,
        )
        self.admission.alerts = self.alerts if self.alerts.enabled else None
        self.stored_responses = ResponseArchive(
            self.db, keep_seconds=self.settings.responses_keep_days * 86400
        )
        self.conversations = Conversations(self.db)
        self.imports = Importer(
            self.db,
            self.conversations,
            self.state,
            per_user=self.settings.chat_imports_per_user,
            per_instance=self.settings.chat_imports_per_instance,
        )
        self.shares = Shares(self.db, self.conversations)
        self.presets = Presets(self.db)
        self.relay = Relay(self.db, self.bus, self.subjects)
        self.conversations.committed.append(self.relay.kick)
        self.hub = Hub(self.bus, self.subjects, queue_size=self.settings.ws_queue_messages)
        self.accounts.revoked.append(self.hub.revoke)
        self.bus.reconnected.append(self.hub.missed_events)
        self.mail = MailOutbox(
            self.db,
            smtp_sender(self.settings),
            retry=RetryPolicy(
                max_attempts=self.settings.mail_max_attempts,
                base_s=self.settings.mail_retry_base_seconds,
                max_s=self.settings.mail_retry_max_seconds,
            ),
            poll_s=self.settings.mail_poll_seconds,
        )
        self.recovery = Recovery(self.accounts, self.mail, recovery_policy(self.settings))
        self.gauges = GaugeSampler(self.sample_gauges, self.settings.metrics_sample_seconds)
        if self.settings.risk_enabled:
            self._start_risk()
        if self.settings.anomaly_enabled:
            self.anomalies = AnomalyDetector(
                self.db,
                self.settings,
                self.usage.metrics,
                admission=self.admission,
                keys=self.keys,
                alerts=self.alerts,
            )

    def _start_risk(self) -> None:
        """Risk-based step-up: scoring on password logins, and its mails beside recovery's."""
        risk = LoginRisk(
            self.db,
            self.state,
            tokens=self.accounts.tokens,
            outbox=self.mail,
            policy=risk_policy(self.settings),
            code_seconds=self.settings.risk_step_up_code_minutes * 60,
            notify_on_deny=self.settings.risk_notify_on_deny,
        )
        self.accounts.risk = risk
        recovery_compose = self.mail.compose

        async def compose(kind: str, to: str, data: dict[str, Any]) -> EmailMessage | None:
            if kind in LOGIN_MAILS:
                return await risk.compose(kind, to, data)
            assert recovery_compose is not None
            return await recovery_compose(kind, to, data)

        self.mail.compose = compose

    async def sample_gauges(self) -> None:
        """Read what the sampled gauges show, on this process (``GaugeSampler``)."""
        metrics = self.usage.metrics
        pool = self.db.pool_use()
        if pool is not None:
            metrics.db_pool.labels("in_use").set(pool[0])
            metrics.db_pool.labels("idle").set(pool[1])
        redis_pool = getattr(self.state, "pool_use", None)  # RedisState only
        if redis_pool is not None:
            in_use, idle = redis_pool()
            metrics.redis_pool.labels("in_use").set(in_use)
            metrics.redis_pool.labels("idle").set(idle)
        sockets, users = self.hub.counts()
        metrics.websockets.set(sockets)
        metrics.active_users.set(users)
        events, waited = await self.relay.backlog()
        metrics.outbox_backlog.labels("events").set(events)
        metrics.bus_lag.set(waited)
        metrics.outbox_backlog.labels("mail").set(await self.mail.backlog())

    async def start(self) -> None:
        """Connect the bus and start publishing the outbox (rows left by a previous run
        first)."""
        await self.bus.start()
        await self.hub.start()
        self.relay.start()
        self.relay.kick()
        self.mail.start()
        self.alerts.start()
        if self.anomalies is not None:
            self.anomalies.start()
        self.gauges.start()
        self.gauges.kick()  # the first reading at once, not a period after start-up

    async def close(self) -> None:
        await self.gauges.stop()
        if self.sso is not None:
            await self.sso.close()
        if self.anomalies is not None:
            await self.anomalies.stop()
        await self.alerts.stop()
        await self.mail.stop()
        await self.relay.stop()
        await self.hub.close()
        await self.bus.close()
        await self.usage.stop()
        await self.state.close()
        await self.db.close()


async def open_services(settings: Settings, metrics: Metrics) -> Services:
    db = Database(
        settings.database_url,
        replica_urls=settings.database_replica_urls,
        replica_max_lag_s=settings.database_replica_max_lag_seconds,
        replica_check_s=settings.database_replica_check_seconds,
        metrics=metrics,
    )
    await _schema(db, settings)
    await db.start()
    state: StateBackend
    queue: UsageQueue
    breaker_sync: BreakerSync | None = None
    responses: ResponseStore | None = None
    semantic_entries: SharedEntries | None = None
    instance = f"parley-{uuid.uuid4().hex[:12]}"
    if settings.redis_url:
        from parley.state.redis import (  # noqa: PLC0415
            RedisBreakerSync,
            RedisResponseStore,
            RedisSharedEntries,
            RedisState,
            RedisUsageStream,
        )

        redis_state = RedisState(settings.redis_url)
        state = redis_state
        queue = SpillingUsageQueue(
            RedisUsageStream(redis_state, instance, claim_idle_s=settings.usage_claim_idle_seconds)
        )
        if settings.shared_breakers:
            breaker_sync = RedisBreakerSync(redis_state, instance)
        responses = RedisResponseStore(redis_state, instance)
        semantic_entries = RedisSharedEntries(
            redis_state, SEMANTIC_STREAM, max_entries=settings.cache_semantic_entries
        )
    else:
        state = MemoryState()
        queue = MemoryUsageQueue()

    async def load_spend(scope: str, ident: str, since_ms: int) -> int:
        """Spend of one budget holder since an instant, from the usage table. A tier's
        counter is per member (``tier:user``): that user's spend."""
        if scope == "installation":
            return await spend_since(db, None, ident, since_ms)
        if scope == "tier":
            return await spend_since(db, "user_id", ident.partition(":")[2], since_ms)
        column = {"model": "model_group", "deployment": "deployment"}.get(scope, f"{scope}_id")
        return await spend_since(db, column, ident, since_ms)

    admission = Admission(
        state,
        LimitSettings(
            ip=Limits(
                rpm=settings.ip_rpm, tpm=settings.ip_tpm, max_parallel=settings.ip_max_parallel
            ),
            rate_fail_open=settings.rate_limit_failure_mode == "open",
            budget_fail_open=settings.budget_failure_mode == "open",
            default_max_tokens=settings.default_max_tokens_estimate,
            revocation_ttl_s=settings.key_cache_seconds + 30,
            check_suspension=settings.anomaly_enabled and settings.anomaly_suspend_keys,
        ),
        load_spend,
        metrics,
    )

    async def write(rows: list[tuple[object, ...]]) -> None:
        await insert_usage(db, USAGE_COLUMNS, rows)

    usage = UsageRecorder(
        queue,
        write,
        metrics,
        batch_size=settings.usage_batch_size,
        flush_seconds=settings.usage_flush_seconds,
    )
    usage.start()
    keys = KeyStore(db, cache_seconds=settings.key_cache_seconds)
    signer = TokenSigner(
        db,
        access_seconds=settings.access_token_seconds,
        rotate_days=settings.signing_key_rotate_days,
    )
    await signer.load()
    accounts = Accounts(
        db,
        state,
        tokens=signer,
        passwords=Passwords(concurrency=settings.password_hash_concurrency),
        sessions=Sessions(db, refresh_days=settings.refresh_token_days),
        lockout=LockoutPolicy(
            max_failures=settings.login_max_failures,
            base_s=settings.login_lockout_seconds,
            cap_s=settings.login_lockout_max_seconds,
            forget_s=settings.login_failure_forget_seconds,
        ),
        passkey_challenge_seconds=settings.webauthn_challenge_seconds,
        session_policy=SessionPolicy(
            web=SessionLimits(
                idle_s=settings.web_session_idle_seconds,
                absolute_s=settings.web_session_absolute_seconds,
            ),
            api=SessionLimits(
                idle_s=settings.api_session_idle_seconds,
                absolute_s=settings.api_session_absolute_seconds,
            ),
        ),
    )
    subjects = Subjects(settings.nats_namespace)
    services = Services(
        settings,
        db,
        state,
        keys,
        admission,
        usage,
        accounts,
        breaker_sync,
        responses,
        semantic_entries,
        instance,
        _bus(settings, subjects),
        subjects,
    )
    try:
        await services.start()
    except BaseException:
        await services.close()
        raise
    return services


def _bus(settings: Settings, subjects: Subjects) -> Bus:
    if settings.nats_url is None:
        return MemoryBus()
    from parley.bus.nats import NatsBus  # noqa: PLC0415 - nats-py only when configured

    return NatsBus(
        settings.nats_url,
        subjects,
        keep_events_s=settings.bus_keep_events_seconds,
        keep_generations_s=settings.bus_keep_generations_seconds,
    )


async def _schema(db: Database, settings: Settings) -> None:
    if settings.auto_migrate:
        await migrate.upgrade(db)
        return
    current, head = await migrate.current_revision(db), migrate.HEAD
    if current != head:
        await db.close()
        raise ConfigError(
            [
                f"database schema is at {current or 'nothing'}, this Parley needs {head}: "
                "run `parley db upgrade` (or set PARLEY_AUTO_MIGRATE=true)"
            ]
        )
