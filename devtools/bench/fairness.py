"""`bin/bench --fairness`: many users on one lab, measured with real workers (devtools/management/commands/bench.py).

Cases of a tool that sleeps CASE_SECONDS run on the bench's nodes. Printed: how long a 5-case task takes behind
another user's big task against on the idle lab; each of two users' share of the cases started in the same
minute while both have big tasks waiting; how long a priority-0 task waits behind priority-9 work before its
priority has aged enough to take turns (the control worker ages a level every AGING_SECONDS here).
"""

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.contrib.auth.models import Group, User
from django.utils import timezone

from accounts.roles import TESTERS
from catalog.models import Product, ProductTool, TestTool
from execution.models import Case, Task
from execution.services import task_cancel, task_submit
from nodes.services import ProductInstall, ToolInstall
from worker import manifest

CASE_SECONDS = 0.2
AGING_SECONDS = 2
SMALL_CASES = 5


@dataclass
class Fairness:
    small_idle_seconds: float
    small_behind_seconds: float
    shares: tuple[float, float]
    share_seconds: int
    aged_start_seconds: float

    def rows(self, *, slots: int) -> list[tuple[str, str, str]]:
        limit = 2 * self.small_idle_seconds + CASE_SECONDS
        ratio = self.small_behind_seconds / self.small_idle_seconds
        first, second = self.shares
        return [
            (f"{SMALL_CASES}-case task, idle lab", f"{self.small_idle_seconds:.2f} s",
             f"{CASE_SECONDS} s cases, {slots} slots"),
            (f"{SMALL_CASES}-case task behind a big one", f"{self.small_behind_seconds:.2f} s = {ratio:.2f}x idle",
             f"target <= 2x idle + one case = {limit:.2f} s"),
            (f"two users' big tasks, {self.share_seconds} s", f"{first:.0%} / {second:.0%} of cases started",
             "target each 50% +- 10%"),
            ("priority 0 behind priority 9", f"first case after {self.aged_start_seconds:.1f} s",
             f"ages a level per {AGING_SECONDS} s: 9 levels = {9 * AGING_SECONDS} s"),
        ]  # fmt: skip


def fairness_measure(*, product: Product, tool: TestTool, share_seconds: int) -> Fairness:
    """Runs on the bench's started lab, whose nodes have the sleeper installed (sleeper_install) and whose control
    worker ages priorities every AGING_SECONDS."""
    first, second = _users()

    def submit(user: User, cases: int, *, priority: int = 5, prefix: str = "c") -> Task:
        names = [f"{prefix}-{i}" for i in range(cases)]
        return task_submit(user=user, name=prefix, product=product, tool=tool, case_names=names, priority=priority)

    small_idle = _ended_after(submit(second, SMALL_CASES, prefix="idle"))
    big = submit(first, 10_000, prefix="big")
    _wait(lambda: Case.objects.filter(task=big, started_at__isnull=False).exists(), "the big task's first case")
    small_behind = _ended_after(submit(second, SMALL_CASES, prefix="behind"))
    _cancel_all()

    one, other = submit(first, 5_000, prefix="one"), submit(second, 5_000, prefix="other")
    _wait(lambda: Case.objects.filter(task=other, started_at__isnull=False).exists(), "both users' tasks running")
    since = timezone.now()
    time.sleep(share_seconds)
    shares = _shares([one, other], since=since, until=since + timedelta(seconds=share_seconds))
    _cancel_all()

    urgent = submit(first, 5_000, priority=9, prefix="urgent")
    _wait(lambda: Case.objects.filter(task=urgent, started_at__isnull=False).exists(), "the urgent task running")
    low = submit(second, SMALL_CASES, priority=0, prefix="low")
    aged_start = _first_start_after(low, timeout=9 * AGING_SECONDS * 3)
    _cancel_all()
    return Fairness(small_idle, small_behind, shares, share_seconds, aged_start)


def sleeper_capability() -> tuple[Product, TestTool]:
    """A product and a tool whose every case sleeps CASE_SECONDS."""
    product, _ = Product.objects.get_or_create(name="fairness", version="1")
    tool, _ = TestTool.objects.get_or_create(
        name="sleeper", version="1", defaults={"command_template": "{tool_path}/sleeper {case}"}
    )
    ProductTool.objects.get_or_create(product=product, tool=tool)
    return product, tool


def sleeper_install(home: Path, *, product: Product, tool: TestTool) -> tuple[ProductInstall, dict]:
    """The sleeper on a bench node whose files live in `home`: its install, and its worker manifest's entry."""
    (home / "fairness" / "product").mkdir(parents=True)
    (home / "fairness" / "tool").mkdir()
    script = home / "fairness" / "tool" / "sleeper"
    script.write_text(f"#!/bin/sh\nsleep {CASE_SECONDS}\n")
    script.chmod(0o755)
    product_path, tool_path = home / "fairness" / "product", home / "fairness" / "tool"
    install = ProductInstall(
        product=product, install_path=str(product_path), tools=[ToolInstall(tool=tool, install_path=str(tool_path))]
    )
    entry = manifest.entry(
        product=product.name, version=product.version, path=product_path, tools=[(tool.name, tool.version, tool_path)]
    )
    return install, entry


def _users() -> tuple[User, User]:
    testers = Group.objects.get(name=TESTERS)
    users = []
    for name in ("fair-a", "fair-b"):
        user, _ = User.objects.get_or_create(username=name)
        user.groups.add(testers)
        users.append(user)
    return users[0], users[1]


def _ended_after(task: Task) -> float:
    """Seconds from the task's submit to its last case's end."""
    _wait(lambda: not Case.objects.filter(task=task, status__in=Case.OPEN_STATUSES).exists(), f"task {task.pk}")
    last: datetime = max(Case.objects.filter(task=task).values_list("finished_at", flat=True))
    return (last - task.created_at).total_seconds()


def _first_start_after(task: Task, *, timeout: float) -> float:
    started = Case.objects.filter(task=task, started_at__isnull=False)
    _wait(started.exists, f"task {task.pk}'s first case", timeout=timeout)
    first: datetime = min(started.values_list("started_at", flat=True))
    return (first - task.created_at).total_seconds()


def _shares(tasks: list[Task], *, since: datetime, until: datetime) -> tuple[float, float]:
    started = Case.objects.filter(task__in=tasks, started_at__gte=since, started_at__lt=until)
    counts = [started.filter(task=task).count() for task in tasks]
    total = max(1, sum(counts))
    return counts[0] / total, counts[1] / total


def _cancel_all() -> None:
    for task in Task.objects.filter(status__in=[Task.Status.QUEUED, Task.Status.RUNNING]):
        task_cancel(task=task)
    _wait(lambda: not Task.objects.unfinished().exists(), "cancelled tasks closed", timeout=120)


def _wait(condition, what: str, *, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")
