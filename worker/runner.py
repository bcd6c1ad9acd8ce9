"""Run one case's command: an argument list (never a shell), its own folder, a timeout, a bounded log."""

import contextlib
import functools
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from worker.protocol import clean_text

LOG_LIMIT_BYTES = 64 * 1024
# What a case's process inherits from the worker's environment: these names (and LC_*), plus the names a
# lab adds with --case-env. Nothing else: the worker's own settings (its broker URL and node key above all)
# must never reach test code.
CASE_ENVIRONMENT = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM")
_NEVER_PASSED = re.compile(r"^(TESTHUB_|CELERY|FLOWER|DJANGO_)|BROKER|REDIS", re.IGNORECASE)
_POLL_SECONDS = 0.2
# A case that ends sooner is reported once, when it ends: "running" for a moment is not worth a message.
ANNOUNCE_AFTER_SECONDS = 0.25


class CommandNotFound(Exception):
    """The tool's executable is not on this machine: an infrastructure error."""


@dataclass(frozen=True)
class Outcome:
    status: str  # passed, failed, error (timeout) or cancelled
    exit_code: int | None
    log: str


@functools.lru_cache(maxsize=64)
def _split(template: str) -> tuple[str, ...]:
    return tuple(shlex.split(template))


def build_argv(template: str, **values: str) -> list[str]:
    """Split the template first, then fill each argument: a value never becomes more than one argument."""
    return [argument.format(**values) for argument in _split(template)]


def case_environment(extra_names: tuple[str, ...] = (), source: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a case runs with: the allow-list and `extra_names`, never TestHub's or a broker's."""
    source = os.environ if source is None else source
    wanted = {*CASE_ENVIRONMENT, *extra_names}
    return {
        name: value
        for name, value in source.items()
        if (name in wanted or name.startswith("LC_")) and not _NEVER_PASSED.search(name)
    }


def _tail(path: Path, limit: int) -> str:
    size = path.stat().st_size
    with path.open("rb") as log_file:
        if size > limit:
            log_file.seek(size - limit)
        data = log_file.read()
    text = clean_text(data.decode("utf-8", errors="replace"))  # a tool may print anything, NUL bytes included
    if size > limit:
        return f"[... {size - limit} earlier bytes cut; the last {limit} bytes follow ...]\n" + text
    return text


def _wait(process: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait for the process to end, at most `timeout` seconds, waking the moment it does.

    Popen.wait(timeout) polls with growing sleeps, which costs a quick case milliseconds; a pidfd
    (Linux) wakes us at once. Elsewhere, fall back to Popen.wait.
    """
    if hasattr(os, "pidfd_open"):
        try:
            descriptor = os.pidfd_open(process.pid)
        except OSError:
            descriptor = None
        if descriptor is not None:
            try:
                select.select([descriptor], [], [], timeout)
            finally:
                os.close(descriptor)
            process.poll()
            return
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout)


def _empty(folder: Path) -> None:
    """Make `folder` exist and hold nothing (cheaper than a new folder per case)."""
    folder.mkdir(parents=True, exist_ok=True)
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)


def _kill_tree(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _watch(
    process: subprocess.Popen[bytes], *, timeout: float, should_stop: Callable[[], bool], on_running: Callable[[], None]
) -> str | None:
    """Wait for the process to end; kill its tree on timeout ("error") or on a stop request ("cancelled")."""
    deadline = time.monotonic() + timeout
    _wait(process, min(ANNOUNCE_AFTER_SECONDS, timeout))
    if process.returncode is None:
        on_running()
    while process.returncode is None:
        if time.monotonic() >= deadline:
            _kill_tree(process)
            return "error"
        if should_stop():
            _kill_tree(process)
            return "cancelled"
        _wait(process, _POLL_SECONDS)
    return None


def run(
    argv: list[str],
    *,
    workdir: Path,
    timeout: float,
    should_stop: Callable[[], bool] = lambda: False,
    on_running: Callable[[], None] = lambda: None,
    log_limit: int = LOG_LIMIT_BYTES,
    env: dict[str, str] | None = None,
) -> Outcome:
    """Run argv in `workdir`, emptied first, with `env` (case_environment() when None); kill the whole process
    group on timeout or stop.

    `workdir` belongs to one slot: each case starts in it empty, and what a case leaves there stays
    until the slot's next case (handy for a look after a failure, bounded to one case's files).
    on_running is called once if the command is still running after ANNOUNCE_AFTER_SECONDS.
    """
    _empty(workdir)
    log_path = workdir.parent / f"{workdir.name}.log"
    with log_path.open("wb") as log_file:
        try:
            process = subprocess.Popen(
                argv,
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so the whole tree can be killed
                env=case_environment() if env is None else env,
            )
        except (FileNotFoundError, PermissionError) as error:
            raise CommandNotFound(f"Cannot start {argv[0]!r}: {error.strerror}.") from None
        try:
            status = _watch(process, timeout=timeout, should_stop=should_stop, on_running=on_running)
        except BaseException:
            _kill_tree(process)  # whatever went wrong here, the tool's processes must not outlive the case
            raise
    log = _tail(log_path, log_limit)
    if status == "error":
        return Outcome("error", None, log + f"\n[TestHub: timed out after {timeout:g} s; process tree killed]\n")
    if status == "cancelled":
        return Outcome("cancelled", None, log + "\n[TestHub: cancelled; process tree killed]\n")
    return Outcome("passed" if process.returncode == 0 else "failed", process.returncode, log)
