"""Flower as TestHub runs it: `python -m testhub.flower --port=5555` (the options of `celery flower`).

Flower names the queues on its broker page after the ones the workers that answer its broadcasts consume. The
test machines' workers do not answer (their broker users may not write into Flower's reply queues), so its page
listed no capability queue. Here it also lists every capability queue in use (the ones /metrics measures), and
shows their lengths as Flower reads them from the broker.
"""

import sys
from concurrent.futures import ThreadPoolExecutor

from flower.views import BaseHandler

_answered = BaseHandler.get_active_queue_names
# Flower's handlers run on its event loop, where Django refuses database queries: they run on this thread.
_database = ThreadPoolExecutor(max_workers=1, thread_name_prefix="testhub-flower-db")


def queue_names(handler: BaseHandler) -> list[str]:
    return sorted({*_answered(handler), *_database.submit(_in_use).result(timeout=10)})


def _in_use() -> list[str]:
    from django.db import close_old_connections

    from execution.selectors import capability_queues_in_use

    close_old_connections()  # one the database dropped is replaced, not reused
    return capability_queues_in_use()


def main() -> None:
    from celery.bin.celery import main as celery

    BaseHandler.get_active_queue_names = queue_names
    sys.argv = ["celery", "-A", "testhub", "flower", *sys.argv[1:]]
    celery()


if __name__ == "__main__":
    main()
