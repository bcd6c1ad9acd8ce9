"""The baseline for `manage.py bench`: the same no-op cases as a bare Celery chord.

Same broker, same settings as TestHub's workers, results kept; each task runs the same no-op command
a TestHub case runs, and the callback only counts and stamps the time it ran.
"""

import os
import subprocess
import time

from celery import Celery

from worker.protocol import celery_settings

BARE_QUEUE = "bench.bare"
DONE_KEY = "testhub:bench:bare-done"

app = Celery("bare", set_as_current=False)  # the control plane's app stays the current one
app.conf.update(
    celery_settings(
        broker_url=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        visibility_timeout=3600,
        result_expires=3600,
    )
)
app.conf.task_default_queue = BARE_QUEUE


@app.task(name="bare.noop")
def noop(command: str) -> str:
    subprocess.run([command], check=False)
    return "passed"


@app.task(name="bare.count")
def count(results: list) -> int:
    app.backend.client.set(DONE_KEY, f"{time.time()} {len(results)}")
    return len(results)
