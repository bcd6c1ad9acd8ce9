from celery import shared_task
from django.db import InterfaceError, OperationalError

from reporting import services, webhooks
from reporting.models import Report


# PostgreSQL restarting or unreachable: try again shortly rather than lose the callback (acks_late acks it).
@shared_task(
    name="reporting.build_report",
    acks_late=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=None,
)
def build_report(task_id: int) -> None:
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
def send_webhook(report_id: int, url: str) -> None:
    webhooks.webhook_deliver(
        report=Report.objects.select_related("task__product", "task__tool").get(pk=report_id), url=url
    )
