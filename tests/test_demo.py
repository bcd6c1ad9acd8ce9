"""README's first command, end to end: the embedded default (SQLite, a Redis of its own), real workers."""

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.lab import PROJECT
from tests.servers import free_port

pytestmark = pytest.mark.slow


def run_demo(data_dir: Path) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    env.update(TESTHUB_DATA_DIR=str(data_dir), PORT=str(free_port()), FLOWER_PORT=str(free_port()))
    result = subprocess.run(["bin/run", "--once"], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def first_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """The demo run once, on a fresh data folder (the second test runs it again on what this one left)."""
    data_dir = tmp_path_factory.mktemp("demo")
    return data_dir, run_demo(data_dir)


def test_the_demo_runs_a_real_task_on_the_embedded_default_and_prints_its_report(first_run):
    tmp_path, result = first_run
    assert "7 passed, 1 failed, 0 errors; success rate 87.50%" in result.stdout
    report = next(line for line in result.stdout.splitlines() if line.startswith("Report: ")).removeprefix("Report: ")
    assert Path(report).is_file() and Path(report).is_relative_to(tmp_path)
    assert (tmp_path / "testhub.sqlite3").is_file()
    assert "login: admin / " in result.stdout
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True).stdout.split()
    assert leftovers == []  # every process of the demo, its Redis included, stopped with it


def test_the_demo_runs_again_on_the_data_an_earlier_run_left(first_run):
    tmp_path, _ = first_run
    with sqlite3.connect(tmp_path / "testhub.sqlite3") as database:  # as if it ran yesterday: nodes "online", silent
        database.execute("UPDATE nodes_node SET last_heartbeat = '2026-01-01 00:00:00'")
    assert "7 passed, 1 failed" in run_demo(tmp_path).stdout
    # Each run starts its logs afresh, keeping the previous run's once.
    logs = tmp_path / "demo" / "logs"
    assert (logs / "control.log.1").is_file()
    assert (logs / "control.log").stat().st_size < (logs / "control.log.1").stat().st_size * 3


def test_the_demo_machines_run_their_cases_in_a_root_of_their_own(first_run):
    tmp_path, _ = first_run
    with sqlite3.connect(tmp_path / "testhub.sqlite3") as database:
        logs = [log for (log,) in database.execute("SELECT log FROM execution_case")]
    assert logs and all("warning" not in log.lower() for log in logs)
    # Their pytest stops looking for its configuration there, whatever folders hold the data (./data by default
    # sits in the project, beside TestHub's own pyproject.toml).
    assert (tmp_path / "demo" / "pytest.ini").read_text().startswith("[pytest]")
