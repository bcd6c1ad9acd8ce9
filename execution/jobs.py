"""Turning cases into run_case messages on their capability queue: as parts of a task's chord (execution.dispatch),
or one by one when a case is handed out again (its node could not run it)."""

import logging

from execution.events import case_token
from execution.models import Case, Task
from messaging import broker
from nodes.capabilities import capability_queue
from worker.protocol import CaseJob, message_priority

logger = logging.getLogger(__name__)

# Which case runs next is decided as cases are handed out (execution.dispatch): in the broker they wait at one
# priority, in the order they came, so a message already queued is never passed by later ones (a priority that
# ages in the database cannot age in the broker). A case handed out again after a fault goes ahead of them: it
# has waited longest.
IN_TURN = message_priority(5)
AHEAD = message_priority(9)


def case_jobs(task: Task, cases: list[tuple[int, str]]) -> list[dict]:
    """The run_case message bodies for (case id, name) pairs of one task; each carries its case's token."""
    queue = capability_queue(product=task.product, tool=task.tool)
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
            queue=queue,
            token=case_token(case_id),
        ).to_message()
        for case_id, case_name in cases
    ]


def cases_publish_again(case_ids: list[int]) -> None:
    """Put these queued cases on their queues again, each as a message of its own (outside the task's chord:
    the report follows the database, which says when the last case has ended)."""
    cases = Case.objects.filter(pk__in=case_ids, status=Case.Status.QUEUED).select_related(
        "task__product", "task__tool"
    )
    for case in cases.order_by("pk"):
        task = case.task
        broker.publish_cases(
            queue=capability_queue(product=task.product, tool=task.tool),
            priority=AHEAD,
            jobs=case_jobs(task, [(case.pk, case.name)]),
        )
