import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError

from messaging.broker import BUILD_REPORT_TASK
from reporting import webhooks

logger = logging.getLogger(__name__)


# PostgreSQL restarting or unreachable: try again shortly rather than lose the callback (acks_late acks it).
@shared_task(
    name=BUILD_REPORT_TASK,
    acks_late=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=None,
)
def build_report(task_id: int) -> None:
    from reporting import services

    services.report_build(task_id=task_id)


@shared_task(
    name="reporting.send_webhook",
    acks_late=True,
    ignore_result=True,
    autoretry_for=(webhooks.DeliveryFailed,),
    retry_backoff=5,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=10,
)
def send_webhook(report_id: int, target: str) -> None:
    """`target` names the webhook (the lab's or the task's): URLs never travel in task messages."""
    from reporting.models import Report

    report = Report.objects.select_related("task__product", "task__tool").get(pk=report_id)
    try:
        webhooks.webhook_deliver(report=report, target=target)
    except webhooks.DeliveryRefused as refused:
        logger.warning("report %s: %s webhook not sent: %s", report_id, target, refused)
