from celery import shared_task

from execution import services


@shared_task(name="execution.dispatch_task", acks_late=True, ignore_result=True)
def dispatch_task(task_id: int) -> None:
    services.task_dispatch(task_id=task_id)


@shared_task(name="execution.run_template", acks_late=True, ignore_result=True)
def run_template(template_id: int) -> None:
    services.template_run_scheduled(template_id=template_id)


@shared_task(name="execution.reconcile", acks_late=True, ignore_result=True)
def reconcile() -> None:
    services.reconcile()
