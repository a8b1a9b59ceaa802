"""``parley models`` (model groups: the file's, read-only, and the database's, managed at
run time) and ``parley secrets`` (the key stored credentials are encrypted with).

The verbs work on ``PARLEY_DATABASE_URL`` through the same catalog as ``/admin/models``
(``gateway/catalog.py``): the same validation, revisions and audit log (actor ``cli``).
With ``PARLEY_NATS_URL`` set, running instances hear of a change at once; otherwise they
pick it up at their next poll (``PARLEY_MODELS_POLL_SECONDS``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import yaml
from rich.console import Console
from rich.table import Table

from parley.config import Settings, load_models
from parley.errors import ConfigError, ParleyError

T = TypeVar("T")
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

models_app = typer.Typer(
    help="Model groups: list the file's and the database's; add, disable, enable, delete, "
    "roll back the database's.",
    invoke_without_command=True,
)
secrets_app = typer.Typer(help="PARLEY_SECRETS_KEY: stored provider credentials.")

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Model groups YAML (Parley or LiteLLM format).",
        envvar="PARLEY_CONFIG",
        dir_okay=False,
    ),
]


def _fail(exc: ConfigError) -> None:
    err.print("[bold red]configuration error[/]")
    for line in exc.errors:
        err.print(f"  {line}", highlight=False, markup=False)
    raise typer.Exit(2)


def _table(columns: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    if console.is_terminal:
        table = Table(*columns)
        for row in rows:
            table.add_row(*row)
        console.print(table)
    else:  # piped: whole values, tab-separated, for scripts
        for line in [columns, *rows]:
            print("\t".join(line))  # not rich: it would expand the tabs


@models_app.callback()
def models(ctx: typer.Context, config: ConfigOption = None) -> None:
    """List the model file's groups and their deployments (with no verb), or manage the
    groups kept in the database (``parley models list`` shows both)."""
    ctx.obj = config
    if ctx.invoked_subcommand is not None:
        return
    try:
        loaded = load_models(config)
    except ConfigError as exc:
        _fail(exc)
        return
    if not loaded.groups:
        console.print("No model groups configured (source: environment).")
        return
    columns = ("model group", "provider", "upstream model", "api base", "deployment")
    _table(
        columns,
        [
            (g.name, d.provider, d.model, d.api_base, d.label)
            for g in loaded.groups
            for d in g.deployments
        ],
    )
    for note in loaded.notes:
        console.print(f"note: {note}", highlight=False, markup=False)


async def _with_catalog(config: Path | None, action: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``action(catalog)`` against the database (migrated first), announcing changes
    on NATS when it is configured."""
    from parley.bus import Subjects
    from parley.bus.nats import NatsBus
    from parley.config.vault import SecretBox, VaultError
    from parley.gateway.catalog import FileModels, ModelCatalog
    from parley.store import migrate
    from parley.store.db import Database

    settings = Settings()
    loaded = load_models(config if config is not None else settings.config)
    keys = settings.secrets_key.get_secret_value() if settings.secrets_key else None
    try:
        box = SecretBox(keys)
    except VaultError as exc:
        raise ConfigError([str(exc)]) from None
    db = Database(settings.database_url)
    subjects = Subjects(settings.nats_namespace)
    bus = NatsBus(settings.nats_url, subjects) if settings.nats_url else None
    try:
        await migrate.upgrade(db)
        if bus is not None:
            await bus.start()
        virtual = frozenset(t.name for t in loaded.tiered) | frozenset(
            e.name for e in loaded.experiments
        )
        catalog = ModelCatalog(
            db, box, FileModels(loaded.groups, virtual), os.environ, bus, subjects
        )
        return await action(catalog)
    finally:
        if bus is not None:
            await bus.close()
        await db.close()


def _run(coro: Awaitable[T]) -> T:
    import asyncio

    try:
        return asyncio.run(coro)  # type: ignore[arg-type]  # a coroutine
    except ConfigError as exc:
        _fail(exc)
        raise
    except ParleyError as exc:
        err.print(f"[bold red]error:[/] {exc.message}", highlight=False, markup=False)
        raise typer.Exit(1) from None


async def _audited(catalog: Any, action: str, saved: Any, **detail: Any) -> Any:
    from parley.identity.audit import audit

    await audit(
        catalog.db,
        actor="cli",
        action=f"model.{action}",
        target=saved.group,
        detail={"revision": saved.revision, **detail},
    )
    return saved


def _config(ctx: typer.Context) -> Path | None:
    found: Path | None = ctx.obj
    return found


@models_app.command("list")
def models_list(ctx: typer.Context) -> None:
    """Every group: the file's (read-only, "from parley.yaml") and the database's."""

    async def listing(catalog: Any) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await catalog.listing()
        return found

    rows = []
    for group in _run(_with_catalog(_config(ctx), listing)):
        source = group.get("label") or "database"
        state = "enabled" if group["enabled"] else "disabled"
        for dep in group["deployments"]:
            rows.append(
                (
                    group["name"],
                    source,
                    state,
                    str(group.get("revision", "-")),
                    dep["label"],
                    dep["provider"] or "",
                    dep["model"] or "",
                    "enabled" if dep["enabled"] else "disabled",
                )
            )
    columns = (
        "model group",
        "source",
        "state",
        "revision",
        "deployment",
        "provider",
        "model",
        "deployment state",
    )
    _table(columns, rows)


@models_app.command("show")
def models_show(ctx: typer.Context, name: str) -> None:
    """One group as JSON (a stored secret shows as its last four characters at most)."""

    async def show(catalog: Any) -> dict[str, Any]:
        for group in catalog.file.groups:
            if group.name == name:
                shown: dict[str, Any] = catalog.file_shown(group)
                return shown
        found: dict[str, Any] = catalog.shown(await catalog.get(name))
        return found

    print(json.dumps(_run(_with_catalog(_config(ctx), show)), indent=2, ensure_ascii=False))


def _documents(path: Path) -> list[Any]:
    """One group (a mapping), a list of them, or a model file's ``models:`` list."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))  # JSON is YAML too
    except (OSError, yaml.YAMLError) as exc:
        err.print(f"[bold red]error:[/] cannot read {path}: {exc}", highlight=False)
        raise typer.Exit(2) from None
    if isinstance(data, dict) and "models" in data and "deployments" not in data:
        data = data["models"]
    return data if isinstance(data, list) else [data]


@models_app.command("add")
def models_add(
    ctx: typer.Context,
    path: Annotated[
        Path, typer.Argument(help="A YAML or JSON file: one group, or a list.", dir_okay=False)
    ],
    replace: Annotated[bool, typer.Option(help="Replace groups that exist already.")] = False,
) -> None:
    """Store model groups in the database (each becomes a new revision)."""

    async def add(catalog: Any) -> list[Any]:
        saved = []
        for document in _documents(path):
            name = document.get("name") if isinstance(document, dict) else None
            exists = isinstance(name, str) and replace and await _stored(catalog, name)
            if exists:
                done = await catalog.replace(name, document, "cli")
                saved.append(await _audited(catalog, "update", done))
            else:
                done = await catalog.create(document, "cli")
                saved.append(await _audited(catalog, "create", done))
        return saved

    for saved in _run(_with_catalog(_config(ctx), add)):
        console.print(f"{saved.group}: revision {saved.revision} ({saved.action})", highlight=False)


async def _stored(catalog: Any, name: str) -> bool:
    from parley.store.model_groups import get_group

    return await get_group(catalog.db, name) is not None


def _toggle(ctx: typer.Context, name: str, deployment: int | None, enabled: bool) -> None:
    async def toggle(catalog: Any) -> Any:
        word = "enable" if enabled else "disable"
        if deployment is None:
            return await _audited(catalog, word, await catalog.set_enabled(name, enabled, "cli"))
        saved = await catalog.set_deployment_enabled(name, deployment, enabled, "cli")
        return await _audited(catalog, f"deployment_{word}", saved, deployment=deployment)

    saved = _run(_with_catalog(_config(ctx), toggle))
    console.print(f"{saved.group}: revision {saved.revision} ({saved.action})", highlight=False)


DeploymentOption = Annotated[
    int | None, typer.Option("--deployment", "-d", help="Only this deployment (its index).")
]


@models_app.command("disable")
def models_disable(ctx: typer.Context, name: str, deployment: DeploymentOption = None) -> None:
    """Stop serving a group (or one of its deployments) on every instance."""
    _toggle(ctx, name, deployment, enabled=False)


@models_app.command("enable")
def models_enable(ctx: typer.Context, name: str, deployment: DeploymentOption = None) -> None:
    """Serve a disabled group (or deployment) again."""
    _toggle(ctx, name, deployment, enabled=True)


@models_app.command("delete")
def models_delete(ctx: typer.Context, name: str) -> None:
    """Delete a stored group (its revisions stay: ``rollback`` brings it back)."""

    async def delete(catalog: Any) -> Any:
        return await _audited(catalog, "delete", await catalog.delete(name, "cli"))

    saved = _run(_with_catalog(_config(ctx), delete))
    console.print(f"{saved.group}: deleted (revision {saved.revision})", highlight=False)


@models_app.command("deleted")
def models_deleted(ctx: typer.Context) -> None:
    """Deleted stored groups, newest deletion first, with the revision that restores one
    (``parley models rollback NAME REVISION``)."""
    import datetime as dt

    async def deleted(catalog: Any) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await catalog.deleted()
        return found

    rows = [
        (
            d["name"],
            dt.datetime.fromtimestamp(d["deleted_ms"] / 1000, dt.UTC).isoformat(timespec="seconds"),
            d["deleted_by"],
            str(d["revision"]),
            str(d["restorable_revision"]),
        )
        for d in _run(_with_catalog(_config(ctx), deleted))
    ]
    _table(("model group", "deleted (UTC)", "actor", "revision", "restore with revision"), rows)


@models_app.command("revisions")
def models_revisions(ctx: typer.Context, name: str) -> None:
    """A stored group's revisions, newest first: who changed it, when, and how."""
    import datetime as dt

    async def revisions(catalog: Any) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await catalog.revisions(name)
        return found

    rows = [
        (
            str(r["revision"]),
            dt.datetime.fromtimestamp(r["time_ms"] / 1000, dt.UTC).isoformat(timespec="seconds"),
            r["actor"],
            r["action"],
            "enabled" if r["enabled"] else "disabled",
        )
        for r in _run(_with_catalog(_config(ctx), revisions))
    ]
    _table(("revision", "time (UTC)", "actor", "action", "state"), rows)


@models_app.command("rollback")
def models_rollback(ctx: typer.Context, name: str, revision: int) -> None:
    """Restore a revision of a group, as a new revision."""

    async def rollback(catalog: Any) -> Any:
        saved = await catalog.rollback(name, revision, "cli")
        return await _audited(catalog, "rollback", saved, restored=revision)

    saved = _run(_with_catalog(_config(ctx), rollback))
    console.print(
        f"{saved.group}: revision {revision} restored as revision {saved.revision}", highlight=False
    )


@secrets_app.command("new-key")
def secrets_new_key() -> None:
    """Print a fresh key for PARLEY_SECRETS_KEY."""
    from parley.config.vault import new_key

    print(new_key())


@secrets_app.command("rotate")
def secrets_rotate() -> None:
    """Re-encrypt every stored secret (groups and their revisions) with the first key of
    PARLEY_SECRETS_KEY. Rotation: prepend the new key, run this, then drop the old key."""

    async def rotate(catalog: Any) -> int:
        from parley.config.stored import reseal
        from parley.store.model_groups import reseal_all

        changed = await reseal_all(catalog.db, lambda doc: reseal(doc, catalog.box))
        await catalog.announce()
        return changed

    changed = _run(_with_catalog(None, rotate))
    console.print(f"re-encrypted {changed} stored documents with the first key", highlight=False)
