from celery import shared_task

from reporting import services


@shared_task(name="reporting.build_report", acks_late=True)
def build_report(task_id: int) -> None:
    services.report_build(task_id=task_id)
