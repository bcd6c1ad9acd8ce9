import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery import current_app
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from catalog.models import Product, ProductTool, TestTool
from execution.models import Case, Task, TaskTemplate
from nodes.capabilities import capability_queue
from nodes.models import InstallState, Node, NodeTool
from nodes.services import (
    InfraErrorStreak,
    node_infra_errors_count,
    nodes_mark_offline,
    operations_reconcile,
    worker_queues_sync,
)
from testhub import broker
from testhub.errors import Conflict, DomainError, NoCapableNode
from worker.protocol import CONTROL_QUEUE, PROTOCOL_VERSION, CaseJob, message_priority

logger = logging.getLogger(__name__)


def capability_require_online(*, product: Product, tool: TestTool) -> None:
    """Raise NoCapableNode unless an online node has `product` with `tool` installed."""
    capable = Node.objects.capable_of(product=product, tool=tool)
    if capable.online().exists():
        return
    queue = capability_queue(product=product, tool=tool)
    others = list(capable.values_list("name", "status")[:10])
    if others:
        # An "online" node here has gone silent since the last liveness sweep.
        listed = ", ".join(
            f"{name} ({'no heartbeat lately' if status == Node.Status.ONLINE else status})" for name, status in others
        )
        hint = f"Nodes that have it installed but are not online: {listed}."
    else:
        hint = "No node has it installed: install the tool for this product on a node first."
    raise NoCapableNode(f"No online node can run {product} with {tool} (capability {queue}). {hint}")


def task_submit(
    *,
    user: AbstractBaseUser,
    name: str,
    product: Product,
    tool: TestTool,
    case_names: list[str],
    priority: int,
    case_timeout: int | None = None,
    rerun_of: Task | None = None,
    webhook_url: str = "",
    template: TaskTemplate | None = None,
) -> Task:
    """Write a task and its cases in one transaction; the chord is published after commit, by the control worker.

    Case names must already be unique and non-empty (the API checks them and says which repeat).
    """
    if not ProductTool.objects.filter(product=product, tool=tool).exists():
        raise DomainError(f"{tool} is not linked to {product}; pick one of the product's tools.")
    if len(case_names) > settings.TESTHUB_MAX_CASES_PER_TASK:
        raise DomainError(f"A task holds at most {settings.TESTHUB_MAX_CASES_PER_TASK} cases; split the list.")
    capability_require_online(product=product, tool=tool)
    with transaction.atomic():
        task = Task.objects.create(
            name=name,
            created_by=user,
            product=product,
            tool=tool,
            priority=priority,
            case_timeout=case_timeout or tool.case_timeout,
            rerun_of=rerun_of,
            webhook_url=webhook_url,
            template=template,
        )
        Case.objects.insert_queued(task=task, names=case_names)
        transaction.on_commit(lambda: _dispatch_soon(task.pk))
    return task


def _dispatch_soon(task_id: int) -> None:
    """Ask the control worker to publish the task's chord. If the broker is away the task is safe in the
    database and the reconciler dispatches it once the grace period has passed."""
    from execution.tasks import dispatch_task

    try:
        dispatch_task.apply_async((task_id,), retry=False)
    except Exception:
        logger.warning("task %s: broker unreachable; the reconciler will dispatch it", task_id, exc_info=True)


def _jobs(task: Task, cases) -> list[dict]:
    return [
        CaseJob(
            case_id=case_id,
            task_id=task.pk,
            case_name=case_name,
            product=task.product.name,
            product_version=task.product.version,
            tool=task.tool.name,
            tool_version=task.tool.version,
            command=task.tool.command_template,
            timeout=task.case_timeout,
            max_attempts=settings.TESTHUB_CASE_MAX_ATTEMPTS,
        ).to_message()
        for case_id, case_name in cases
    ]


def _publish(task: Task) -> int:
    """Publish a chord of the task's queued cases; returns how many."""
    cases = list(task.cases.filter(status=Case.Status.QUEUED).order_by("pk").values_list("pk", "name"))
    if not cases:
        return 0
    broker.publish_case_chord(
        task_id=task.pk,
        queue=capability_queue(product=task.product, tool=task.tool),
        priority=message_priority(task.priority),
        jobs=_jobs(task, cases),
    )
    logger.info("task %s: published %s cases", task.pk, len(cases))
    return len(cases)


def task_dispatch(*, task_id: int) -> bool:
    """Publish the task's chord once: a redelivered dispatch message finds the claim taken and does nothing."""
    claimed = Task.objects.filter(pk=task_id, dispatched_at__isnull=True, status=Task.Status.QUEUED).update(
        dispatched_at=timezone.now()
    )
    if not claimed:
        return False
    task = Task.objects.select_related("product", "tool").get(pk=task_id)
    if _publish(task) == 0:
        transaction.on_commit(lambda: report_enqueue(task.pk))
    return True


def report_enqueue(task_id: int) -> None:
    # By name: reporting builds on execution, not the other way round.
    current_app.send_task("reporting.build_report", args=(task_id,), queue=CONTROL_QUEUE)


# --- recording what the workers report -------------------------------------------------------------


@dataclass
class RecordingOutcome:
    tasks_to_report: set[int]


def _node_ids(names: set[str]) -> dict[str, int]:
    return dict(Node.objects.filter(name__in=names).values_list("name", "pk"))


_RECORDED_FIELDS = ["status", "node_id", "attempts", "exit_code", "started_at", "finished_at", "log"]


def _apply(case: Case, event: dict, node_id: int | None) -> bool:
    """Apply one event to a case that is still open; False when it changes nothing."""
    at = parse_datetime(event["at"])
    if event["kind"] == "started":
        case.status, case.node_id, case.started_at = Case.Status.RUNNING, node_id, at
        case.attempts += 1
    elif event["kind"] == "finished":
        case.status, case.exit_code, case.finished_at = event["status"], event.get("exit_code"), at
        case.node_id = node_id or case.node_id
        case.log = event.get("log", "")
        if event.get("started_at") and (not event.get("announced") or case.started_at is None):
            case.started_at = parse_datetime(event["started_at"])
        if not event.get("announced"):
            case.attempts += 1  # it ended before it was worth announcing: this is the attempt's only event
    elif event["kind"] == "infra_error" and case.status == Case.Status.RUNNING:
        case.status, case.log = Case.Status.QUEUED, f"[TestHub: retrying elsewhere] {event['reason']}\n"
    else:
        return False
    return True


def _cases_save(cases) -> None:
    """Write the recorded fields of many cases: one statement, executed as a batch by the driver.

    (bulk_update's CASE WHEN per field and row costs more than the recording it serves.)
    """
    columns = [Case._meta.get_field(name).column for name in _RECORDED_FIELDS]
    assignments = ", ".join(f"{column} = %s" for column in columns)
    rows = [[getattr(case, name) for name in _RECORDED_FIELDS] + [case.pk] for case in cases]
    if rows:
        with connection.cursor() as cursor:
            cursor.executemany(f"UPDATE {Case._meta.db_table} SET {assignments} WHERE id = %s", rows)  # noqa: S608


def events_record(*, events: list[dict]) -> RecordingOutcome:
    """Apply a batch of worker events in one transaction: two statements for the cases however many.

    Only open cases (queued or running) change, and they are locked while the batch applies: a case is
    ended once, so a redelivered or late event, or one racing a cancel, changes nothing.
    """
    case_events = [event for event in events if event.get("type") == "case"]
    heartbeats = {event["node"]: event for event in events if event.get("type") == "heartbeat"}
    nodes = _node_ids({event["node"] for event in events})
    with transaction.atomic():
        open_cases = Case.objects.select_for_update().filter(
            pk__in={event["case_id"] for event in case_events}, status__in=Case.OPEN_STATUSES
        )
        cases = {case.pk: case for case in open_cases.order_by("pk").only("pk", "task_id", *_RECORDED_FIELDS)}
        changed, started_tasks, finished_tasks, failed_installs = {}, {}, set(), []
        streaks: dict[int, InfraErrorStreak] = {}
        for event in case_events:
            case = cases.get(event["case_id"])
            node_id = nodes.get(event["node"])
            streak = streaks.setdefault(node_id, InfraErrorStreak())
            if event["kind"] == "infra_error":
                failed_installs.append((event, node_id))
                streak.errors += 1
            elif event["kind"] == "finished" and event.get("status") in (Case.Status.PASSED, Case.Status.FAILED):
                streak.restarted, streak.errors = True, 0
            if (
                case is None
                or case.status not in Case.OPEN_STATUSES
                or not _apply(case, event, nodes.get(event["node"]))
            ):
                continue
            changed[case.pk] = case
            started_tasks.setdefault(case.task_id, case.started_at)
            if case.status not in Case.OPEN_STATUSES:
                finished_tasks.add(case.task_id)
        _cases_save(changed.values())
        for task_id, at in started_tasks.items():
            Task.objects.filter(pk=task_id, status=Task.Status.QUEUED).update(
                status=Task.Status.RUNNING, started_at=at or timezone.now()
            )
        for event, node_id in failed_installs:
            _install_mark_failed(
                task_id=event["task_id"], node_id=node_id, reason=event["reason"], queue=event["queue"]
            )
        streaks.pop(None, None)  # events from nodes TestHub does not know
        node_infra_errors_count(streaks=streaks)
        _heartbeats_record(heartbeats)
        done = {
            task_id
            for task_id in finished_tasks
            if not Case.objects.filter(task_id=task_id, status__in=Case.OPEN_STATUSES).exists()
        }
    return RecordingOutcome(tasks_to_report=done)


def _install_mark_failed(*, task_id: int, node_id: int | None, reason: str, queue: str) -> None:
    """The node could not run what it claims to have: take it out of the capability until it is fixed."""
    task = Task.objects.filter(pk=task_id).values("product_id", "tool_id").first()
    if node_id is None or task is None:
        return
    marked = NodeTool.objects.filter(
        node_product__node_id=node_id, node_product__product_id=task["product_id"], tool_id=task["tool_id"]
    ).update(state=InstallState.FAILED, state_message=reason[:1000])
    if marked:
        node_name = Node.objects.values_list("name", flat=True).get(pk=node_id)
        transaction.on_commit(lambda: broker.cancel_consumer(node=node_name, queue=queue))


def _heartbeats_record(heartbeats: dict[str, dict]) -> None:
    """A heartbeat brings a silent node back online, unless its worker is too old for the message format:
    then the node is marked so, and its worker is told to stop consuming (cases would be misread)."""
    for node in Node.objects.filter(name__in=heartbeats):
        beat = heartbeats[node.name]
        protocol = beat.get("protocol") if isinstance(beat.get("protocol"), int) else 0
        nodes = Node.objects.filter(pk=node.pk)
        nodes.update(
            # The control plane's clock, not the machine's: a machine whose clock is off must not flap offline.
            last_heartbeat=timezone.now(),
            worker_version=str(beat.get("version", ""))[:40],
            worker_protocol=protocol,
        )
        if protocol < PROTOCOL_VERSION:
            nodes.exclude(status__in=Node.HELD_STATUSES).update(
                status=Node.Status.OUTDATED,
                status_reason=(
                    f"Its worker {beat['version']} speaks message format {protocol}; this control plane needs "
                    f"{PROTOCOL_VERSION}. Deploy the worker again to update it."
                )[:500],
            )
        else:
            nodes.filter(status__in=[Node.Status.UNKNOWN, Node.Status.OFFLINE, Node.Status.OUTDATED]).update(
                status=Node.Status.ONLINE, status_reason=""
            )
        node.refresh_from_db(fields=["status"])
        worker_queues_sync(node=node, consumed=beat["queues"])


# --- cancel and rerun ---------------------------------------------------------------------------------


def task_cancel(*, task: Task) -> Task:
    """Queued cases never start, running ones are stopped by their workers, and the report says cancelled."""
    if task.status not in (Task.Status.QUEUED, Task.Status.RUNNING):
        raise Conflict(f"Task {task.pk} is {task.status}; only queued or running tasks can be cancelled.")
    broker.flag_cancelled(task.pk)  # first, so a worker that picks a case up from now on skips it
    with transaction.atomic():
        Task.objects.filter(pk=task.pk).update(status=Task.Status.CANCELLING)
        task.cases.filter(status=Case.Status.QUEUED).update(status=Case.Status.CANCELLED, finished_at=timezone.now())
        if not task.cases.filter(status=Case.Status.RUNNING).exists():
            transaction.on_commit(lambda: report_enqueue(task.pk))
    task.refresh_from_db(fields=["status"])
    return task


def task_rerun(*, task: Task, user: AbstractBaseUser, which: str) -> Task:
    """A new task of the old one's failed and errored cases (which="failed") or of all of them ("all")."""
    cases = task.cases.order_by("pk")
    if which == "failed":
        cases = cases.filter(status__in=[Case.Status.FAILED, Case.Status.ERROR])
    names = list(cases.values_list("name", flat=True))
    if not names:
        raise Conflict(f"Task {task.pk} has no {which} cases to run again.")
    return task_submit(
        user=user,
        name=f"{task.name} (rerun of #{task.pk})",
        product=task.product,
        tool=task.tool,
        case_names=names,
        priority=task.priority,
        case_timeout=task.case_timeout,
        rerun_of=task,
        webhook_url=task.webhook_url,
    )


# --- reconciling: the database is the truth, the chord only a fast path ----------------------------------


@dataclass
class Reconciled:
    dispatched: list[int]
    redispatched: list[int]
    reported: list[int]
    requeued_cases: int
    nodes_offline: list[str]


def _stalled_without_capable_node(task: Task, *, since: datetime) -> bool:
    """No online node can run the task's cases, and none of them has moved since `since`."""
    if Node.objects.capable_of(product=task.product, tool=task.tool).online().exists():
        return False
    moved = task.cases.filter(Q(started_at__gte=since) | Q(finished_at__gte=since)).exists()
    return not moved and task.dispatched_at is not None and task.dispatched_at < since


def reconcile(*, now: datetime | None = None, grace_seconds: int | None = None) -> Reconciled:
    """Finish every task whose chord can no longer finish by itself.

    - never dispatched (the dispatch message was lost): dispatch it;
    - dispatched, but its chord is gone from Redis (publisher died, Redis restarted empty, keys expired):
      put its running cases back in the queue and publish a new chord of what is queued (a case that
      was in fact still running and ends later is recorded once: the first end wins);
    - stalled because no online node can run it any more: end its open cases as errors;
    - all cases ended but no report (callback lost): build the report.
    Tasks younger than the grace period are left alone: their dispatch may still be under way.
    """
    now = now or timezone.now()
    grace = timedelta(seconds=settings.TESTHUB_DISPATCH_GRACE_SECONDS if grace_seconds is None else grace_seconds)
    outcome = Reconciled([], [], [], 0, nodes_mark_offline(now=now))
    operations_reconcile(now=now)
    broker.restore_expired_unacked()
    for task in Task.objects.unfinished().select_related("product", "tool"):
        open_cases = task.cases.filter(status__in=Case.OPEN_STATUSES)
        if task.status == Task.Status.CANCELLING:
            lost = open_cases.exclude(node__status=Node.Status.ONLINE)
            lost.update(status=Case.Status.CANCELLED, finished_at=now)
        if not open_cases.exists():
            report_enqueue(task.pk)
            outcome.reported.append(task.pk)
            continue
        if task.dispatched_at is None:
            if task.created_at < now - grace and task_dispatch(task_id=task.pk):
                outcome.dispatched.append(task.pk)
            continue
        if _stalled_without_capable_node(task, since=now - grace):
            queue = capability_queue(product=task.product, tool=task.tool)
            broker.flag_cancelled(task.pk)  # leftover messages are skipped if a node comes back
            open_cases.update(
                status=Case.Status.ERROR,
                finished_at=now,
                log=f"[TestHub: no online node can run {queue}; the case was not run]\n",
            )
            report_enqueue(task.pk)
            outcome.reported.append(task.pk)
            continue
        if task.dispatched_at > now - grace or broker.dispatch_marker_exists(task.pk):
            continue
        with transaction.atomic():
            outcome.requeued_cases += open_cases.filter(status=Case.Status.RUNNING).update(status=Case.Status.QUEUED)
            Task.objects.filter(pk=task.pk).update(dispatched_at=now)
        logger.warning("task %s: chord lost from Redis; publishing its queued cases again", task.pk)
        _publish(task)
        outcome.redispatched.append(task.pk)
    return outcome


# --- templates: saved tasks, run now or on a cron schedule ------------------------------------------------


def _crontab(expression: str):
    from django_celery_beat.models import CrontabSchedule

    fields = expression.split()
    if len(fields) != 5:
        raise DomainError(f"The schedule {expression!r} needs five cron fields: minute hour day month weekday.")
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    schedule = CrontabSchedule(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year=month_of_year,
        day_of_week=day_of_week,
        timezone=settings.TIME_ZONE,
    )
    try:
        schedule.schedule  # noqa: B018  (parses every field)
    except ValueError as error:
        raise DomainError(f"The schedule {expression!r} is not valid cron: {error}.") from None
    existing = CrontabSchedule.objects.filter(
        minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year, day_of_week=day_of_week
    ).first()
    if existing:
        return existing
    schedule.save()
    return schedule


def template_schedule(*, template: TaskTemplate) -> None:
    """Keep the template's beat entry in step with its cron field (none when the field is empty)."""
    from django_celery_beat.models import PeriodicTask

    if not template.cron:
        if template.periodic_task:
            template.periodic_task.delete()
        return
    crontab = _crontab(template.cron)
    periodic, _ = PeriodicTask.objects.update_or_create(
        name=f"testhub template {template.pk}",
        defaults={
            "task": "execution.run_template",
            "crontab": crontab,
            "args": json.dumps([template.pk]),
            "queue": CONTROL_QUEUE,
            "enabled": True,
        },
    )
    if template.periodic_task_id != periodic.pk:
        template.periodic_task = periodic
        template.save(update_fields=["periodic_task"])


def template_run(*, template: TaskTemplate, user: AbstractBaseUser | None) -> Task:
    """One run of the template: a normal task with its own report, linked to the template."""
    return task_submit(
        user=user or template.created_by,
        name=f"{template.name} ({timezone.now():%Y-%m-%d %H:%M})",
        product=template.product,
        tool=template.tool,
        case_names=template.cases,
        priority=template.priority,
        case_timeout=template.case_timeout,
        template=template,
    )


def template_run_scheduled(*, template_id: int) -> None:
    """What beat runs: a run that cannot start (no online node) is noted on the template, not lost silently."""
    template = TaskTemplate.objects.select_related("product", "tool", "created_by").get(pk=template_id)
    try:
        template_run(template=template, user=None)
    except DomainError as error:
        logger.warning("template %s: scheduled run did not start: %s", template.pk, error.message)
        TaskTemplate.objects.filter(pk=template.pk).update(last_run_error=error.message[:1000])
        return
    TaskTemplate.objects.filter(pk=template.pk).exclude(last_run_error="").update(last_run_error="")
