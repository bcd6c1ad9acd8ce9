"""Measure what results cost at lab scale, on generated data in a scratch database.

    bin/bench --results [--runs 10000 --cases-per-run 80 --big-cases 100000]

Writes (with COPY) one product version's history: --runs finished full runs of --cases-per-run cases each, one
case name in every run, then two full runs of --big-cases cases (about 1 million case rows by default); and
prints: a page of the one case's history (as many runs as --runs), comparing the two big runs, keeping the flaky
tracks for a big run at its report, its failure groups, the flaky list, and what a failure's signature costs the
recorder (500 failed events against 500 passed ones). API figures are medians with answers built afresh.
"""

import statistics
import time
from datetime import timedelta

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from catalog.models import Product, ProductTool, TestTool
from devtools.scratch import scratch_database_require
from execution.events import case_token
from execution.flaky import case_tracks_update
from execution.models import Case, CaseTrack, FailureSignature, Task
from execution.recording import events_take
from execution.results import failure_groups
from nodes import services as node_services
from nodes.models import Node
from worker.protocol import event_envelope

HISTORY_CASE = "tests/test_history.py::test_kept_in_every_run"
TRACEBACK = (
    'Traceback (most recent call last):\n  File "/opt/ci/build-{n}/tests/test_calc.py", line {n}, in test_{n}\n'
    + "    frame line\n" * 40
    + "AssertionError: expected {n} got {m} at 0x{n:x}\n"
)


def _median_seconds(call, *, times: int) -> float:
    timings = []
    for _ in range(times):
        started = time.perf_counter()
        call()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


class Command(BaseCommand):
    help = "Benchmark case history, comparison, flaky tracks and failure groups at lab scale (see bin/bench)."

    def add_arguments(self, parser):
        parser.add_argument("--runs", type=int, default=10_000)
        parser.add_argument("--cases-per-run", type=int, default=80)
        parser.add_argument("--big-cases", type=int, default=100_000)

    def handle(self, *args, runs, cases_per_run, big_cases, **options):
        scratch_database_require()  # it erases every task
        started = time.monotonic()
        product, tool = self._erase_and_make_catalog()
        self._history(product, tool, runs=runs, cases_per_run=cases_per_run)
        older, newer = (self._big_run(product, tool, cases=big_cases, generation=n) for n in (0, 1))
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {Task._meta.db_table}; ANALYZE {Case._meta.db_table}")
        rows = Case.objects.count()
        written = time.monotonic() - started
        api = self._api()

        def get(url: str) -> dict:
            response = api.get(url)
            assert response.status_code == 200, (url, response.status_code, response.content[:300])
            return response.json()

        with override_settings(TESTHUB_ANSWER_CACHE_SECONDS=0):
            history_url = f"/api/case-history/?product={product.pk}&tool={tool.pk}&name={HISTORY_CASE}"
            history = _median_seconds(lambda: get(history_url), times=20)
            deep = get(f"{history_url}&page_size=200")["next"]
            history_deep = _median_seconds(lambda: get(deep), times=20)
            compare_url = f"/api/tasks/{newer.pk}/compare/?with={older.pk}"
            compared = get(compare_url)
            compare = _median_seconds(lambda: get(compare_url), times=5)
            tracks = self._timed(lambda: [case_tracks_update(task=run) for run in (older, newer)]) / 2
            groups = _median_seconds(lambda: failure_groups(task=newer), times=5)
            flaky_url = f"/api/flaky-cases/?product={product.pk}&tool={tool.pk}"
            flaky_count = get(flaky_url)["count"]
            flaky = _median_seconds(lambda: get(flaky_url), times=10)
        failed_batch, passed_batch = self._recording(product, tool)
        self._print(
            [
                ("case rows", f"{rows:,}", f"written in {written:.0f} s"),
                (f"case history, first page ({runs:,} runs)", f"{history * 1000:.1f} ms", "target < 100 ms"),
                ("case history, a page of 200 runs", f"{history_deep * 1000:.1f} ms", "target < 100 ms"),
                (f"compare two {big_cases:,}-case runs", f"{compare:.2f} s",
                 f"target < 2 s; {compared['counts']}"),
                (f"flaky tracks kept at a {big_cases:,}-case report", f"{tracks:.2f} s", "once per task"),
                ("failure groups of that run", f"{groups * 1000:.0f} ms", "at report time and per request"),
                (f"flaky list ({flaky_count:,} flaky cases)", f"{flaky * 1000:.1f} ms", "first page"),
                ("recording 500 failed / 500 passed events",
                 f"{failed_batch * 1000:.0f} / {passed_batch * 1000:.0f} ms",
                 f"{failed_batch / passed_batch:.2f}x: signatures and their lookup"),
            ]
        )  # fmt: skip

    def _timed(self, call) -> float:
        started = time.perf_counter()
        call()
        return time.perf_counter() - started

    def _erase_and_make_catalog(self) -> tuple[Product, TestTool]:
        with connection.cursor() as cursor:
            tables = ", ".join(model._meta.db_table for model in (Task, FailureSignature, CaseTrack))
            cursor.execute(f"TRUNCATE {tables} CASCADE")
        Node.objects.filter(name="results-bench").delete()
        product, _ = Product.objects.get_or_create(name="results-bench", version="1")
        tool, _ = TestTool.objects.get_or_create(
            name="results-bench", version="1", defaults={"command_template": "{tool_path}/run {case}"}
        )
        ProductTool.objects.get_or_create(product=product, tool=tool)
        return product, tool

    def _tasks(self, product, tool, count: int, *, start) -> list[Task]:
        return Task.objects.bulk_create(
            Task(
                name=f"run {n}", product=product, tool=tool, status=Task.Status.FINISHED, case_timeout=60,
                created_at=start + timedelta(minutes=n), finished_at=start + timedelta(minutes=n, seconds=50),
            )
            for n in range(count)
        )  # fmt: skip

    def _copy(self, rows) -> None:
        columns = "task_id, name, status, attempts, log, started_at, finished_at, exit_code, signature_id"
        with (
            transaction.atomic(),
            connection.cursor() as cursor,
            cursor.copy(f"COPY {Case._meta.db_table} ({columns}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)

    def _history(self, product, tool, *, runs: int, cases_per_run: int) -> None:
        """`runs` runs, each with the history case and cases_per_run - 1 others; the history case flips now and
        then, as a flaky case would."""
        now = timezone.now()
        tasks = self._tasks(product, tool, runs, start=now - timedelta(days=60))

        def rows():
            for task in tasks:
                status = "failed" if task.pk % 7 == 0 else "passed"
                yield task.pk, HISTORY_CASE, status, 1, "", now, now + timedelta(seconds=2), 0, None
                for n in range(cases_per_run - 1):
                    yield task.pk, f"tests/test_other.py::test_{n}", "passed", 1, "", now, now, 0, None

        self._copy(rows())

    def _big_run(self, product, tool, *, cases: int, generation: int) -> Task:
        """A full run of `cases` cases: a tenth failing (which tenth shifts between generations), their failures
        in 50 groups, and a hundredth taking far longer in the newer run."""
        (task,) = self._tasks(product, tool, 1, start=timezone.now() + timedelta(minutes=generation))
        signatures = FailureSignature.objects.bulk_create(
            FailureSignature(product_name=product.name, tool=tool, digest=f"{generation}-{n}", title=f"Error {n}")
            for n in range(50)
        )
        now = timezone.now()

        def rows():
            for n in range(cases):
                failing = (n + generation * 3) % 10 == 0
                seconds = 30 if generation and n % 100 == 1 else 1
                yield (
                    task.pk, f"tests/test_module_{n // 100}.py::test_{n}", "failed" if failing else "passed", 1, "",
                    now, now + timedelta(seconds=seconds), 1 if failing else 0,
                    signatures[n % 50].pk if failing else None,
                )  # fmt: skip

        self._copy(rows())
        return task

    def _api(self) -> APIClient:
        user, _ = User.objects.get_or_create(username="results-bench", defaults={"is_superuser": True})
        api = APIClient(HTTP_HOST="localhost")
        api.force_authenticate(user)
        return api

    def _recording(self, product, tool) -> tuple[float, float]:
        """Seconds to record 500 failed events (3 KB tracebacks, new signatures for the first batch only) and 500
        passed ones, each batch as the recorder takes it; the median of three batches each."""
        node = node_services.node_create(
            name="results-bench", ip="127.0.0.1", username="bench", install_root="/opt/results-bench", managed=False
        )
        key = node_services.node_event_key(node=node)
        timings: dict[str, list[float]] = {"failed": [], "passed": []}
        for batch in range(6):
            status = "failed" if batch % 2 == 0 else "passed"
            (task,) = self._tasks(product, tool, 1, start=timezone.now())
            # Running, with the kept counts TestHub keeps (the recorder moves them as the cases end).
            Task.objects.filter(pk=task.pk).update(status=Task.Status.RUNNING, cases_total=500, cases_running=500)
            now = timezone.now()
            self._copy((task.pk, f"recorded-{n}", "running", 1, "", now, None, None, None) for n in range(500))
            events = [
                event_envelope(
                    node=node.name,
                    key=key,
                    message={
                        "type": "case",
                        "kind": "finished",
                        "case_id": case_id,
                        "task_id": task.pk,
                        "node": node.name,
                        "at": timezone.now().isoformat(),
                        "status": status,
                        "exit_code": 1 if status == "failed" else 0,
                        "announced": True,
                        "log": TRACEBACK.format(n=n, m=n + 1) if status == "failed" else "ok\n",
                        "token": case_token(case_id),
                    },
                )
                for n, case_id in enumerate(Case.objects.filter(task=task).order_by("pk").values_list("pk", flat=True))
            ]
            timings[status].append(self._timed(lambda events=events: events_take(received=events)))
        return statistics.median(timings["failed"]), statistics.median(timings["passed"])

    def _print(self, rows) -> None:
        width = max(len(label) for label, _, _ in rows)
        self.stdout.write("")
        for label, value, note in rows:
            self.stdout.write(f"{label:<{width}}  {value:<16} {note}")
