"""Beat's scheduler: django-celery-beat's (the schedule in the database, templates' cron entries included), but a
broker that is away is said once, then once a minute, instead of a traceback for every task due every second."""

import logging

from amqp.exceptions import RecoverableConnectionError
from celery.beat import SchedulingError
from django_celery_beat.schedulers import DatabaseScheduler
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from messaging.outage import Outage

logger = logging.getLogger(__name__)
_BROKER_AWAY = (OperationalError, RecoverableConnectionError, RedisError, ConnectionError)


class QuietDatabaseScheduler(DatabaseScheduler):
    def __init__(self, *args, **kwargs):
        self.outage = Outage(
            "sending scheduled tasks",
            meanwhile="each is sent again when it is next due, once the broker is back",
            log=logger,
        )
        super().__init__(*args, **kwargs)

    def apply_entry(self, entry, producer=None):
        try:
            self.apply_async(entry, producer=producer, advance=False)
        except SchedulingError as error:
            cause = _broker_away(error)
            if cause is None:
                logger.exception("could not send the scheduled task %s", entry.name)
                return
            self.outage.failing(cause)
            return
        self.outage.working()


def _broker_away(error: BaseException) -> BaseException | None:
    """The broker error behind `error`, if one is (celery re-raises what kombu raised, chained implicitly)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, _BROKER_AWAY):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
