"""The ``parley`` command."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from parley import __version__
from parley.config import Settings, load_models
from parley.errors import ConfigError

app = typer.Typer(
    help="Parley: an OpenAI-compatible LLM gateway.", no_args_is_help=True, add_completion=False
)
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Model groups YAML (Parley or LiteLLM format).",
        envvar="PARLEY_CONFIG",
        exists=False,
        dir_okay=False,
    ),
]


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address [default: 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="Port [default: 4000]")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes [default: 1]")] = None,
    config: ConfigOption = None,
) -> None:
    """Start the gateway."""
    import uvicorn

    from parley.app import create_app
    from parley.observability.logging import configure_logging

    overrides = {
        k: v
        for k, v in {"host": host, "port": port, "workers": workers, "config": config}.items()
        if v is not None
    }
    settings = Settings(**overrides)  # type: ignore[arg-type]  # pydantic validates the values
    configure_logging(settings.log_level, settings.log_format)
    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop" if _has("uvloop") else "asyncio",
        "http": "httptools" if _has("httptools") else "h11",
        "timeout_graceful_shutdown": settings.drain_timeout_seconds,
        "log_level": "warning",
        "access_log": False,
        "server_header": False,
    }
    if settings.workers > 1:
        # Workers are separate processes that build their own app from PARLEY_* variables.
        for key, value in overrides.items():
            os.environ[f"PARLEY_{key.upper()}"] = str(value)
        _check(settings.config)
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
def models(config: ConfigOption = None) -> None:
    """List the configured model groups and their deployments."""
    try:
        loaded = load_models(config)
    except ConfigError as exc:
        _fail(exc)
        return
    if not loaded.groups:
        console.print("No model groups configured (source: environment).")
        return
    columns = ("model group", "provider", "upstream model", "api base", "deployment")
    rows = [
        (g.name, d.provider, d.model, d.api_base, d.label)
        for g in loaded.groups
        for d in g.deployments
    ]
    if console.is_terminal:
        table = Table(*columns)
        for row in rows:
            table.add_row(*row)
        console.print(table)
    else:  # piped: whole values, tab-separated, for scripts
        for line in [columns, *rows]:
            console.print("\t".join(line), highlight=False, markup=False)
    for note in loaded.notes:
        console.print(f"note: {note}", highlight=False, markup=False)


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


@app.command()
def version() -> None:
    """Print Parley's version."""
    console.print(__version__, highlight=False)


def main() -> None:
    app()
