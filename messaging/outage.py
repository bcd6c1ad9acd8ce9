"""Saying that something outside stopped working without filling the log: once when it stops, once a minute while
it stays down, and once when it is back."""

import logging
import time

logger = logging.getLogger(__name__)


class Outage:
    """Says when something stops working (once), that it still does not (once a minute), and when it is back."""

    def __init__(self, what: str, *, meanwhile: str, every_seconds: float = 60, log: logging.Logger = logger):
        self.what = what
        self.meanwhile = meanwhile
        self.every_seconds = every_seconds
        self.log = log
        self.since: float | None = None
        self.next_report = 0.0

    def failing(self, error: BaseException) -> None:
        now = time.monotonic()
        if self.since is None:
            self.since, self.next_report = now, now + self.every_seconds
            self.log.error("%s stopped: %s; %s", self.what, error, self.meanwhile)
        elif now >= self.next_report:
            self.next_report = now + self.every_seconds
            self.log.error("%s still stopped after %.0f s: %s", self.what, now - self.since, error)

    def working(self) -> bool:
        """True when this ends an outage."""
        if self.since is None:
            return False
        self.log.warning("%s working again after %.0f s", self.what, time.monotonic() - self.since)
        self.since = None
        return True
