"""Records what the workers report, in batches, inside the control worker.

Workers send an event per case start and end (and a heartbeat) to the `testhub.events` queue. A thread
in the control worker drains it and writes each batch to PostgreSQL in one transaction, acknowledging
the messages only after the commit: a crash redelivers them, and every write is conditional, so a
redelivered event changes nothing. Batching is what keeps recording every case cheap next to the
cases themselves: one transaction per few hundred events instead of one per event.
"""

import contextlib
import logging
import threading
import time

from celery import bootsteps
from django.db import close_old_connections
from kombu import Connection, Queue

from worker.protocol import CONTROL_QUEUE, EVENTS_QUEUE

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
FLUSH_SECONDS = 0.2  # live state shows within about a second
# Events use their own unacked keys and a short visibility timeout: an event held by a recorder that
# died comes back within a minute, and case messages (with their long timeout) are never touched.
_EVENT_TRANSPORT = {
    "visibility_timeout": 60,
    "unacked_key": "testhub.events.unacked",
    "unacked_index_key": "testhub.events.unacked_index",
    "unacked_mutex_key": "testhub.events.unacked_mutex",
}
events_queue = Queue(EVENTS_QUEUE, routing_key=EVENTS_QUEUE, durable=True)


class EventRecorder(threading.Thread):
    def __init__(self, broker_url: str):
        super().__init__(name="testhub-event-recorder", daemon=True)
        self.broker_url = broker_url
        self.stopping = threading.Event()
        self.pending = []
        self.oldest = 0.0

    def run(self):
        while not self.stopping.is_set():
            try:
                self._consume()
            except Exception:
                logger.exception("event recorder lost its connection; reconnecting")
                self.pending.clear()  # unacknowledged: the broker hands them out again
                time.sleep(1)

    def _consume(self):
        with (
            Connection(self.broker_url, transport_options=_EVENT_TRANSPORT) as connection,
            connection.Consumer(events_queue, callbacks=[self._on_message], accept=["json"], prefetch_count=BATCH_SIZE),
        ):
            while not self.stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    connection.drain_events(timeout=FLUSH_SECONDS)
                if self.pending and (
                    len(self.pending) >= BATCH_SIZE or time.monotonic() - self.oldest >= FLUSH_SECONDS
                ):
                    self._flush()

    def _on_message(self, body, message):
        if not self.pending:
            self.oldest = time.monotonic()
        self.pending.append((body, message))

    def _flush(self):
        from execution.services import events_record, report_enqueue

        close_old_connections()
        outcome = events_record(events=[body for body, _ in self.pending])
        for _, message in self.pending:
            message.ack()
        self.pending.clear()
        for task_id in outcome.tasks_to_report:
            report_enqueue(task_id)

    def stop(self):
        self.stopping.set()


class RecorderStep(bootsteps.StartStopStep):
    """Runs the recorder in every worker that consumes the control queue."""

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.recorder = None

    def start(self, worker):
        if CONTROL_QUEUE not in worker.app.amqp.queues.consume_from:
            return
        self.recorder = EventRecorder(worker.app.conf.broker_url)
        self.recorder.start()

    def stop(self, worker):
        if self.recorder:
            self.recorder.stop()
            self.recorder.join(timeout=5)
