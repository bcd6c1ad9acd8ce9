"""The TestHub agent that runs on a test machine: a Celery worker with no Django in it."""

from pathlib import Path

__version__ = "1.0.0"


def release() -> str:
    """What this worker reports itself as: the release a deploy shipped (version+digest of the code), or the
    bare version when it runs from a checkout."""
    shipped = Path(__file__).with_name("RELEASE")
    return shipped.read_text().strip() if shipped.exists() else __version__
