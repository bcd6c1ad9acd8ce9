"""Measure TestHub end to end on this machine, against a bare Celery chord in the same run.

    bin/bench --cases 10000 --workers 2

Starts a control worker and N node workers (real processes), submits no-op cases through the API,
and prints: submit latency, time to the first case running, end-to-end cases per second, the same
workload as a bare chord with the ratio, the control worker's peak memory, the time and memory
to build a report of --report-cases cases, and how long a node whose worker is killed takes to show
offline (and online again once the worker is back).
"""

import multiprocessing
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from catalog.models import Product, ProductTool, TestTool
from devtools.bench.fairness import AGING_SECONDS, fairness_measure, sleeper_capability, sleeper_install
from devtools.scratch import REDIS_CLAIM_KEY, scratch_database_require, scratch_redis_require
from execution.models import Case, Task
from nodes import services as node_services
from nodes.models import Node
from reporting.models import Report
from worker import manifest as worker_manifest

PROJECT = Path(settings.BASE_DIR)


def _wait(condition, timeout, what, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise CommandError(f"timed out waiting for {what}")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    return [
        int(child) for child in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    ]


def _cpu_split(processes) -> str:
    """CPU seconds of each process's main process and of its pool processes."""
    main = sum(_cpu_seconds(process.pid) for process in processes)
    pool = sum(_cpu_seconds(child) for process in processes for child in _children(process.pid))
    return f"{main:.1f} s main + {pool:.1f} s pool"


def _peak_rss_mb(pid: int) -> float:
    """Peak resident memory of a process and its children (the prefork pool), in MB."""
    pids = [pid, *_children(pid)]
    total = 0
    for each in pids:
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1])
    return total / 1024


def _build_report_in_child(task_id: int, queue) -> None:
    from django.db import connections

    from reporting.services import report_build

    connections.close_all()
    started = time.perf_counter()
    report = report_build(task_id=task_id)
    if report is None or report.status != report.Status.READY:
        raise CommandError(f"task {task_id}: the measured build did not build its report")
    queue.put((time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


class Command(BaseCommand):
    help = "Benchmark TestHub end to end against a bare Celery chord (see bin/bench)."

    def add_arguments(self, parser):
        parser.add_argument("--cases", type=int, default=10_000)
        parser.add_argument("--workers", type=int, default=2)
        parser.add_argument("--report-cases", type=int, default=100_000)
        parser.add_argument(
            "--fairness", type=int, default=0, metavar="SECONDS",
            help="also measure many users on one lab, two users sharing it for SECONDS (devtools/bench/fairness.py)",
        )  # fmt: skip

    def handle(self, *args, cases, workers, report_cases, fairness, **options):
        scratch_database_require()  # it deletes every task and flushes its Redis db
        self.redis = redis.Redis.from_url(settings.REDIS_URL)
        scratch_redis_require(self.redis)
        self.root = Path(tempfile.mkdtemp(prefix="testhub-bench-"))
        self.processes = []
        try:
            self._run(cases, workers, report_cases, fairness)
        finally:
            self._lab_stop()
            shutil.rmtree(self.root, ignore_errors=True)

    def _start(self, argv, name, env=None):
        log = (self.root / f"{name}.log").open("wb")
        process = subprocess.Popen(
            argv, cwd=PROJECT, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.processes.append(process)
        return process

    def _start_node_worker(self, node, name):
        home = self.root / node.name
        argv = [sys.executable, "-m", "worker", "--manifest", str(home / "manifest.json"),
                "--workdir", str(home / "work"), "--loglevel", "WARNING"]  # fmt: skip
        return self._start(argv, name, node_services.node_worker_settings(node=node, broker_url=settings.REDIS_URL))

    def _lab(self, workers):
        """The bench's no-op tool and the fairness run's sleeper on `workers` nodes; returns (no-op product,
        no-op tool, sleeper product, sleeper tool, nodes)."""
        Task.objects.all().delete()
        Node.objects.filter(name__startswith="bench-").delete()
        product, _ = Product.objects.get_or_create(name="bench", version="1")
        tool, _ = TestTool.objects.get_or_create(
            name="noop", version="1", defaults={"command_template": "{tool_path}/noop {case}"}
        )
        ProductTool.objects.get_or_create(product=product, tool=tool)
        sleeper_product, sleeper_tool = sleeper_capability()
        nodes = []
        for number in range(1, workers + 1):
            home = self.root / f"bench-{number}"
            (home / "product").mkdir(parents=True)
            (home / "tool").mkdir()
            (home / "tool" / "noop").symlink_to(shutil.which("true"))
            node = node_services.node_create(
                name=f"bench-{number}", ip="127.0.0.1", username="bench", install_root=str(home), managed=False
            )
            sleeper, sleeper_entry = sleeper_install(home, product=sleeper_product, tool=sleeper_tool)
            node_services.node_installs_set(
                node=node,
                installs=[
                    node_services.ProductInstall(
                        product=product,
                        install_path=str(home / "product"),
                        tools=[node_services.ToolInstall(tool=tool, install_path=str(home / "tool"))],
                    ),
                    sleeper,
                ],
            )
            worker_manifest.write(
                home / "manifest.json",
                [
                    worker_manifest.entry(
                        product="bench", version="1", path=home / "product", tools=[("noop", "1", home / "tool")]
                    ),
                    sleeper_entry,
                ],
            )
            nodes.append(node)
        return product, tool, sleeper_product, sleeper_tool, nodes

    def _run(self, cases, workers, report_cases, fairness_seconds):
        self._redis_empty()
        product, tool, sleeper_product, sleeper_tool, nodes = self._lab(workers)
        control = self._lab_start(nodes)
        submit = self._submitter(product, tool)
        measured = self._testhub_measure(cases, submit)
        fair = None
        if fairness_seconds:
            fair = fairness_measure(product=sleeper_product, tool=sleeper_tool, share_seconds=fairness_seconds)
        control_peak = _peak_rss_mb(control.pid)
        testhub_cpu = {"control worker": _cpu_split([control]), "node workers": _cpu_split(self.node_workers)}
        bare_seconds, bare_cpu = self._bare_chord(cases, workers, command=str(self.root / "bench-1" / "tool" / "noop"))
        offline_seconds, online_seconds = self._liveness(nodes[-1])
        self._lab_stop()  # or its reconciler would build the next report before the measured build does
        report_seconds, report_mb = self._report_build(report_cases, product, tool, nodes[0])
        testhub_seconds = measured["seconds"]
        self._print(
            [
                ("cases", cases, ""),
                ("workers (1 slot each)", workers, ""),
                ("submit latency, 10 cases", f"{measured['small_latency'] * 1000:.0f} ms", ""),
                (f"submit latency, {cases} cases", f"{measured['latency'] * 1000:.0f} ms", "target <= 300 ms"),
                ("submit -> first case running", f"{measured['first_start'] * 1000:.0f} ms", "target <= 1000 ms"),
                ("TestHub end to end", f"{testhub_seconds:.2f} s, {cases / testhub_seconds:.0f} cases/s",
                 f"{measured['passed']} cases recorded passed in PostgreSQL"),
                ("bare Celery chord", f"{bare_seconds:.2f} s, {cases / bare_seconds:.0f} cases/s",
                 "same broker/workers"),
                ("throughput ratio TestHub / bare", f"{bare_seconds / testhub_seconds:.2f}", "target >= 0.80"),
                ("CPU, TestHub control worker", testhub_cpu["control worker"], ""),
                ("CPU, TestHub node workers", testhub_cpu["node workers"], ""),
                ("CPU, bare workers", bare_cpu, ""),
                ("control worker peak memory", f"{control_peak:.0f} MB", "main process + pool"),
                (f"report build, {report_cases} cases", f"{report_seconds:.2f} s, peak {report_mb:.0f} MB",
                 "target <= 10 s, <= 300 MB"),
                ("worker killed -> node offline", f"{offline_seconds:.1f} s", "target <= 15 s"),
                ("worker back -> node online", f"{online_seconds:.1f} s", "first heartbeat"),
                *(fair.rows(slots=workers) if fair else []),
            ]
        )  # fmt: skip

    def _redis_empty(self):
        """Flush the benchmark's Redis db, keeping the claim bin/bench put there (checked before anything)."""
        claim = self.redis.get(REDIS_CLAIM_KEY)
        self.redis.flushdb()
        self.redis.set(REDIS_CLAIM_KEY, claim, ex=7200)

    def _lab_start(self, nodes):
        """The control worker, beat (the liveness sweep) and a worker per node; returns once all are online."""
        control = self._start(
            [sys.executable, "-m", "celery", "-A", "testhub", "worker", "-Q", "control", "-n", "control@bench",
             "--concurrency", "2", "--without-mingle", "--without-gossip", "--loglevel", "WARNING"],
            "control",
            env={"TESTHUB_PRIORITY_AGING_SECONDS": str(AGING_SECONDS)},
        )  # fmt: skip
        self._start([sys.executable, "-m", "celery", "-A", "testhub", "beat", "--loglevel", "WARNING"], "beat")
        self.node_workers = [self._start_node_worker(node, f"worker-{node.name}") for node in nodes]
        online = Node.objects.filter(name__startswith="bench-", status="online")
        _wait(lambda: online.count() == len(nodes), 60, "nodes")
        time.sleep(1)
        return control

    def _submitter(self, product, tool):
        """A function that submits a task of the given case names through the API, returning (task, seconds)."""
        user, _ = User.objects.get_or_create(username="bench", defaults={"is_superuser": True})
        api = APIClient(HTTP_HOST="localhost")
        api.force_authenticate(user)

        def submit(names):
            body = {"name": "bench", "product": product.pk, "tool": tool.pk, "cases": names}
            started = time.perf_counter()
            response = api.post("/api/tasks/", body, format="json")
            elapsed = time.perf_counter() - started
            if response.status_code != 201:
                raise CommandError(f"submit failed: {response.status_code} {response.content[:500]}")
            return Task.objects.get(pk=response.json()["id"]), elapsed

        return submit

    def _testhub_measure(self, cases, submit) -> dict:
        """A warm-up, a small task, then the measured one: submit latency, first start, end to end."""
        warmup, _ = submit([f"warm-{i}" for i in range(20)])
        _wait(lambda: Task.objects.filter(pk=warmup.pk, status="finished").exists(), 60, "warm-up task")
        _, small_latency = submit([f"s-{i}" for i in range(10)])
        _wait(lambda: not Task.objects.unfinished().exists(), 60, "small task")

        submitted_at = timezone.now()
        task, latency = submit([f"case-{i}" for i in range(cases)])
        started = Case.objects.filter(task=task, started_at__isnull=False)
        _wait(started.exists, 60, "first case", 0.02)
        first_start = started.order_by("started_at").first().started_at
        _wait(lambda: not Case.objects.filter(task=task, status__in=Case.OPEN_STATUSES).exists(), 3600, "all cases")
        all_recorded = timezone.now()
        _wait(lambda: Report.objects.filter(task=task, status=Report.Status.READY).exists(), 600, "report")
        return {
            "small_latency": small_latency,
            "latency": latency,
            "first_start": (first_start - submitted_at).total_seconds(),
            "seconds": (all_recorded - submitted_at).total_seconds(),
            "passed": Case.objects.filter(task=task, status="passed").count(),
        }

    def _print(self, rows):
        width = max(len(label) for label, _, _ in rows)
        self.stdout.write("")
        for label, value, note in rows:
            self.stdout.write(f"{label:<{width}}  {value!s:<28} {note}")

    def _liveness(self, node):
        """SIGKILL a node's worker (as a crash would), time until the node shows offline; start it again, time
        until it shows online."""
        worker = self.node_workers[-1]
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        killed = time.monotonic()
        _wait(lambda: Node.objects.filter(pk=node.pk, status="offline").exists(), 60, "node offline", 0.05)
        offline_seconds = time.monotonic() - killed
        restarted = time.monotonic()
        self._start_node_worker(node, f"worker-{node.name}-again")
        _wait(lambda: Node.objects.filter(pk=node.pk, status="online").exists(), 60, "node online", 0.05)
        return offline_seconds, time.monotonic() - restarted

    def _lab_stop(self):
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            process.wait(timeout=30)

    def _bare_chord(self, cases, workers, command):
        from celery import chord

        from devtools.bench.bare import BARE_QUEUE, DONE_KEY, count, noop

        bare_workers = []
        for number in range(workers):
            argv = [sys.executable, "-m", "celery", "-A", "devtools.bench.bare", "worker", "-Q", BARE_QUEUE,
                    "-n", f"bare{number}@bench", "--concurrency", "1", "--without-mingle", "--without-gossip",
                    "--loglevel", "WARNING"]  # fmt: skip
            bare_workers.append(self._start(argv, f"bare-{number}"))
        time.sleep(3)
        self.redis.delete(DONE_KEY)
        started = time.time()
        chord([noop.s(command) for _ in range(cases)])(count.s())
        _wait(lambda: self.redis.exists(DONE_KEY), 3600, "bare chord")
        done_at, counted = self.redis.get(DONE_KEY).decode().split()
        if int(counted) != cases:
            raise CommandError(f"bare chord counted {counted} results, expected {cases}")
        cpu = _cpu_split(bare_workers)
        for process in bare_workers:
            os.killpg(process.pid, signal.SIGTERM)
        return float(done_at) - started, cpu

    def _report_build(self, report_cases, product, tool, node):
        task = Task.objects.create(name="report bench", product=product, tool=tool, case_timeout=60, status="running")
        now = timezone.now()
        statuses = ["passed"] * 8 + ["failed", "error"]
        Case.objects.bulk_create(
            (
                Case(
                    task=task,
                    name=f"tests/test_module_{i // 100}.py::test_case_{i}",
                    status=statuses[i % 10],
                    node=node,
                    attempts=1,
                    exit_code=0 if statuses[i % 10] == "passed" else 1,
                    started_at=now,
                    finished_at=now,
                )
                for i in range(report_cases)
            ),
            batch_size=5000,
        )
        connection.close()
        queue = multiprocessing.get_context("fork").Queue()
        child = multiprocessing.get_context("fork").Process(target=_build_report_in_child, args=(task.pk, queue))
        child.start()
        seconds, peak_mb = queue.get(timeout=600)
        child.join()
        return seconds, peak_mb
