"""Records what the workers report, in batches, inside the control worker.

Workers push an event per case end (and per start, for cases that run a while) and a heartbeat onto a
Redis list. A thread in the control worker moves them in batches onto a processing list of its own,
writes each batch to PostgreSQL in one transaction, and only then drops them: if it dies half-way,
it records its processing list again when it restarts, and every write is conditional, so an event
recorded twice changes nothing. Batching is what keeps recording every case cheap next to running it.
"""

import json
import logging
import threading
import time

import redis
from celery import bootsteps
from django.db import close_old_connections

from worker.protocol import CONTROL_QUEUE, EVENTS_KEY

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
WAIT_SECONDS = 0.2
# After the first event of a batch, let the batch fill this long: a transaction per few hundred events,
# not per event, is what keeps recording cheap, and live state still shows well within a second.
GATHER_SECONDS = 0.15

# Moves up to ARGV[1] events from the tail of the shared list to the head of this recorder's own list.
_TAKE = """
local taken = {}
for i = 1, tonumber(ARGV[1]) do
  local event = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
  if not event then break end
  taken[#taken + 1] = event
end
return taken
"""


class EventRecorder(threading.Thread):
    def __init__(self, *, redis_url: str, name: str):
        super().__init__(name="testhub-event-recorder", daemon=True)
        self.client = redis.Redis.from_url(redis_url)
        self.processing_key = f"{EVENTS_KEY}:processing:{name}"
        self.take = self.client.register_script(_TAKE)
        self.stopping = threading.Event()
        self.next_sweep = 0.0

    def _sweep_when_due(self) -> None:
        """Mark silent nodes offline every few seconds: beside the heartbeats that bring them online."""
        if time.monotonic() < self.next_sweep:
            return
        from django.conf import settings

        from nodes.services import nodes_mark_offline

        close_old_connections()
        nodes_mark_offline()
        self.next_sweep = time.monotonic() + settings.TESTHUB_LIVENESS_SWEEP_SECONDS

    def run(self):
        while not self.stopping.is_set():
            try:
                self._record(self.client.lrange(self.processing_key, 0, -1)[::-1])  # left over from a crash
                while not self.stopping.is_set():
                    self._record(self._next_batch())
                    self._sweep_when_due()
            except Exception:
                logger.exception("event recorder failed; retrying in 1 s (its events are kept)")
                time.sleep(1)

    def _next_batch(self) -> list[bytes]:
        """Up to BATCH_SIZE events; unless that many are waiting, those that arrive within GATHER_SECONDS."""
        batch = self.take(keys=[EVENTS_KEY, self.processing_key], args=[BATCH_SIZE])
        if len(batch) == BATCH_SIZE:
            return batch
        if not batch:
            first = self.client.blmove(EVENTS_KEY, self.processing_key, WAIT_SECONDS, "RIGHT", "LEFT")
            if first is None:
                return []
            batch = [first]
        self.stopping.wait(GATHER_SECONDS)
        return [*batch, *self.take(keys=[EVENTS_KEY, self.processing_key], args=[BATCH_SIZE - len(batch)])]

    def _record(self, batch: list[bytes]) -> None:
        if not batch:
            return
        from execution.services import events_record, report_enqueue

        close_old_connections()
        outcome = events_record(events=[json.loads(event) for event in batch])
        self.client.delete(self.processing_key)
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
        self.recorder = EventRecorder(redis_url=worker.app.conf.broker_url, name=worker.hostname)
        self.recorder.start()

    def stop(self, worker):
        if self.recorder:
            self.recorder.stop()
            self.recorder.join(timeout=5)
