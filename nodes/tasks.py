from celery import shared_task

from nodes import remote


@shared_task(name="nodes.run_operation", acks_late=True, ignore_result=True)
def run_operation(operation_id: int) -> None:
    """Only the operation's id travels: credentials are read from the database inside the control worker."""
    remote.operation_run(operation_id=operation_id)
