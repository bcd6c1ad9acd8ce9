from celery import shared_task
from django.db import InterfaceError, OperationalError

# PostgreSQL restarting or unreachable: try again shortly rather than lose the message (acks_late acks it).
DATABASE_AWAY = (OperationalError, InterfaceError)
RETRY = {"autoretry_for": DATABASE_AWAY, "retry_backoff": 2, "retry_backoff_max": 60, "max_retries": None}


@shared_task(name="execution.dispatch_task", acks_late=True, ignore_result=True, **RETRY)
def dispatch_task(task_id: int) -> None:
    from execution import services

    services.task_dispatch(task_id=task_id)


@shared_task(name="execution.dispatch", acks_late=True, ignore_result=True)
def dispatch() -> None:
    from execution import dispatch

    dispatch.capabilities_dispatch()


@shared_task(name="execution.run_template", acks_late=True, ignore_result=True)
def run_template(template_id: int) -> None:
    from execution import services

    services.template_run_scheduled(template_id=template_id)


@shared_task(name="execution.reconcile", acks_late=True, ignore_result=True)
def reconcile() -> None:
    from execution import services

    services.reconcile()
