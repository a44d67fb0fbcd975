"""The benchmarks' shared set-up: the processes they start, what ``/proc`` says of them, percentiles.

Every bench starts the same servers the same way: the fake OpenAI upstream, the floor
(``../shared/bench-floor/``, the bare pass-through on genledger's stack), ``genledger serve``
(of this checkout, or of another ``src/``) and, as an anchor, LiteLLM's proxy
(``bench/litellm_anchor.py``). Each runs as its own process in its own session, so a
terminal's Ctrl-C reaches only the bench, and :meth:`Children.stop_all` stops them whatever
happens. CPU is read from ``/proc/<pid>/stat`` (all threads, and child processes when asked),
memory from ``/proc/<pid>/status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import resource
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Final, TypeVar

ROOT: Final = Path(__file__).resolve().parent.parent
FLOOR: Final = ROOT.parent / "shared" / "bench-floor"
FLOOR_KEY: Final = "sk-pyfloor-test-1234"
FLOOR_MODEL: Final = "mock/gpt"  # the floor sends it upstream as "gpt-mock"
MODEL_SLUG: Final = "bench/model"
UPSTREAM_MODEL: Final = "fast"
EMBEDDING_SLUG: Final = "bench/embedding"
UPSTREAM_EMBEDDING_MODEL: Final = "embed"
START_TIMEOUT_S: Final = 60.0
STOP_TIMEOUT_S: Final = 10.0
CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")

T = TypeVar("T")


class BenchError(RuntimeError):
    """The benchmark could not run (a process did not start, a database is unreachable)."""


# ----------------------------------------------------------------------------------------------- /proc


def _ticks(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": field 3 is fields[0]
    return int(fields[11]) + int(fields[12])


def descendants(pid: int) -> list[int]:
    """``pid``'s live child processes, and theirs (from ``/proc/<pid>/task/*/children``)."""
    found: list[int] = []
    stack = [pid]
    while stack:
        parent = stack.pop()
        for task in Path(f"/proc/{parent}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                for child in task.read_text().split():
                    found.append(int(child))
                    stack.append(int(child))
    return found


def cpu_seconds(pid: int, *, tree: bool = False) -> float:
    """User + system CPU time of a process and all its threads (and, with ``tree``, of its live
    descendants: a server that forks workers), from ``/proc/<pid>/stat``."""
    pids = [pid, *descendants(pid)] if tree else [pid]
    total = 0
    for each in pids:
        with contextlib.suppress(OSError):
            total += _ticks(each)
    return total / CLOCK_TICKS


def status_kib(pid: int, name: str) -> int:
    """A ``/proc/<pid>/status`` figure in KiB (``VmRSS``, ``VmHWM``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise BenchError(f"no {name} in /proc/{pid}/status")


def rss_mib(pid: int, *, tree: bool = False) -> float:
    pids = [pid, *descendants(pid)] if tree else [pid]
    return round(sum(status_kib(each, "VmRSS") for each in pids) / 1024, 1)


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's open-file limit (children inherit it) to ``wanted``, or as far as the
    hard limit allows; the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def uptime() -> str:
    """``uptime``'s line (the host's load, written beside every figure)."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    return "unknown"


# ------------------------------------------------------------------------------------------- figures


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (``values`` need not be sorted; must not be empty)."""
    ordered = sorted(values)
    return ordered[max(math.ceil(pct / 100 * len(ordered)) - 1, 0)]


def ratio(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator`` to 3 places; None when the denominator is missing or zero."""
    if not denominator:
        return None
    return round(numerator / denominator, 3)


# -------------------------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Child:
    """A process the benchmark started, in its own session so a terminal's Ctrl-C reaches only us."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self, *, tree: bool = False) -> float:
        return cpu_seconds(self.pid, tree=tree)

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise BenchError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def signal(self, signum: int) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signum)

    def stop(self) -> None:
        if self.process.poll() is None:
            # The whole session: a server that forked workers (LiteLLM) takes them along.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


class Children:
    """Every child process; :meth:`stop_all` is idempotent and stops the newest first."""

    def __init__(self) -> None:
        self._children: list[Child] = []

    def spawn(
        self,
        name: str,
        argv: list[str],
        cwd: Path,
        log: Path,
        *,
        env: dict[str, str] | None = None,
        pipe_stdout: bool = False,
    ) -> Child:
        with log.open("wb") as log_file:
            process = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipe_stdout else log_file,
                stderr=log_file,
                start_new_session=True,
            )
        child = Child(name, process, log)
        self._children.append(child)
        return child

    def stop_all(self) -> None:
        while self._children:
            self._children.pop().stop()


@contextlib.contextmanager
def children_stopped() -> Iterator[Children]:
    """A :class:`Children` whose processes are stopped on the way out, whatever happens."""
    children = Children()
    try:
        yield children
    finally:
        children.stop_all()


def wait_healthy(child: Child, url: str, timeout: float = START_TIMEOUT_S) -> None:
    """Until ``GET url`` answers 200 (the process must stay alive meanwhile)."""
    deadline = time.monotonic() + timeout
    while True:
        child.check_alive()
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as response:
            if response.status == 200:
                return
        if time.monotonic() > deadline:
            raise BenchError(f"{child.name} did not answer {url} within {timeout:g}s:\n{child.log_tail()}")
        time.sleep(0.05)


def start_upstream(
    children: Children, workdir: Path, *options: str, name: str = "upstream"
) -> tuple[Child, str]:
    """A fake OpenAI upstream on a free port, and its base URL (``http://127.0.0.1:PORT/v1``).

    ``options`` go to its command line (e.g. ``--behavior status:500``).
    """
    argv = [sys.executable, "-m", "tests.fakes.openai_upstream", "--port", "0", *options]
    child = children.spawn(f"fake {name}", argv, ROOT, workdir / f"{name}.log", pipe_stdout=True)
    stdout = child.process.stdout
    assert stdout is not None
    ready, _, _ = select.select([stdout], [], [], START_TIMEOUT_S)
    line = stdout.readline().decode().strip() if ready else ""
    if not line.startswith("http://"):
        child.check_alive()
        raise BenchError(f"the fake upstream printed no URL within {START_TIMEOUT_S:g}s: {line!r}")
    return child, line


def set_behavior(upstream_base: str, behavior: dict[str, Any]) -> None:
    """A standing (``times`` unset) or queued behaviour on a fake, through its control API
    (e.g. ``{"behavior": "status", "status": 503, "model": "broken"}``)."""
    root = upstream_base.removesuffix("/v1")
    body = json.dumps({"times": None, **behavior}).encode()
    request = urllib.request.Request(
        root + "/_control/behavior", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.status != 200:
            raise BenchError(f"the fake refused {behavior}: HTTP {response.status}")


def start_floor(children: Children, workdir: Path, upstream_base: str) -> tuple[Child, str]:
    """The floor under uvicorn (uvloop, httptools) on a free port; its chat completions URL."""
    if not (FLOOR / "v1_app.py").exists():
        raise BenchError(f"no floor at {FLOOR}")
    port = free_port()
    env = {
        **os.environ,
        "GW_UPSTREAM": upstream_base + "/chat/completions",
        "GW_DB": str(workdir / "floor-ledger.db"),
    }
    argv = [
        sys.executable, "-m", "uvicorn", "v1_app:app", "--app-dir", str(FLOOR),
        "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", "httptools",
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    child = children.spawn("floor", argv, workdir, workdir / "floor.log", env=env)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(child, url + "/health")
    return child, url + "/v1/chat/completions"


# -------------------------------------------------------------------------------------------- genledger


def write_config(
    workdir: Path,
    database_url: str,
    upstream_base_url: str,
    *,
    provider_options: str = "",
    extra: str = "",
    name: str = "bench.toml",
) -> Path:
    """The gateway's config: provider ``fake`` at the upstream, the chat and embedding models.

    ``provider_options`` are TOML lines added to ``[providers.fake]`` (e.g.
    ``max_connections = 2100``); ``extra`` is appended (more providers, models, tables).
    """
    config = workdir / name
    config.write_text(
        f'database_url = "{database_url}"\n\n'
        "[providers.fake]\n"
        'kind = "openai"\n'
        f'base_url = "{upstream_base_url}"\n'
        'display_name = "Fake"\n'
        f"{provider_options}\n"
        f'[models."{MODEL_SLUG}"]\n'
        'provider = "fake"\n'
        f'upstream_model = "{UPSTREAM_MODEL}"\n'
        'prompt_price = "0.15"\n'
        'completion_price = "0.60"\n\n'
        f'[models."{EMBEDDING_SLUG}"]\n'
        'provider = "fake"\n'
        'kind = "embeddings"\n'
        f'upstream_model = "{UPSTREAM_EMBEDDING_MODEL}"\n'
        'prompt_price = "0.02"\n'
        'completion_price = "0"\n\n'
        f"{extra}"
    )
    return config


def genledger_env(src: Path | None) -> dict[str, str] | None:
    """The environment that runs genledger from ``src`` (another checkout's ``src/``), or None: ours."""
    if src is None:
        return None
    return {**os.environ, "PYTHONPATH": str(src.resolve())}


def _genledger_argv(src: Path | None) -> list[str]:
    script = Path(sys.executable).with_name("genledger")
    return [str(script)] if script.exists() and src is None else [sys.executable, "-m", "genledger"]


def create_key(workdir: Path, config: Path, src: Path | None = None) -> str:
    argv = [*_genledger_argv(src), "keys", "create", "--name", "bench", "--config", str(config)]
    done = subprocess.run(
        argv, cwd=workdir, env=genledger_env(src), capture_output=True, text=True, timeout=120
    )
    lines = done.stdout.split()
    if done.returncode != 0 or not lines:
        raise BenchError(f"genledger keys create failed ({done.returncode}): {done.stderr.strip()}")
    return lines[-1]


LAUNCHER: Final = Path(__file__).resolve().parent / "gateway_launcher.py"


def start_gateway(
    children: Children,
    workdir: Path,
    config: Path,
    *,
    src: Path | None = None,
    name: str = "gateway",
    env: dict[str, str] | None = None,
    args: Sequence[str] = (),
) -> tuple[Child, str]:
    """``genledger serve`` on a free port, once ``GET /health`` answers; and its URL.

    It runs through ``bench/gateway_launcher.py`` (the CLI as is, plus the bench-only
    switches in its ``env``: tracemalloc snapshots); ``args`` are more options of ``serve``.
    """
    port = free_port()
    argv = [
        sys.executable, str(LAUNCHER), "serve", "--config", str(config), "--port", str(port),
        "--log-level", "warning", *args,
    ]  # fmt: skip
    environment = {**(genledger_env(src) or os.environ), **(env or {})}
    child = children.spawn(name, argv, workdir, workdir / f"{name}.log", env=environment)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(child, url + "/health")
    return child, url


# ----------------------------------------------------------------------------------------------- a run


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """``main`` to completion on uvloop (asyncio's loop when uvloop is missing)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt meanwhile, so a bench stops its processes on either."""
    previous: Any = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def revision() -> str:
    """The checkout's commit, ``+dirty`` when ``src/`` has changes (other engineers edit it live)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def run_bench(bench: Callable[[Children, Path], Coroutine[Any, Any, T]], prefix: str) -> T:
    """``bench(children, workdir)`` on uvloop in a fresh temporary directory, its processes
    stopped whatever happens (SIGTERM too); exits 130 on Ctrl-C or SIGTERM, 1 on a
    :class:`BenchError` (one line on stderr)."""
    children = Children()
    try:
        with terminate_as_interrupt(), tempfile.TemporaryDirectory(prefix=prefix) as tmp:
            try:
                return run_loop(bench(children, Path(tmp)))
            finally:
                children.stop_all()
    except KeyboardInterrupt:
        print("interrupted: child processes stopped", file=sys.stderr)
        raise SystemExit(130) from None
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


__all__ = [
    "FLOOR",
    "FLOOR_KEY",
    "FLOOR_MODEL",
    "ROOT",
    "BenchError",
    "Child",
    "Children",
    "children_stopped",
    "cpu_seconds",
    "create_key",
    "descendants",
    "free_port",
    "percentile",
    "raise_fd_limit",
    "ratio",
    "revision",
    "rss_mib",
    "run_bench",
    "run_loop",
    "set_behavior",
    "start_floor",
    "start_gateway",
    "start_upstream",
    "status_kib",
    "terminate_as_interrupt",
    "uptime",
    "wait_healthy",
    "write_config",
]
