"""The main job: a demo lab that runs real tests, with the web UI, the API, admin and Flower.

Starts the control worker, beat, two local test machines (worker processes with install folders of their
own), the web server and Flower; submits the demo product's test suite as a task, shows its progress and
prints the report. Without --once it then keeps everything running until Ctrl-C.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count

from catalog.models import Product, TestTool
from devtools.demo import NODES, demo_lab_seed
from execution import services as execution_services
from execution.models import Case, Task
from nodes.models import Node
from nodes.services import node_worker_settings
from reporting.models import Report
from worker import manifest as worker_manifest

DEMO = Path(__file__).resolve().parent.parent.parent / "demo"  # devtools/demo
BAR_WIDTH = 30


class Command(BaseCommand):
    help = "Run TestHub with a demo lab: two local test machines, a demo task, its report; then keep serving."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="exit after the demo task's report")
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8000)))
        parser.add_argument("--flower-port", type=int, default=int(os.environ.get("FLOWER_PORT", 5555)))

    def handle(self, *args, once, port, flower_port, **options):
        self.root = settings.DATA_DIR / "demo"
        self.processes: list[subprocess.Popen] = []
        # Stopped by a signal (bin/run killed, a service manager) as by Ctrl-C: its processes stop with it.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
        try:
            self._run(once=once, port=port, flower_port=flower_port)
        finally:
            self._stop()

    def _start(self, argv: list[str], name: str, env: dict | None = None) -> subprocess.Popen:
        logs = self.root / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        path = logs / f"{name}.log"
        if path.exists():  # each run starts its logs afresh; the previous run's are kept once, as <name>.log.1
            path.replace(logs / f"{name}.log.1")
        log = path.open("wb")
        process = subprocess.Popen(
            argv, cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.processes.append(process)
        return process

    def _stop(self):
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    def _install(self, node: str) -> None:
        """Put the demo product and a pytest launcher in the node's own folders and write its manifest."""
        home = self.root / node
        product_path, tool_path = home / "products" / "demo-calculator-1.0", home / "tools" / "pytest-8"
        shutil.rmtree(product_path, ignore_errors=True)
        shutil.copytree(DEMO / "calculator", product_path)
        tool_path.mkdir(parents=True, exist_ok=True)
        launcher = tool_path / "pytest"
        launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m pytest "$@"\n')
        launcher.chmod(0o755)
        worker_manifest.write(
            home / "manifest.json",
            [
                worker_manifest.entry(
                    product="demo-calculator", version="1.0", path=product_path, tools=[("pytest", "8", tool_path)]
                )
            ],
        )

    def _run(self, *, once: bool, port: int, flower_port: int):
        logins = demo_lab_seed(install_root=str(self.root))
        self.root.mkdir(parents=True, exist_ok=True)
        # The demo machines' folders are a root of their own: their pytest must not take TestHub's pyproject.toml
        # (in the folders above) for its configuration, as a real machine's would not.
        (self.root / "pytest.ini").write_text("[pytest]\n")
        for node in NODES:
            self._install(node)
        self._processes_start(port=port, flower_port=flower_port, flower_password=logins["admin"])
        self._machines_wait()
        task = self._demo_task_submit()
        self._progress(task)
        self._outcome_show(task, logins=logins, port=port, flower_port=flower_port)
        if not once:
            self._keep_running()

    def _processes_start(self, *, port: int, flower_port: int, flower_password: str) -> None:
        """The control worker, beat, a worker per demo machine, the web server and Flower."""
        python = sys.executable
        self._start([python, "-m", "celery", "-A", "testhub", "worker", "-Q", "control", "-n", "control@demo",
                     "--concurrency", "2", "--loglevel", "INFO"], "control")  # fmt: skip
        self._start([python, "-m", "celery", "-A", "testhub", "beat", "--loglevel", "INFO"], "beat")
        # A test machine knows nothing of Django; its worker's settings come through its environment, as on a
        # deployed machine (its key and broker password never on a command line).
        machine_env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
        for node in Node.objects.filter(name__in=NODES):
            home = self.root / node.name
            worker_env = {**machine_env, **node_worker_settings(node=node, broker_url=settings.REDIS_URL)}
            self._start([python, "-m", "worker", "--manifest", str(home / "manifest.json"),
                         "--workdir", str(home / "work")], node.name, worker_env)  # fmt: skip
        self._start([python, "-m", "gunicorn", "testhub.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "2"], "web")
        # The password through the environment: on the command line, `ps` would show it to everyone.
        flower_env = {**os.environ, "FLOWER_BASIC_AUTH": f"admin:{flower_password}"}
        self._start([python, "-m", "testhub.flower", f"--port={flower_port}", "--address=127.0.0.1"],
                    "flower", flower_env)  # fmt: skip

    def _machines_wait(self) -> None:
        self.stdout.write("Waiting for the two demo machines to report in...")
        deadline = time.monotonic() + 60
        while Node.objects.online().filter(name__in=NODES).count() < len(NODES):
            if time.monotonic() > deadline:
                raise CommandError(f"The demo workers did not come online; see {self.root / 'logs'}.")
            time.sleep(0.5)

    def _demo_task_submit(self) -> Task:
        return execution_services.task_submit(
            user=User.objects.get(username="tester"),
            name="demo: calculator test suite",
            product=Product.objects.get(name="demo-calculator", version="1.0"),
            tool=TestTool.objects.get(name="pytest", version="8"),
            case_names=[f"tests/test_calc.py::{name}" for name in _demo_cases()],
            priority=5,
        )

    def _outcome_show(self, task: Task, *, logins: dict[str, str], port: int, flower_port: int) -> None:
        out = self.stdout.write
        report = Report.objects.get(task=task)
        rate = f"{report.success_rate}%" if report.success_rate is not None else "n/a"
        out(self.style.SUCCESS(f"\nTask #{task.pk}: {report.passed} passed, {report.failed} failed, "
                               f"{report.errors} errors; success rate {rate}"))  # fmt: skip
        out(f"Report: {report.file.path}")
        out(f"Web front end: http://127.0.0.1:{port}/   API docs: http://127.0.0.1:{port}/api/docs/   admin: /admin/")
        out(f"Flower: http://127.0.0.1:{flower_port}/ (admin / the admin password)")
        for username, password in logins.items():
            out(f"  login: {username} / {password}")

    def _keep_running(self) -> None:
        self.stdout.write("TestHub keeps running; Ctrl-C stops it.")
        try:
            while all(process.poll() is None for process in self.processes):
                time.sleep(1)
        except KeyboardInterrupt:
            self.stdout.write("\nStopping.")

    def _progress(self, task: Task) -> None:
        deadline, shown = time.monotonic() + 300, None
        while True:
            counts = dict(Case.objects.filter(task=task).order_by().values_list("status").annotate(n=Count("pk")))
            done = sum(counts.get(status, 0) for status in Case.FINAL_STATUSES)
            total = sum(counts.values())
            filled = BAR_WIDTH * done // max(total, 1)
            line = (
                f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total} cases  "
                f"passed {counts.get('passed', 0)}  failed {counts.get('failed', 0)}  error {counts.get('error', 0)}"
            )
            if line != shown:
                self.stdout.write(line, ending="")
                self.stdout.flush()
                shown = line
            if Report.objects.filter(task=task, status=Report.Status.READY).exists():
                return
            if time.monotonic() > deadline:
                raise CommandError(f"The demo task did not finish in time; see {self.root / 'logs'}.")
            time.sleep(0.5)


def _demo_cases() -> list[str]:
    source = (DEMO / "calculator" / "tests" / "test_calc.py").read_text()
    return [line.split("(")[0][4:] for line in source.splitlines() if line.startswith("def test_")]
