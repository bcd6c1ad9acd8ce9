import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.roles import is_lab_manager
from api.errors import Conflict, DomainError, Forbidden, NoCapableNode
from catalog.models import Product, TestTool
from catalog.services import product_tools_require
from execution.counts import cases_move, task_counts_repair
from execution.dispatch import capability_dispatch, task_chord_close, task_chord_open
from execution.jobs import cases_publish_again
from execution.models import Case, FailureSignature, MutedCase, Task, TaskTemplate
from execution.signing import failures_sign
from execution.tasks import dispatch_task
from execution.validators import InvalidCases, case_names_check
from execution.webhooks import webhook_target
from messaging import broker
from nodes.capabilities import capability_queue
from nodes.models import Node
from nodes.services import nodes_silent_since
from worker.protocol import CONTROL_QUEUE

if TYPE_CHECKING:  # for the annotations; the functions below import it where they use it
    from django_celery_beat.models import CrontabSchedule

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
    user: User | None,
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

    Raises InvalidCases (naming the bad names), DomainError or NoCapableNode with what to fix.
    """
    product_tools_require(product=product, tools=[tool])
    case_names = case_names_check(case_names, allow_leading_dash=tool.allow_option_like_cases)
    if webhook_url:
        webhook_target(webhook_url)  # raises WebhookRefused: not allow-listed, or an internal address
    capability_require_online(product=product, tool=tool)
    with transaction.atomic():
        task = Task.objects.create(
            cases_total=len(case_names),
            cases_queued=len(case_names),
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
    try:
        dispatch_task.apply_async((task_id,), retry=False)
    except Exception:
        logger.warning("task %s: broker unreachable; the reconciler will dispatch it", task_id, exc_info=True)


def task_dispatch(*, task_id: int) -> bool:
    """Open the task's chord once (a redelivered dispatch message finds the claim taken and does nothing), and
    hand out what its capability's queue has room for (execution.dispatch)."""
    claimed = Task.objects.filter(pk=task_id, dispatched_at__isnull=True, status=Task.Status.QUEUED).update(
        dispatched_at=timezone.now()
    )
    if not claimed:
        return False
    task = Task.objects.select_related("product", "tool").get(pk=task_id)
    if task_chord_open(task=task) == 0:
        report_enqueue(task.pk)
    else:
        capability_dispatch(product_id=task.product_id, tool_id=task.tool_id)
    return True


def report_enqueue(task_id: int) -> None:
    # By name: reporting builds on execution, not the other way round.
    broker.enqueue(broker.BUILD_REPORT_TASK, task_id)


# --- machines that die mid-case ------------------------------------------------------------------------------


def cases_requeue_from_silent_nodes(*, silent_since: datetime | None = None, **signal: object) -> list[int]:
    """The cases held by nodes gone silent go back to their queues now, not after the visibility timeout: those
    the database says run there, and those whose message a dead worker took but had not yet announced (its own
    record in Redis says so). Each is queued afresh from the database, and the dead worker's record of it is
    dropped. A worker that was only cut off and still ends its case is harmless: the first end recorded wins."""
    silent_since = silent_since or nodes_silent_since()
    if silent_since is None:
        return []
    silent = list(Node.objects.filter(last_heartbeat__lt=silent_since).values_list("name", flat=True))
    held = broker.nodes_held_cases(nodes=silent)
    with transaction.atomic():
        lost = Case.objects.select_for_update(of=("self",), skip_locked=True).filter(
            Q(status=Case.Status.RUNNING, node__isnull=True)
            | Q(status=Case.Status.RUNNING, node__last_heartbeat__lt=silent_since)
            | Q(status=Case.Status.QUEUED, pk__in=set().union(*held.values()))
        )
        case_ids = list(lost.order_by("pk").values_list("pk", flat=True))
        if not case_ids:
            return []
        cases_move(
            Case.objects.filter(pk__in=case_ids, status=Case.Status.RUNNING),
            to=Case.Status.QUEUED,
            node=None,
            log="[TestHub: its node went silent mid-case; handed out again]\n",
        )
        transaction.on_commit(lambda: _cases_hand_out_again(case_ids, forget_on=silent))
    logger.warning("requeued %s case(s) held by silent nodes: %s", len(case_ids), case_ids[:20])
    return case_ids


def _cases_hand_out_again(case_ids: list[int], *, forget_on: list[str]) -> None:
    try:
        for node in forget_on:
            broker.node_held_cases_forget(node=node, case_ids=set(case_ids))
        cases_publish_again(case_ids)
    except Exception:  # the cases are queued in the database; the reconciler publishes what the broker lacks
        logger.warning("could not queue cases %s again", case_ids[:20], exc_info=True)


def product_tool_tasks_refusal(*, product: Product, tool: TestTool, **signal: object) -> str | None:
    """Why a tool cannot be unlinked from a product: unfinished tasks test the product with it."""
    if Task.objects.unfinished().filter(product=product, tool=tool).exists():
        return f"Unfinished tasks test {product} with {tool}; wait for them or cancel them first."
    return None


def node_removal_refusal(*, node: Node, **signal: object) -> str | None:
    """Why a node cannot be removed now: the cases it is running (removing it would strand them)."""
    running = Case.objects.filter(node=node, status=Case.Status.RUNNING)
    count = running.count()
    if not count:
        return None
    tasks = ", ".join(f"#{pk}" for pk in sorted(set(running.values_list("task_id", flat=True)))[:5])
    return (
        f"it is running {count} case(s) of task(s) {tasks}. Put it in maintenance and let them finish (or "
        "cancel those tasks), then remove it."
    )


# --- cancel and rerun ---------------------------------------------------------------------------------


def task_cancel(*, task: Task) -> Task:
    """Queued cases never start, running ones are stopped by their workers, and the report says cancelled."""
    if task.status not in (Task.Status.QUEUED, Task.Status.RUNNING):
        raise Conflict(f"Task {task.pk} is {task.status}; only queued or running tasks can be cancelled.")
    broker.flag_cancelled(task.pk)  # first, so a worker that picks a case up from now on skips it
    with transaction.atomic():
        # The cases first, then the task row: the order the recorder locks them in, so the two never deadlock.
        cases_move(task.cases.filter(status=Case.Status.QUEUED), to=Case.Status.CANCELLED, finished_at=timezone.now())
        Task.objects.filter(pk=task.pk).update(status=Task.Status.CANCELLING)
        task_chord_close(task=task)
        if not task.cases.filter(status=Case.Status.RUNNING).exists():
            transaction.on_commit(lambda: report_enqueue(task.pk))
    task.refresh_from_db(fields=["status"])
    return task


def task_rerun(*, task: Task, user: User, which: str) -> Task:
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
    outcome = Reconciled([], [], [], 0)
    task_counts_repair(task_ids=list(Task.objects.unfinished().values_list("pk", flat=True)))
    broker.restore_expired_unacked()
    for task in Task.objects.unfinished().select_related("product", "tool"):
        _task_reconcile(task, now=now, grace=grace, outcome=outcome)
    return outcome


def _task_reconcile(task: Task, *, now: datetime, grace: timedelta, outcome: Reconciled) -> None:
    """One unfinished task: the first of the cases in `reconcile`'s docstring that applies."""
    open_cases = task.cases.filter(status__in=Case.OPEN_STATUSES)
    if task.status == Task.Status.CANCELLING:
        cases_move(open_cases.exclude(node__status=Node.Status.ONLINE), to=Case.Status.CANCELLED, finished_at=now)
    if not open_cases.exists():
        report_enqueue(task.pk)
        outcome.reported.append(task.pk)
    elif task.dispatched_at is None:
        if task.created_at < now - grace and task_dispatch(task_id=task.pk):
            outcome.dispatched.append(task.pk)
    elif _stalled_without_capable_node(task, since=now - grace):
        _task_end_unrunnable(task, open_cases=open_cases, now=now)
        outcome.reported.append(task.pk)
    elif task.dispatched_at <= now - grace and not broker.dispatch_marker_exists(task.pk):
        outcome.requeued_cases += _task_publish_again(task, open_cases=open_cases, now=now)
        outcome.redispatched.append(task.pk)


def _task_end_unrunnable(task: Task, *, open_cases: QuerySet[Case], now: datetime) -> None:
    """No online node can run the task any more: its open cases end as errors, and it gets its report."""
    queue = capability_queue(product=task.product, tool=task.tool)
    broker.flag_cancelled(task.pk)  # leftover messages are skipped if a node comes back
    cases_move(
        open_cases,
        to=Case.Status.ERROR,
        finished_at=now,
        log=f"[TestHub: no online node can run {queue}; the case was not run]\n",
    )
    report_enqueue(task.pk)


def _task_publish_again(task: Task, *, open_cases: QuerySet[Case], now: datetime) -> int:
    """The task's chord is gone from Redis: its running cases go back to queued and a new chord is opened of what
    is queued, handed out afresh. Returns how many running cases were requeued."""
    with transaction.atomic():
        requeued = len(cases_move(open_cases.filter(status=Case.Status.RUNNING), to=Case.Status.QUEUED))
        Task.objects.filter(pk=task.pk).update(dispatched_at=now)
    logger.warning("task %s: chord lost from Redis; handing its queued cases out again", task.pk)
    task_chord_open(task=task)
    capability_dispatch(product_id=task.product_id, tool_id=task.tool_id)
    return requeued


# --- templates: saved tasks, run now or on a cron schedule ------------------------------------------------


def _crontab_parsed(expression: str) -> "CrontabSchedule":
    """An unsaved CrontabSchedule of the expression, or DomainError saying what is wrong with it."""
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
    return schedule


def _crontab(expression: str) -> "CrontabSchedule":
    from django_celery_beat.models import CrontabSchedule

    schedule = _crontab_parsed(expression)
    existing = CrontabSchedule.objects.filter(
        minute=schedule.minute,
        hour=schedule.hour,
        day_of_month=schedule.day_of_month,
        month_of_year=schedule.month_of_year,
        day_of_week=schedule.day_of_week,
    ).first()
    if existing:
        return existing
    schedule.save()
    return schedule


def template_check(*, template: TaskTemplate) -> None:
    """The rules every template meets however it is saved (API, admin, commands): its tool is one of the product's,
    its cases are a usable list of names (trimmed here), its cron expression parses."""
    try:
        product_tools_require(product=template.product, tools=[template.tool])
    except DomainError as error:
        error.field = "tool"
        raise
    if not isinstance(template.cases, list) or not all(isinstance(name, str) for name in template.cases):
        raise InvalidCases("Give the cases as a list of names.")
    template.cases = case_names_check(template.cases, allow_leading_dash=template.tool.allow_option_like_cases)
    if template.cron:
        try:
            _crontab_parsed(template.cron)
        except DomainError as error:
            error.field = "cron"
            raise


def template_save(*, template: TaskTemplate, user: User | None = None) -> TaskTemplate:
    """Create or change a template, with its beat entry in step, in one transaction."""
    template_check(template=template)
    with transaction.atomic():
        if template.created_by_id is None and user is not None:
            template.created_by = user
        template.save()
        template_schedule(template=template)
    return template


def template_delete(*, template: TaskTemplate) -> None:
    """The template and its beat entry; the tasks it ran stay."""
    with transaction.atomic():
        template.cron = ""
        template_schedule(template=template)
        template.delete()


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


def template_run(*, template: TaskTemplate, user: User | None) -> Task:
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


def failure_signature_note(*, signature: FailureSignature, user: User, note: str, bug_url: str) -> FailureSignature:
    """A tester's note or bug link on a failure signature, shown with every failure that has it from now on."""
    signature.note, signature.bug_url = note, bug_url
    signature.noted_by, signature.noted_at = user, timezone.now()
    signature.save(update_fields=["note", "bug_url", "noted_by", "noted_at"])
    return signature


def case_mute(*, user: User, product_name: str, tool: TestTool, name: str, note: str = "") -> MutedCase:
    """Mute a known flaky case for a product (any version) and tool: a lab manager's call."""
    if not is_lab_manager(user):
        raise Forbidden("Only lab managers mute cases.")
    if not Product.objects.filter(name=product_name).exists():
        raise DomainError(f"There is no product named {product_name!r}.")
    muted, created = MutedCase.objects.get_or_create(
        product_name=product_name, tool=tool, name=name, defaults={"note": note, "muted_by": user}
    )
    if not created:
        raise Conflict(f"{name!r} is already muted for {product_name} with {tool}.")
    return muted


def case_unmute(*, user: User, muted: MutedCase) -> None:
    if not is_lab_manager(user):
        raise Forbidden("Only lab managers unmute cases.")
    muted.delete()


def failures_sign_earlier(*, batch_size: int = 2000) -> int:
    """Give a signature to the failed and errored cases recorded before signatures were (or that lost theirs),
    oldest first, a batch per transaction; returns how many were signed."""
    signed, after = 0, 0
    while True:
        with transaction.atomic():
            cases = list(
                Case.objects.select_for_update(skip_locked=True)
                .filter(status__in=[Case.Status.FAILED, Case.Status.ERROR], signature__isnull=True, pk__gt=after)
                .order_by("pk")
                .only("pk", "task_id", "status", "log", "failure", "signature_id")[:batch_size]
            )
            if not cases:
                return signed
            failures_sign(cases)
            Case.objects.bulk_update(cases, ["failure", "signature"], batch_size=batch_size)
        signed, after = signed + len(cases), cases[-1].pk
