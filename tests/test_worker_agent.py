"""The worker agent's own parts: argument building, running, the manifest, queue names, a case that cannot start."""

import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from worker import manifest, runner
from worker.protocol import capability_queue, message_priority, slug


def test_a_case_name_with_shell_syntax_stays_one_argument():
    argv = runner.build_argv("{tool_path}/run --case {case}", tool_path="/opt/t", case="a b; rm -rf /")
    assert argv == ["/opt/t/run", "--case", "a b; rm -rf /"]


def test_an_exit_code_of_zero_passes_and_anything_else_fails(tmp_path):
    assert runner.run(["true"], workdir=tmp_path / "a", timeout=5).status == "passed"
    failed = runner.run(["sh", "-c", "echo broken >&2; exit 3"], workdir=tmp_path / "b", timeout=5)
    assert (failed.status, failed.exit_code) == ("failed", 3)
    assert "broken" in failed.log


def test_a_timeout_is_an_error_and_kills_the_whole_process_tree(tmp_path):
    pid_file = tmp_path / "child.pid"
    started = time.monotonic()
    outcome = runner.run(["sh", "-c", f"sleep 60 & echo $! > {pid_file}; wait"], workdir=tmp_path / "w", timeout=1)
    assert outcome.status == "error" and "timed out" in outcome.log
    assert time.monotonic() - started < 10
    child = int(pid_file.read_text())
    time.sleep(0.2)
    assert not _running(child)


def _running(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting for its new parent to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def test_a_stop_request_kills_the_case_and_reports_it_cancelled(tmp_path):
    outcome = runner.run(["sleep", "60"], workdir=tmp_path / "w", timeout=60, should_stop=lambda: True)
    assert outcome.status == "cancelled"


def test_each_case_starts_in_an_empty_folder(tmp_path):
    workdir = tmp_path / "slot-1"
    runner.run(["sh", "-c", "touch left-behind; mkdir -p sub/dir"], workdir=workdir, timeout=5)
    outcome = runner.run(["sh", "-c", "pwd; ls -A"], workdir=workdir, timeout=5)
    assert outcome.log.split() == [str(workdir)]


def test_a_long_log_keeps_its_last_bytes(tmp_path):
    outcome = runner.run(["sh", "-c", "seq 1 100000"], workdir=tmp_path / "w", timeout=10, log_limit=1000)
    assert outcome.log.startswith("[...") and outcome.log.rstrip().endswith("100000")
    assert len(outcome.log) < 1200


def test_a_missing_executable_is_an_infrastructure_error(tmp_path):
    with pytest.raises(runner.CommandNotFound):
        runner.run([str(tmp_path / "nope")], workdir=tmp_path / "w", timeout=5)


def _manifest(tmp_path, product_path, tool_path):
    path = tmp_path / "manifest.json"
    manifest.write(
        path, [manifest.entry(product="calc", version="1.0", path=product_path, tools=[("pytest", "8", tool_path)])]
    )
    return path


def test_the_manifest_resolves_install_paths(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "t").mkdir()
    path = _manifest(tmp_path, tmp_path / "p", tmp_path / "t")
    paths = manifest.resolve(path, product="calc", product_version="1.0", tool="pytest", tool_version="8")
    assert paths.product_path == str(tmp_path / "p")


def test_an_install_missing_on_disk_is_an_infrastructure_error(tmp_path):
    (tmp_path / "p").mkdir()
    path = _manifest(tmp_path, tmp_path / "p", tmp_path / "gone")
    with pytest.raises(manifest.MissingInstall, match="not on this machine"):
        manifest.resolve(path, product="calc", product_version="1.0", tool="pytest", tool_version="8")


def test_a_product_not_in_the_manifest_is_an_infrastructure_error(tmp_path):
    with pytest.raises(manifest.MissingInstall, match="not installed here"):
        manifest.resolve(tmp_path / "none.json", product="x", product_version="1", tool="y", tool_version="1")


def test_queue_names_are_readable_and_free_of_control_characters():
    queue = capability_queue(product_slug=slug("Calc Pro-2.1 beta"), tool_slug=slug("PyTest-8.4"))
    assert queue == "cap.calc-pro-2.1-beta.pytest-8.4"
    assert all(32 < ord(char) < 127 for char in queue)


def test_a_higher_task_priority_is_a_message_priority_redis_serves_first():
    assert message_priority(9) < message_priority(0)


def test_a_case_that_cannot_even_be_started_ends_as_an_error_result_not_an_exception(tmp_path, settings):
    import redis

    from worker.app import create_app, run_case
    from worker.protocol import EVENTS_KEY, event_signature

    (tmp_path / "p").mkdir()
    (tmp_path / "t").mkdir()
    path = _manifest(tmp_path, tmp_path / "p", tmp_path / "t")
    app = create_app(node="n", node_key="k", broker_url=settings.REDIS_URL, manifest_path=path, workdir=tmp_path / "w")
    events = redis.Redis.from_url(settings.REDIS_URL)
    events.delete(EVENTS_KEY)
    task = SimpleNamespace(app=app, request=SimpleNamespace(retries=0, id="x", hostname="testhub@n"))
    job = {
        "case_id": 1, "task_id": 1, "case_name": "c", "product": "calc", "product_version": "1.0",
        "tool": "pytest", "tool_version": "8", "command": "{tool_path}/run {case} {nope}", "timeout": 5,
    }  # fmt: skip
    assert run_case(task, job) == {"case": 1, "status": "error"}
    node, signature, payload = events.lpop(EVENTS_KEY).split(b"\n", 2)
    finished = json.loads(payload)
    assert node == b"n" and signature.decode() == event_signature("k", payload)
    assert finished["status"] == "error" and "KeyError" in finished["log"]


def test_nul_bytes_a_tool_prints_reach_the_log_as_replacement_characters(tmp_path):
    outcome = runner.run(["printf", "a\\000b"], workdir=tmp_path / "w", timeout=5)
    assert outcome.log == "a\ufffdb"


def test_a_failing_stop_check_still_kills_the_cases_process_tree(tmp_path):
    pid_file = tmp_path / "child.pid"

    def broker_gone():
        raise ConnectionError("Redis is away")

    with pytest.raises(ConnectionError):
        runner.run(
            ["sh", "-c", f"sleep 60 & echo $! > {pid_file}; wait"],
            workdir=tmp_path / "w",
            timeout=60,
            should_stop=broker_gone,
        )
    time.sleep(0.2)
    assert not _running(int(pid_file.read_text()))


def test_cancellations_read_while_the_broker_is_away_keep_the_last_known_set():
    import redis

    from worker.app import CancelledTasks

    class Unreachable:
        def zrange(self, *args):
            raise redis.ConnectionError("Error 111 connecting")

    cancelled = CancelledTasks()
    cancelled.ids = frozenset({7})
    app = SimpleNamespace(backend=SimpleNamespace(client=Unreachable()))
    assert cancelled.contains(app, 7) is True
    assert cancelled.contains(app, 8) is False


def test_a_case_runs_with_a_clean_environment_without_the_workers_settings(tmp_path):
    worker_env = {
        **{"PATH": "/usr/bin:/bin", "HOME": "/home/lab", "LC_ALL": "C.UTF-8", "JAVA_HOME": "/opt/jdk"},
        **{"TESTHUB_BROKER_URL": "redis://:secret@control:6379/0", "TESTHUB_NODE_KEY": "k", "REDIS_URL": "r"},
        **{"CELERY_BROKER_URL": "redis://y", "DJANGO_SETTINGS_MODULE": "x"},
    }
    env = runner.case_environment(("JAVA_HOME", "TESTHUB_NODE_KEY", "REDIS_URL"), source=worker_env)
    assert env == {"PATH": "/usr/bin:/bin", "HOME": "/home/lab", "LC_ALL": "C.UTF-8", "JAVA_HOME": "/opt/jdk"}
    outcome = runner.run(["env"], workdir=tmp_path / "w", timeout=5, env=env)
    assert "TESTHUB" not in outcome.log and "JAVA_HOME=/opt/jdk" in outcome.log
