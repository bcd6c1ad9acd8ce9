"""Celery's message consumer, reconnecting to a broker that went away within two seconds of its return.

Celery waits 2, 4, 6 ... up to 30 seconds between attempts, so after a long outage a worker could stay deaf
for half a minute after Redis is back, long enough for the control plane to think its machine died. Both
sides (test machines and the control worker) use this consumer through `celery_settings`.
"""

import logging

import kombu
from celery.worker.consumer.consumer import Consumer as CeleryConsumer
from celery.worker.state import maybe_shutdown

logger = logging.getLogger("testhub.worker")

RETRY_FIRST_SECONDS = 0.5
RETRY_STEP_SECONDS = 0.5
RETRY_MAX_SECONDS = 2
# One line when the broker goes away, then one about every minute until it is back.
_LOG_EVERY_ATTEMPTS = 30


class Consumer(CeleryConsumer):
    # Celery's Tasks bootstep sets it (None until it starts); celery-types' Consumer does not declare it.
    task_consumer: kombu.Consumer | None

    def ensure_connected(self, conn: kombu.Connection) -> kombu.Connection:
        attempts = 0

        def report(exc: Exception, interval: float) -> None:
            nonlocal attempts
            attempts += 1
            if attempts == 1 or attempts % _LOG_EVERY_ATTEMPTS == 0:
                logger.error("broker %s unreachable (%s); still trying every %g s", conn.as_uri(), exc, interval)

        # kombu takes these intervals as float seconds (its docstring says so); celery-types declares them int.
        connected = conn.ensure_connection(
            report,
            self.app.conf.broker_connection_max_retries,
            interval_start=RETRY_FIRST_SECONDS,  # type: ignore[arg-type]
            interval_step=RETRY_STEP_SECONDS,  # type: ignore[arg-type]
            interval_max=RETRY_MAX_SECONDS,
            callback=maybe_shutdown,
        )
        if attempts:
            logger.warning("broker %s reachable again after %s attempts", conn.as_uri(), attempts)
        self.first_connection_attempt = False
        return connected
