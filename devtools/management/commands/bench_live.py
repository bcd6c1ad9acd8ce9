"""Live pages at scale: what `browsers` open task pages cost the web server, as the front end follows them.

    bin/bench --live [--browsers 200 --seconds 30 --workers 3]

Each simulated browser is a tester of their own with a running task's page open. As the page does, it asks for the
task once a second with the ETag of what it holds, and for the first page of cases only when the task's answer
changed (devtools/browsers.py). Four passes: the lab quiet; the lab busy elsewhere (other tasks' results move the
tasks' revision twice a second, so every answer is built again, but this task's reads the same); this task itself
progressing (one of its cases recorded as started and another as passed every second, through the recorder, so
every page asks for the task and its cases each second); and, as the baseline, the same progress with pages that
send no ETags and ask for both every second. Printed: requests/s, 304s, p50/p99 and the CPU the web server
(gunicorn and its workers) used, in cores. Refuses any database bin/bench did not make.
"""

import os
import tempfile
from contextlib import nullcontext
from pathlib import Path

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand
from django.test import Client
from django.utils import timezone

from accounts.roles import TESTERS
from catalog.models import Product, ProductTool, TestTool
from devtools.browsers import Polled, browsers_follow, cpu_seconds
from devtools.load import WebServer, free_port, repeating, revisions_moving
from devtools.scratch import scratch_database_require
from execution.events import CaseEvent
from execution.models import Case, Task
from execution.recording import events_record
from execution.services import task_submit
from messaging.revisions import TASKS
from nodes.models import Node

QUIET, ELSEWHERE, PROGRESSING, BASELINE = "lab quiet", "lab busy elsewhere", "this task progressing", "no ETags"


def _task_progressing(task: Task, node: Node):
    """Once a second, one of the task's queued cases starts on `node` and the one started before passes, recorded
    as the control worker records a worker's events."""
    started: list[Case] = []

    def progress() -> None:
        now = timezone.now()
        events = [_case_event(case, node, "finished", at=now, status="passed", started_at=now) for case in started]
        started[:] = Case.objects.filter(task=task, status=Case.Status.QUEUED).order_by("pk")[:1]
        events += [_case_event(case, node, "started", at=now) for case in started]
        events_record(events=events)

    return repeating(progress, every_seconds=1)


def _case_event(case: Case, node: Node, kind: str, **fields) -> CaseEvent:
    return CaseEvent(type="case", kind=kind, case_id=case.pk, task_id=case.task_id, node=node.name, **fields)


class Command(BaseCommand):
    help = "What open task pages cost the web server as the front end follows them (bin/bench --live)."

    def add_arguments(self, parser):
        parser.add_argument("--browsers", type=int, default=200)
        parser.add_argument("--seconds", type=int, default=30)
        parser.add_argument("--workers", type=int, default=3)
        parser.add_argument("--threads", type=int, default=1, help="threads per worker (gthread, keeps connections)")

    def handle(self, *args, browsers, seconds, workers, threads, **options):
        scratch_database_require()
        task, node = self._running_task()
        cookies = self._signed_in_testers(browsers)
        page = {"task_path": f"/api/tasks/{task.pk}/", "cases_path": f"/api/tasks/{task.pk}/cases/?page_size=50"}
        server = WebServer(
            free_port(), workers, threads, Path(tempfile.mkdtemp(prefix="testhub-live-")) / "gunicorn.log"
        )
        server.start({**os.environ, "DEBUG": "false", "ALLOWED_HOSTS": "127.0.0.1"})
        try:
            browsers_follow(port=server.port, cookies=cookies, seconds=3, **page)  # sessions read, answers kept
            rows = {}
            for label, lab in [
                (QUIET, nullcontext),
                (ELSEWHERE, lambda: revisions_moving(per_second=2, topics=(TASKS,))),
                (PROGRESSING, lambda: _task_progressing(task, node)),
                (BASELINE, lambda: _task_progressing(task, node)),
            ]:
                cpu_before = cpu_seconds(server.process.pid)
                with lab():
                    polled = browsers_follow(
                        port=server.port, cookies=cookies, seconds=seconds, naive=label == BASELINE, **page
                    )
                rows[label] = (polled, (cpu_seconds(server.process.pid) - cpu_before) / seconds)
        finally:
            server.stop()
        self._print(rows, browsers=browsers, seconds=seconds, server=server)

    def _signed_in_testers(self, count: int) -> list[str]:
        """A session cookie for each of `count` testers: each browser is a different person."""
        testers = Group.objects.get(name=TESTERS)
        cookies = []
        for number in range(count):
            tester, _ = User.objects.get_or_create(username=f"live-tester-{number}")
            tester.groups.add(testers)
            browser = Client()
            browser.force_login(tester)
            cookies.append(f"sessionid={browser.cookies['sessionid'].value}")
        return cookies

    def _running_task(self) -> tuple[Task, Node]:
        tester, _ = User.objects.get_or_create(username="live-owner")
        tester.groups.add(Group.objects.get(name=TESTERS))
        product, _ = Product.objects.get_or_create(name="live", version="1")
        tool, _ = TestTool.objects.get_or_create(
            name="live-tool", version="1", defaults={"command_template": "t {case}"}
        )
        ProductTool.objects.get_or_create(product=product, tool=tool)
        Node.objects.filter(name="live-node").delete()
        node = Node.objects.create(name="live-node", ip="127.0.0.1", username="live", install_root="/opt/live")
        node.installs.create(product=product, install_path="/opt/live/p").tools.create(tool=tool, install_path="/t")
        # Heard from just now, as a worker would be: the task is accepted (no worker runs here; it stays running).
        Node.objects.filter(pk=node.pk).update(status=Node.Status.ONLINE, last_heartbeat=node.created_at)
        task = task_submit(
            user=tester,
            name="live",
            product=product,
            tool=tool,
            case_names=[f"case-{i}" for i in range(1000)],
            priority=5,
        )
        return task, node

    def _print(self, rows: dict[str, tuple[Polled, float]], *, browsers: int, seconds: int, server: WebServer) -> None:
        out = self.stdout.write
        out(f"\n{browsers} browsers, each a tester of their own, with a running task's page open, {seconds} s a pass:")
        out("each asks for the task every second, and for its first 50 cases when the task's answer changed.")
        out(f"{server.settings}")
        out(f"{'':24} {'req/s':>7} {'304s':>6} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'web CPU':>11}")
        for label, (polled, cores) in rows.items():
            share = polled.not_modified / max(1, polled.requests)
            out(
                f"{label:24} {polled.requests / seconds:7.0f} {share:6.0%} {polled.percentile(0.5):7.1f} "
                f"{polled.percentile(0.99):7.1f} {polled.errors:6d} {cores:6.2f} cores"
            )
        worst = max(rows[label][1] for label in (QUIET, ELSEWHERE, PROGRESSING))
        verdict = "ok" if worst < 1 else "over"
        ratio = rows[BASELINE][1] / max(rows[PROGRESSING][1], 0.01)
        out(f"web server CPU as the front end follows the task: at most {worst:.2f} cores ({verdict}: < 1 core);")
        out(f"pages without ETags that ask for both every second cost {ratio:.1f}x that of a progressing task")
