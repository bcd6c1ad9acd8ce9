"""Live pages at scale: what `browsers` open task pages cost the web server, as the front end polls them.

    bin/bench --live [--browsers 200 --seconds 30 --workers 3]

Each simulated browser asks for a running task and its first page of cases once a second, as the task page does,
with the ETag of what it holds; meanwhile the lab records (the task's revision moves twice a second, so answers
do change). The same browsers then poll without ETags, the baseline. Printed: requests/s, 304s, p50/p99 and the
CPU the web server (gunicorn and its workers) used, in cores. Refuses any database bin/bench did not make.
"""

import os
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand
from django.test import Client

from accounts.roles import TESTERS
from api.revisions import TASKS, revisions_bump
from catalog.models import Product, ProductTool, TestTool
from devtools.browsers import browsers_poll, cpu_seconds
from devtools.load import WebServer, free_port
from devtools.scratch import scratch_database_require
from execution.models import Task
from execution.services import task_submit
from nodes.models import Node


@contextmanager
def _lab_recording(*, per_second: float):
    stop = threading.Event()

    def record():
        while per_second and not stop.wait(1 / per_second):
            revisions_bump(TASKS)

    recorder = threading.Thread(target=record, daemon=True)
    recorder.start()
    try:
        yield
    finally:
        stop.set()
        recorder.join()


class Command(BaseCommand):
    help = "What open task pages cost the web server as the front end polls them (bin/bench --live)."

    def add_arguments(self, parser):
        parser.add_argument("--browsers", type=int, default=200)
        parser.add_argument("--seconds", type=int, default=30)
        parser.add_argument("--workers", type=int, default=3)

    def handle(self, *args, browsers, seconds, workers, **options):
        scratch_database_require()
        task = self._running_task()
        cookies = self._signed_in_testers(browsers)
        paths = [f"/api/tasks/{task.pk}/", f"/api/tasks/{task.pk}/cases/?page_size=50"]
        server = WebServer(free_port(), workers, 1, Path(tempfile.mkdtemp(prefix="testhub-live-")) / "gunicorn.log")
        server.start({**os.environ, "DEBUG": "false", "ALLOWED_HOSTS": "127.0.0.1"})
        try:
            browsers_poll(port=server.port, paths=paths, cookies=cookies, seconds=3)  # sessions read, answers kept
            rows = [
                self._measure(server, paths, cookies, seconds, conditional=True, recording=False),
                self._measure(server, paths, cookies, seconds, conditional=True, recording=True),
                self._measure(server, paths, cookies, seconds, conditional=False, recording=True),
            ]
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

    def _running_task(self) -> Task:
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
        return task

    def _measure(self, server, paths, cookies, seconds, *, conditional: bool, recording: bool) -> tuple:
        cpu_before = cpu_seconds(server.process.pid)
        with _lab_recording(per_second=2 if recording else 0):
            polled = browsers_poll(
                port=server.port,
                paths=paths,
                cookies=cookies,
                seconds=seconds,
                conditional=conditional,
            )
        cores = (cpu_seconds(server.process.pid) - cpu_before) / seconds
        label = ("lab recording, " if recording else "lab quiet, ") + (
            "ETags (the front end)" if conditional else "no ETags"
        )
        requests = polled.answers + polled.not_modified
        return label, requests / seconds, polled, cores

    def _print(self, rows, *, browsers: int, seconds: int, server: WebServer) -> None:
        out = self.stdout.write
        out(f"\n{browsers} browsers, each a tester of their own, with a running task's page open, {seconds} s a pass:")
        out("each asks for the task and its first cases every second, as the task page does.")
        out(f"{server.settings}; while the lab records, the tasks' revision moves twice a second")
        out(f"{'':34} {'req/s':>7} {'304s':>6} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'web CPU':>9}")
        for label, rate, polled, cores in rows:
            share = polled.not_modified / max(1, polled.answers + polled.not_modified)
            out(
                f"{label:34} {rate:7.0f} {share:6.0%} {polled.percentile(0.5):7.1f} {polled.percentile(0.99):7.1f} "
                f"{polled.errors:6d} {cores:6.2f} cores"
            )
        quiet, busy, baseline = (row[3] for row in rows)
        verdict = "ok" if max(quiet, busy) < 1 else "over"
        ratio = baseline / max(busy, 0.01)
        out(f"web server CPU as the front end polls: {quiet:.2f} cores quiet, {busy:.2f} while recording "
            f"({verdict}: target < 1 core); without ETags while recording: {ratio:.1f}x that")  # fmt: skip
