"""The ``parley`` command."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from parley import __version__
from parley.cli_models import ConfigOption, models_app, secrets_app
from parley.config import Settings, load_models
from parley.errors import ConfigError

app = typer.Typer(
    help="Parley: an OpenAI-compatible LLM gateway.", no_args_is_help=True, add_completion=False
)
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address [default: 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="Port [default: 4000]")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes [default: 1]")] = None,
    config: ConfigOption = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Allow keyless /v1 on a non-loopback address.")
    ] = False,
) -> None:
    """Start the gateway."""
    from parley.runtime import pause_collector, resume_collector

    pause_collector()  # back on, and the start-up heap frozen, in the app's lifespan
    import uvicorn

    from parley.api.server import ParleyHttpProtocol
    from parley.app import create_app
    from parley.observability.logging import configure_logging

    overrides = {
        k: v
        for k, v in {"host": host, "port": port, "workers": workers, "config": config}.items()
        if v is not None
    }
    if insecure:
        overrides["insecure"] = True
    settings = Settings(**overrides)  # type: ignore[arg-type]  # pydantic validates the values
    configure_logging(settings.log_level, settings.log_format, cache=True)
    if not settings.auth_required and not settings.loopback_only() and not settings.insecure:
        err.print(
            f"[bold red]refusing to serve /v1 without API keys on {settings.host}[/]\n"
            "  set PARLEY_ADMIN_KEY (or PARLEY_REQUIRE_AUTH=true) and create keys with "
            "`parley keys create`,\n  bind 127.0.0.1, or pass --insecure to accept the risk.",
            highlight=False,
        )
        raise typer.Exit(2)
    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop" if _has("uvloop") else "asyncio",
        "http": ParleyHttpProtocol,  # uvicorn's httptools protocol, one write per response
        "timeout_graceful_shutdown": settings.drain_timeout_seconds,
        # uvicorn listens with a backlog of 2,048: when more clients than that connect at
        # once, the kernel drops the handshakes it cannot queue and those clients' first
        # requests wait out TCP retransmissions (1, 3, 7 s...). Queue as many as we hold.
        "backlog": settings.max_connections,
        "log_level": "warning",
        "access_log": False,
        "server_header": False,
        # The client address is Parley's to resolve (PARLEY_TRUSTED_PROXIES, api/proxies.py):
        # uvicorn's own rewriting believes X-Forwarded-For from any loopback peer.
        "proxy_headers": False,
    }
    if settings.workers > 1:
        # Workers are separate processes that build their own app from PARLEY_* variables.
        for key, value in overrides.items():
            os.environ[f"PARLEY_{key.upper()}"] = str(value)
        _check(settings.config)
        # Migrate once here; the workers then only check the schema instead of racing.
        _run(_upgrade(settings))
        os.environ["PARLEY_AUTO_MIGRATE"] = "false"
        _multiprocess_metrics()
        resume_collector()  # this process only supervises; no lifespan here turns it on
        uvicorn.run(
            "parley.app:create_app_from_env", factory=True, workers=settings.workers, **common
        )
        return
    try:
        application = create_app(settings)
    except ConfigError as exc:
        _fail(exc)
    console.print(
        f"Parley {__version__} listening on http://{settings.host}:{settings.port}", highlight=False
    )
    uvicorn.run(application, **common)


def _multiprocess_metrics() -> None:
    """Give the workers one fresh directory for their metric files (see metrics.py)."""
    import atexit
    import shutil
    import tempfile

    directory = tempfile.mkdtemp(prefix="parley-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    atexit.register(shutil.rmtree, directory, ignore_errors=True)


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _check(path: Path | None) -> None:
    try:
        load_models(path)
    except ConfigError as exc:
        _fail(exc)


def _fail(exc: ConfigError) -> None:
    err.print("[bold red]configuration error[/]")
    for line in exc.errors:
        err.print(f"  {line}", highlight=False, markup=False)
    raise typer.Exit(2)


@app.command()
def prices(config: ConfigOption = None) -> None:
    """The prices that apply to each configured deployment (catalog, overridden by the
    deployment's ``price:``), USD per million tokens. Warns where a model has none."""
    from parley.gateway.accounting.cost import catalog, catalog_entry, price_of

    try:
        loaded = load_models(config)
    except ConfigError as exc:
        _fail(exc)
        return
    columns = (
        "deployment",
        "model",
        "source",
        "as of",
        "input",
        "output",
        "cached read",
        "write 5m",
        "write 1h",
        "reasoning",
        "long context",
        "batch",
    )
    rows: list[tuple[str, ...]] = []
    missing: list[str] = []
    for group in loaded.groups:
        for dep in group.deployments:
            price = price_of(dep)
            entry = catalog_entry(dep.provider, dep.model)
            if price is None:
                missing.append(dep.label)
                rows.append((dep.label, dep.model, "none", "", *[""] * 8))
                continue
            r = price.base

            def m(v: float) -> str:
                return f"{v / 1000:g}"

            long = ""
            if price.long_context is not None:
                lc = price.long_context
                long = f">{price.long_context_threshold}: {m(lc.input)}/{m(lc.output)}"
            rows.append(
                (
                    dep.label,
                    dep.model,
                    price.source,
                    entry.as_of if entry is not None else "",
                    m(r.input),
                    m(r.output),
                    m(r.cached_read),
                    m(r.cache_write_5m),
                    m(r.cache_write_1h),
                    m(r.reasoning_output),
                    long,
                    f"x{price.batch_factor:g}",
                )
            )
    if console.is_terminal:
        table = Table(*columns)
        for row in rows:
            table.add_row(*row)
        console.print(table)
    else:  # piped: real tabs (rich would expand them), for scripts
        for line in [columns, *rows]:
            typer.echo("\t".join(line))
    console.print(f"catalog dated {catalog()[0]}", highlight=False, markup=False)
    for label in missing:
        err.print(
            f"warning: {label} has no price (neither the catalog nor `price:` in the config); "
            "its spend reads as zero",
            highlight=False,
            markup=False,
        )


@app.command("check-config")
def check_config(
    file: Annotated[Path, typer.Argument(help="Config file to validate.")],
) -> None:
    """Validate a config file; errors name the path of each bad field. Exit 2 when invalid."""
    try:
        loaded = load_models(file)
    except ConfigError as exc:
        _fail(exc)
        return
    deployments = sum(len(g.deployments) for g in loaded.groups)
    console.print(
        f"{file}: OK ({len(loaded.groups)} model groups, {deployments} deployments)",
        highlight=False,
    )
    for note in loaded.notes:
        console.print(f"note: {note}", highlight=False, markup=False)


admin_app = typer.Typer(help="Accounts.", no_args_is_help=True)
app.add_typer(admin_app, name="admin")
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
keys_app = typer.Typer(help="Virtual API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
chat_app = typer.Typer(help="Conversations.", no_args_is_help=True)
app.add_typer(chat_app, name="chat")
users_app = typer.Typer(help="User accounts.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(models_app, name="models")
app.add_typer(secrets_app, name="secrets")


def _run(coro: Any) -> Any:
    import asyncio

    from parley.errors import ParleyError

    try:
        return asyncio.run(coro)
    except ParleyError as exc:
        err.print(f"[bold red]error:[/] {exc.message}", highlight=False)
        raise typer.Exit(1) from None


async def _upgrade(settings: Settings) -> str | None:
    from parley.store import migrate
    from parley.store.db import Database

    db = Database(settings.database_url)
    try:
        await migrate.upgrade(db)
        return await migrate.current_revision(db)
    finally:
        await db.close()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations to PARLEY_DATABASE_URL (run once per release in clusters)."""
    settings = Settings()
    revision = _run(_upgrade(settings))
    console.print(f"database at revision {revision}", highlight=False)


async def _rebuild(settings: Settings) -> int:
    from parley.chat.conversations import Conversations
    from parley.store import migrate
    from parley.store.db import Database

    db = Database(settings.database_url)
    try:
        await migrate.upgrade(db)
        return await Conversations(db).rebuild_projections()
    finally:
        await db.close()


@chat_app.command("rebuild-projections")
def chat_rebuild_projections() -> None:
    """Rebuild the conversation and message tables from the event log (one transaction)."""
    replayed = _run(_rebuild(Settings()))
    console.print(f"rebuilt the read models from {replayed} events", highlight=False)


async def _purge(settings: Settings, days: float) -> int:
    from parley.chat.purge import purge
    from parley.store.db import Database

    db = Database(settings.database_url)
    try:
        return await purge(db, int((time.time() - days * 86400) * 1000))
    finally:
        await db.close()


@chat_app.command("purge")
def chat_purge(
    older_than_days: Annotated[
        float | None,
        typer.Option(help="Deleted at least this long ago (default PARLEY_CHAT_PURGE_AFTER_DAYS)."),
    ] = None,
) -> None:
    """Remove deleted conversations for good: read models, search rows, shares and events."""
    settings = Settings()
    days = settings.chat_purge_after_days if older_than_days is None else older_than_days
    purged = _run(_purge(settings, days))
    console.print(f"purged {purged} deleted conversations", highlight=False)


@keys_app.command("create")
def keys_create(
    team: Annotated[str | None, typer.Option(help="Owning team id.")] = None,
    user: Annotated[str | None, typer.Option(help="Owning user id.")] = None,
    name: Annotated[str | None, typer.Option(help="A label for listings.")] = None,
    rpm: Annotated[int | None, typer.Option(min=1, help="Requests per minute.")] = None,
    tpm: Annotated[int | None, typer.Option(min=1, help="Tokens per minute.")] = None,
    max_parallel: Annotated[int | None, typer.Option(min=1, help="Concurrent requests.")] = None,
    budget: Annotated[float | None, typer.Option(min=0, help="Hard budget in USD.")] = None,
    budget_period: Annotated[
        str, typer.Option(help="daily | weekly | monthly | total")
    ] = "monthly",
    models: Annotated[
        str | None, typer.Option(help="Allowed model groups, comma-separated.")
    ] = None,
    expires_days: Annotated[float | None, typer.Option(min=0, help="Expire after N days.")] = None,
    priority: Annotated[
        int | None, typer.Option(min=1, max=5, help="Admission priority, 1 (first) to 5.")
    ] = None,
) -> None:
    """Create a key and print it (the only time it is shown) alone on the last line."""
    from parley.errors import ParleyError
    from parley.identity.schemas import key_spec

    try:
        spec = key_spec(
            {
                "name": name,
                "team_id": team,
                "user_id": user,
                "rpm": rpm,
                "tpm": tpm,
                "max_parallel": max_parallel,
                "budget_usd": budget,
                "budget_period": budget_period,
                "models": [m.strip() for m in models.split(",") if m.strip()] if models else None,
                "expires_in_days": expires_days,
                "priority": priority,
            }
        )
    except ParleyError as exc:
        err.print(f"[bold red]error:[/] {exc.param}: {exc.message}", highlight=False)
        raise typer.Exit(2) from None
    created = _run(_with_keys(lambda keys: keys.create(spec, created_by="cli")))
    err.print(
        f"created key {created.id} ({created.prefix}...); store it now, it is not shown again"
    )
    print(created.key)


@keys_app.command("revoke")
def keys_revoke(
    key_or_id: Annotated[str, typer.Argument(help="The key itself or its id.")],
) -> None:
    """Revoke a key on every instance."""

    async def revoke(keys: Any) -> str:
        key_id = await keys.find_id(key_or_id)
        await keys.revoke(key_id)
        return str(key_id)

    key_id = _run(_with_keys(revoke, revoke_flag=True))
    console.print(f"revoked {key_id}", highlight=False)


@keys_app.command("list")
def keys_list() -> None:
    """List keys (never the keys themselves: id, prefix, owner, limits, state)."""
    rows = _run(_with_keys(lambda keys: keys.list(limit=1000)))
    for row in rows:
        state = "revoked" if row["revoked_ms"] else "active"
        console.print(
            f"{row['id']}\t{row['prefix']}...\t{row['team_id'] or '-'}\t{row['user_id'] or '-'}"
            f"\t{state}",
            highlight=False,
            markup=False,
        )


async def _with_keys(action: Any, *, revoke_flag: bool = False) -> Any:
    """Run ``action(KeyStore)`` against PARLEY_DATABASE_URL (migrated first), and when a
    key is revoked, raise its flag in the shared state so running instances refuse it."""
    from parley.identity.keys import KeyStore
    from parley.store import migrate
    from parley.store.db import Database

    settings = Settings()
    db = Database(settings.database_url)
    try:
        await migrate.upgrade(db)
        result = await action(KeyStore(db))
        if revoke_flag and settings.redis_url:
            from parley.state import keys as state_keys
            from parley.state.redis import RedisState

            state = RedisState(settings.redis_url)
            try:
                await state.set_flag(
                    state_keys.revoked("key", result), settings.key_cache_seconds + 30
                )
            finally:
                await state.close()
        return result
    finally:
        await db.close()


@admin_app.command("create-user")
def admin_create_user(
    email: Annotated[str, typer.Option(prompt=True, help="Login email.")],
    name: Annotated[str, typer.Option(prompt=True, help="Display name.")],
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            envvar="PARLEY_NEW_USER_PASSWORD",
            help="At least 12 characters (prompted when not given).",
        ),
    ],
    admin: Annotated[bool, typer.Option("--admin", help="Make a global admin.")] = False,
) -> None:
    """Create an account (``--admin`` bootstraps the first administrator)."""
    from parley.identity.passwords import Passwords
    from parley.identity.users import Users
    from parley.store import migrate
    from parley.store.db import Database

    async def create() -> Any:
        from parley.identity.passwords import check_policy
        from parley.identity.users import normalise_email

        settings = Settings()
        db = Database(settings.database_url)
        try:
            await migrate.upgrade(db)
            address = normalise_email(email)
            check_policy(password, email=address, name=name)
            hashed = await Passwords().hash(password)
            return await Users(db).create(
                email=address, name=name.strip(), password_hash=hashed, is_admin=admin
            )
        finally:
            await db.close()

    user = _run(create())
    role = "admin" if admin else "user"
    console.print(f"created {role} {user.email} ({user.id})", highlight=False)


@app.command()
def version() -> None:
    """Print Parley's version."""
    console.print(__version__, highlight=False)


def main() -> None:
    app()


async def _reset_password(
    settings: Settings, email: str, password: str | None, base_url: str | None
) -> tuple[str, str | None]:
    """(user id, one-time link or None) after the reset, audited as the CLI. Runs the full
    services so the sessions it ends close on every instance (shared flag, bus notice)."""
    from parley.errors import NotFound
    from parley.identity.audit import audit
    from parley.identity.users import normalise_email
    from parley.observability.metrics import Metrics
    from parley.services import open_services

    svc = await open_services(settings, Metrics())
    try:
        user = await svc.accounts.users.by_email(normalise_email(email))
        if user is None:
            raise NotFound(f"no account with email {email!r}")
        link = None
        if password is not None:
            await svc.recovery.set_password(user.id, password)
            action = "user.password_reset_set"
        else:
            link, _ = await svc.recovery.reset_link_for(user.id, base_url=base_url or "")
            action = "user.password_reset_link"
        await audit(svc.db, actor="cli", action=action, target=user.id)
        return user.id, link
    finally:
        await svc.close()


@users_app.command("reset-password")
def users_reset_password(
    email: Annotated[str, typer.Argument(help="The account's email.")],
    set_password: Annotated[
        bool,
        typer.Option(
            "--set-password",
            help="Set a new password now (prompted, or PARLEY_NEW_USER_PASSWORD) "
            "instead of printing a one-time link.",
        ),
    ] = False,
    base_url: Annotated[
        str | None,
        typer.Option(help="The links' base (default PARLEY_PUBLIC_URL)."),
    ] = None,
) -> None:
    """Reset a password without mail: print a one-time reset link, or set the password.
    Either way the account's sessions end everywhere; the action is audited."""
    settings = Settings()
    password = None
    if set_password:
        password = os.environ.get("PARLEY_NEW_USER_PASSWORD") or typer.prompt(
            "New password", hide_input=True, confirmation_prompt=True
        )
    base = base_url or settings.public_url
    if password is None and not base:
        err.print("[bold red]error:[/] set PARLEY_PUBLIC_URL or pass --base-url", highlight=False)
        raise typer.Exit(2)
    user_id, link = _run(_reset_password(settings, email, password, base))
    if link is None:
        console.print(f"password set for {user_id}; every session ended", highlight=False)
    else:
        console.print(link, highlight=False, markup=False, soft_wrap=True)
        console.print("(works once; every session ends when it is used)", highlight=False)
