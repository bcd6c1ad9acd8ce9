"""The API under load: gunicorn serving a lab's history, wrk asking, figures per endpoint.

wrk (a C load generator, from Debian's package) keeps `connections` requests in flight for `seconds` against
one URL and reports requests per second and the latency distribution; this module starts the web server,
runs wrk per endpoint and reads its figures.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from messaging.revisions import revisions_bump

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


@dataclass(frozen=True)
class Figures:
    label: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int

    def meets(self, *, rate: float, p99_ms: float) -> bool:
        return self.requests_per_second >= rate and self.p99_ms < p99_ms and self.errors == 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class WebServer:
    """gunicorn on loopback with the given workers and threads, its log in `log_path`."""

    port: int
    workers: int
    threads: int
    log_path: Path
    process: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def settings(self) -> str:
        worker_class = "gthread" if self.threads > 1 else "sync"
        return f"gunicorn, {self.workers} workers ({worker_class}, {self.threads} thread(s) each)"

    def start(self, env: dict[str, str]) -> None:
        argv = [sys.executable, "-m", "gunicorn", "testhub.wsgi", "--bind", f"127.0.0.1:{self.port}",
                "--workers", str(self.workers), "--threads", str(self.threads), "--log-level", "warning"]  # fmt: skip
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.base}/api/schema/", timeout=2)  # noqa: S310 (loopback)
                return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"gunicorn did not answer on {self.base}; see {self.log_path}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)


def wrk(url: str, *, label: str, token: str, connections: int, seconds: int) -> Figures:
    """Load `url` with wrk and read its figures (requests/s, p50, p99, non-2xx answers and socket errors)."""
    if not shutil.which("wrk"):
        raise RuntimeError("wrk is not installed: apt-get install wrk (bin/bench installs it)")
    run = subprocess.run(
        ["wrk", "--threads", "2", "--connections", str(connections), "--duration", f"{seconds}s", "--latency",
         "--timeout", "5s", "--header", f"Authorization: Token {token}", url],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
    )  # fmt: skip
    return parse_wrk(run.stdout, label=label)


def parse_wrk(output: str, *, label: str) -> Figures:
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    errors = sum(int(count) for count in re.findall(r"Non-2xx or 3xx responses:\s+(\d+)", output))
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if socket_errors:
        errors += sum(int(count) for count in socket_errors.groups())
    return Figures(
        label=label,
        requests_per_second=rate,
        p50_ms=_latency(output, "50%"),
        p99_ms=_latency(output, "99%"),
        errors=errors,
    )


def _latency(output: str, percentile: str) -> float:
    value, unit = re.search(rf"^\s+{percentile}\s+([\d.]+)(us|ms|s|m)\s*$", output, re.MULTILINE).groups()
    return float(value) * _UNITS[unit]


@contextmanager
def repeating(action: Callable[[], None], *, every_seconds: float) -> Iterator[None]:
    """Run `action` on a thread of its own every `every_seconds` until the block ends."""
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(every_seconds):
            action()

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    try:
        yield
    finally:
        stop.set()
        runner.join()


def revisions_moving(*, per_second: float, topics: tuple[str, ...]):
    """Move `topics`' revisions `per_second` times a second until the block ends, as a busy lab's writes do."""
    return repeating(lambda: revisions_bump(*topics), every_seconds=1 / per_second)
