from celery import shared_task


@shared_task(name="nodes.run_operation", acks_late=True, ignore_result=True)
def run_operation(operation_id: int) -> None:
    """Only the operation's id travels: credentials are read from the database inside the control worker."""
    from nodes import remote

    outcome = remote.operation_run(operation_id=operation_id)
    if outcome is remote.Outcome.MACHINE_BUSY:
        run_operation.apply_async((operation_id,), countdown=3)
    elif outcome is remote.Outcome.AWAITING_WORKER:
        verify_deploy.apply_async((operation_id,), countdown=1)


@shared_task(name="nodes.verify_deploy", acks_late=True, ignore_result=True)
def verify_deploy(operation_id: int) -> None:
    """A message per look, so waiting for a new worker never holds a control worker process."""
    from nodes import remote

    if not remote.deploy_verify(operation_id=operation_id):
        verify_deploy.apply_async((operation_id,), countdown=1)


@shared_task(name="nodes.sweep_liveness", ignore_result=True)
def sweep_liveness() -> None:
    from nodes import services

    services.liveness_sweep()


@shared_task(name="nodes.reconcile", acks_late=True, ignore_result=True)
def reconcile() -> None:
    from nodes import services

    services.nodes_reconcile()
