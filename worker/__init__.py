"""The TestHub agent that runs on a test machine: a Celery worker with no Django in it."""

__version__ = "1.0.0"
