"""The API under load at lab scale: bin/bench --load.

On a scratch database holding a lab's history (10,000 tasks and 10 million cases by default, written once
and kept for the next run), it starts gunicorn and has wrk keep 50 requests in flight for 60 s against each
endpoint the web front end leans on, then times 1,000-case submits while the task list is under the same load.
It prints requests/s, p50 and p99 per endpoint, and the server's settings. Then it loads each endpoint while the
tasks' and nodes' revisions move ten times a second (a lab recording results), and again on a server that
keeps no answers (every request built afresh, as when the data changes between requests) and
prints those figures and the ratio, so the cost of a changing lab is measured too.
"""

import base64
import json
import os
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.utils import timezone
from knox.models import AuthToken

from accounts.roles import TESTERS
from devtools.history import history_generate
from devtools.load import Figures, WebServer, free_port, revisions_moving, wrk
from devtools.scratch import scratch_database_require
from execution.models import Case, Task
from messaging.revisions import NODES, TASKS
from nodes.models import Node

TARGET_RATE, TARGET_P99_MS, TARGET_SUBMIT_P99_MS = 300, 150, 300


class Command(BaseCommand):
    help = "Load the API at lab scale with wrk and print requests/s, p50 and p99 per endpoint (bin/bench --load)."

    def add_arguments(self, parser):
        parser.add_argument("--tasks", type=int, default=10_000)
        parser.add_argument("--cases", type=int, default=10_000_000)
        parser.add_argument("--big-task-cases", type=int, default=100_000)
        parser.add_argument("--connections", type=int, default=50)
        parser.add_argument("--seconds", type=int, default=60)
        parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes (compose.yaml's)")
        parser.add_argument("--threads", type=int, default=1, help="threads per gunicorn worker")
        parser.add_argument("--submits", type=int, default=30, help="1,000-case submits timed under load")
        parser.add_argument(
            "--busy-seconds",
            type=int,
            default=15,
            help="then load each endpoint this long while the lab records: the tasks' and nodes' revisions move "
            "--busy-rate times a second, as the recorder's commits and the heartbeats move them (0: skip)",
        )
        parser.add_argument("--busy-rate", type=float, default=10.0)
        parser.add_argument(
            "--afresh-seconds",
            type=int,
            default=15,
            help="then load each endpoint this long with no kept answers, every one built afresh (0: skip)",
        )

    def handle(self, *args, **options):
        scratch_database_require()
        big_task = self._history(options["tasks"], options["cases"], options["big_task_cases"])
        token = self._token()
        submit_body = self._capability_kept_online()
        endpoints = self._endpoints(big_task)
        load = {"token": token, "connections": options["connections"], "seconds": options["seconds"]}
        server = self._server(options, answers_kept=True)
        busy = []
        try:
            figures = [wrk(f"{server.base}{path}", label=label, **load) for label, path in endpoints]
            submits = self._submits_under_load(server, submit_body, options["submits"], load)
            if options["busy_seconds"]:
                load_busy = {**load, "seconds": options["busy_seconds"]}
                with revisions_moving(per_second=options["busy_rate"], topics=(TASKS, NODES)):
                    busy = [wrk(f"{server.base}{path}", label=label, **load_busy) for label, path in endpoints]
        finally:
            server.stop()
        afresh = []
        if options["afresh_seconds"]:
            server_afresh = self._server(options, answers_kept=False)
            try:
                load_afresh = {**load, "seconds": options["afresh_seconds"]}
                afresh = [wrk(f"{server_afresh.base}{path}", label=label, **load_afresh) for label, path in endpoints]
            finally:
                server_afresh.stop()
        self.online = False
        self._print(figures, submits, busy, afresh, server, options)

    def _server(self, options: dict, *, answers_kept: bool) -> WebServer:
        folder = Path(tempfile.mkdtemp(prefix="testhub-load-"))
        server = WebServer(free_port(), options["workers"], options["threads"], folder / "gunicorn.log")
        env = {**os.environ, "DEBUG": "false", "ALLOWED_HOSTS": "127.0.0.1"}
        if not answers_kept:
            env["TESTHUB_ANSWER_CACHE_SECONDS"] = "0"
        server.start(env)
        return server

    def _history(self, tasks: int, cases: int, big_task_cases: int) -> Task:
        """The history an earlier run wrote, when it is the one asked for; else written afresh (minutes)."""
        big = Task.objects.filter(cases_total=big_task_cases).order_by("-pk").first()
        if big and Task.objects.count() >= tasks:
            self.stdout.write(f"Using the history already here (task #{big.pk} has {big_task_cases} cases).")
            return big
        self.stdout.write(f"Writing a history of {tasks} tasks and {cases} cases (a few minutes)...")
        with connection.cursor() as cursor:  # a scratch database: emptied whole, fast
            cursor.execute(f"TRUNCATE {Task._meta.db_table} CASCADE")
        history = history_generate(tasks=tasks, cases=cases, big_task_cases=big_task_cases)
        self.stdout.write(f"Written in {history.seconds:.0f} s.")
        return Task.objects.get(pk=history.big_task_id)

    def _token(self) -> str:
        user, _ = User.objects.get_or_create(username="load-tester")
        user.groups.add(Group.objects.get(name=TESTERS))
        _, token = AuthToken.objects.create(user=user)
        return token

    def _capability_kept_online(self) -> dict:
        """A node that can run product-00 with its tool, kept heard from (submits need an online node)."""
        node = Node.objects.filter(installs__product__name="product-00").first()
        if node is None:
            raise CommandError("The history has no node with product-00 installed; write it again.")
        install = node.installs.get(product__name="product-00")
        tool = install.tools.get().tool
        self.online = True

        def heartbeat():
            while self.online:
                Node.objects.filter(pk=node.pk).update(status=Node.Status.ONLINE, last_heartbeat=timezone.now())
                time.sleep(2)

        threading.Thread(target=heartbeat, daemon=True).start()
        return {"name": "load", "product": install.product_id, "tool": tool.pk, "priority": 5}

    def _endpoints(self, big: Task) -> list[tuple[str, str]]:
        finished = big.product_id
        deep = Case.objects.filter(task=big).order_by("id").values_list("id", flat=True)[int(big.cases_total * 0.9)]
        cursor = base64.b64encode(f"p={deep}".encode()).decode()
        case = Case.objects.filter(task=big, status="failed").first()
        return [
            ("task list (newest, 50)", "/api/tasks/?page_size=50"),
            ("task list (status + product)", f"/api/tasks/?status=finished&product={finished}&page_size=50"),
            ("task list (mine)", "/api/tasks/?mine=true&page_size=50"),
            ("task detail (100k cases)", f"/api/tasks/{big.pk}/"),
            ("cases: first page", f"/api/tasks/{big.pk}/cases/?page_size=50"),
            ("cases: failed only", f"/api/tasks/{big.pk}/cases/?status=failed&page_size=50"),
            ("cases: deep page (90%)", f"/api/tasks/{big.pk}/cases/?page_size=50&cursor={cursor}"),
            ("a case", f"/api/cases/{case.pk}/"),
            ("report list", "/api/reports/?page_size=50"),
            ("product list", "/api/products/"),
            ("node list", "/api/nodes/"),
        ]

    def _submits_under_load(self, server: WebServer, body: dict, count: int, load: dict) -> list[float]:
        """Seconds per 1,000-case submit, while wrk keeps the task list busy."""
        seconds = max(load["seconds"], count * 2)
        background = threading.Thread(
            target=wrk,
            args=(f"{server.base}/api/tasks/?page_size=50",),
            kwargs={**load, "seconds": seconds, "label": "background"},
            daemon=True,
        )
        background.start()
        time.sleep(3)
        timings = []
        for number in range(count):
            payload = json.dumps({**body, "cases": [f"load_{number}_case_{i}" for i in range(1000)]}).encode()
            request = urllib.request.Request(  # noqa: S310 (loopback)
                f"{server.base}/api/tasks/",
                data=payload,
                headers={"Authorization": f"Token {load['token']}", "Content-Type": "application/json"},
            )
            started = time.perf_counter()
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (loopback)
                if response.status != 201:
                    raise CommandError(f"a submit answered {response.status}")
            timings.append(time.perf_counter() - started)
        background.join()
        return timings

    def _print(self, figures, submits, busy, afresh, server: WebServer, options: dict) -> None:
        out = self.stdout.write
        out(f"\n{server.settings}; wrk: {options['connections']} connections, {options['seconds']} s per endpoint")
        kept_for = settings.TESTHUB_ANSWER_CACHE_SECONDS
        out(f"Answers kept while their data holds (TESTHUB_ANSWER_CACHE_SECONDS={kept_for}), as the server runs:")
        self._table(figures, judged=True)
        ordered = sorted(submits)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
        ok = "ok" if p99 < TARGET_SUBMIT_P99_MS else "MISSED"
        median = statistics.median(submits) * 1000
        out(
            f"{'submit 1,000 cases under load':<32} {len(submits):>4} submits: p50 {median:.0f} ms, p99 {p99:.0f} ms  "
            f"{ok} (p99 < {TARGET_SUBMIT_P99_MS} ms)"
        )
        if busy:
            out(
                f"\nWhile the lab records: the tasks' and nodes' revisions move {options['busy_rate']:g} times a "
                f"second ({options['busy_seconds']} s per endpoint)"
            )
            self._table(busy, judged=True)
        if afresh:
            out(
                f"\nEvery answer built afresh (TESTHUB_ANSWER_CACHE_SECONDS=0, {options['afresh_seconds']} s per "
                "endpoint): the cost when the data changes between requests"
            )
            self._table(afresh, judged=False)
            out("kept / afresh, requests/s:")
            for kept, built in zip(figures, afresh, strict=True):
                out(f"  {kept.label:<30} {kept.requests_per_second / max(built.requests_per_second, 0.1):>6.1f}x")

    def _table(self, figures: list[Figures], *, judged: bool) -> None:
        out = self.stdout.write
        out(f"{'endpoint':<32} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}" + ("  target" if judged else ""))
        for row in figures:
            verdict = ""
            if judged:
                ok = "ok" if row.meets(rate=TARGET_RATE, p99_ms=TARGET_P99_MS) else "MISSED"
                verdict = f"  {ok} (>= {TARGET_RATE}/s, p99 < {TARGET_P99_MS} ms)"
            out(
                f"{row.label:<32} {row.requests_per_second:>8.0f} {row.p50_ms:>8.1f} {row.p99_ms:>8.1f} "
                f"{row.errors:>7}{verdict}"
            )
