"""Records what the workers report, in batches, inside the control worker.

Workers push an event per case end (and per start, for cases that run a while) and a heartbeat onto a
Redis list. A thread in each control worker moves them in batches onto a processing list of its own,
records each batch (execution.recording.events_take), and only then drops it: if the thread dies half-way,
its processing list is recorded again when it restarts, or, if its control worker is gone for good, by
another control worker, which adopts the list once the owner's liveness key has expired. Every write is
conditional, so an event recorded twice changes nothing. When Redis or PostgreSQL is away, the batch waits
where it is; the outage is logged once, then once a minute, and the thread carries on when it is over.
"""

import logging
import threading
import time

import redis
from celery import bootsteps
from django.conf import settings
from django.db import close_old_connections

from execution.recording import DatabaseUnavailable, events_take
from messaging.outage import Outage
from worker.protocol import CONTROL_QUEUE, EVENTS_KEY

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
WAIT_SECONDS = 0.2
# After the first event of a batch, let the batch fill this long: a transaction per few hundred events,
# not per event, is what keeps recording cheap, and live state still shows well within a second.
GATHER_SECONDS = 0.15
RECORDERS_KEY = "testhub:recorders"  # the names of every recorder that ever ran: whose lists may be adopted

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


def processing_key(name: str) -> str:
    return f"{EVENTS_KEY}:processing:{name}"


def _alive_key(name: str) -> str:
    return f"testhub:recorder-alive:{name}"


class EventRecorder(threading.Thread):
    def __init__(self, *, redis_url: str, name: str):
        super().__init__(name="testhub-event-recorder", daemon=True)
        self.recorder_name = name
        self.client = redis.Redis.from_url(redis_url)
        self.processing_key = processing_key(name)
        self.take = self.client.register_script(_TAKE)
        self.stopping = threading.Event()
        self.outage = Outage("event recording", meanwhile="its events are kept and it retries every second", log=logger)
        self.next_adoption = 0.0

    def run(self):
        while not self.stopping.is_set():
            try:
                # A connection the database dropped (an outage) is replaced here, before anything uses it: the
                # hearing note below reads nodes even when no events are waiting.
                close_old_connections()
                self._register()
                self._record(self._own_list())  # left over from a crash, or from an outage
                self._note_hearing()
                while not self.stopping.is_set():
                    self._record(self._next_batch())
                    if self.outage.working():
                        self._note_hearing()
                    self._keep_alive()
                    self._adopt_orphans_when_due()
            except (redis.RedisError, DatabaseUnavailable) as error:
                self.outage.failing(error)
                self.stopping.wait(1)
            except Exception as error:
                logger.exception("event recorder failed; retrying in 1 s (its events are kept)")
                self.outage.failing(error)
                self.stopping.wait(1)

    def _register(self) -> None:
        with self.client.pipeline() as pipe:
            pipe.sadd(RECORDERS_KEY, self.recorder_name)
            pipe.set(_alive_key(self.recorder_name), 1, ex=settings.TESTHUB_RECORDER_ALIVE_SECONDS)
            pipe.execute()

    def _keep_alive(self) -> None:
        self.client.set(_alive_key(self.recorder_name), 1, ex=settings.TESTHUB_RECORDER_ALIVE_SECONDS)

    def _note_hearing(self) -> None:
        """Recording (again): from now on silence can be judged; and if Redis was restarted, the machines'
        broker users went with it, and their workers cannot sign in until they are made again."""
        from messaging import broker
        from nodes.services import node_broker_users_sync

        broker.hearing_restored(client=self.client)
        node_broker_users_sync()

    def _own_list(self) -> list[bytes]:
        return self.client.lrange(self.processing_key, 0, -1)[::-1]  # oldest first

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
        """Record the batch, then drop this recorder's list."""
        if not batch:
            return
        from execution.dispatch import capabilities_dispatch
        from execution.services import report_enqueue

        close_old_connections()
        outcome = events_take(received=batch)
        self.client.delete(self.processing_key)
        for task_id in sorted(outcome.tasks_to_report):
            report_enqueue(task_id)
        if outcome.tasks_with_ended_cases:  # their slots are free: the next cases go out now
            capabilities_dispatch(task_ids=outcome.tasks_with_ended_cases)

    def _adopt_orphans_when_due(self) -> None:
        """The processing lists of recorders whose control worker is gone for good become this one's."""
        if time.monotonic() < self.next_adoption:
            return
        self.next_adoption = time.monotonic() + min(10, settings.TESTHUB_RECORDER_ALIVE_SECONDS / 2)
        for raw_name in self.client.smembers(RECORDERS_KEY):
            name = raw_name.decode()
            if name == self.recorder_name or self.client.exists(_alive_key(name)):
                continue
            orphan = processing_key(name)
            if self.client.exists(orphan):
                # Only into an empty list of ours (it is, between batches): RENAMENX keeps the order, and only
                # one recorder can win it.
                if not self.client.renamenx(orphan, self.processing_key):
                    continue
                logger.warning("recorder %s is gone; recording the events it left", name)
                self._record(self._own_list())
            self.client.srem(RECORDERS_KEY, name)

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
