"""What a web process keeps of who is asking: signed-in users, verified API tokens.

A page that polls every second would otherwise cost a database round trip or three per request (the session's
user, their groups, a token) when nothing about them changed. They are kept while the "users" revision holds:
any ORM write to a user, a group, a group membership or a token moves it (messaging.revisions), so a password
changed, a user deactivated, a role taken away or a token revoked counts at once on every process. Writes that
go around the ORM move nothing; TESTHUB_AUTH_CACHE_SECONDS bounds how long those can go unseen (0 keeps
nothing).
"""

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from django.conf import settings

from messaging.revisions import USERS, revisions_read

_V = TypeVar("_V")


class KeptWhileUsersHold(Generic[_V]):
    def __init__(self, *, most: int = 10_000) -> None:
        self._kept: dict[Hashable, tuple[str, float, _V]] = {}
        self._lock = threading.Lock()
        self._most = most

    def get(self, key: Hashable, read: Callable[[], _V | None]) -> _V | None:
        """The value kept under `key` while it is good, else `read()` (kept when it is not None)."""
        seconds = settings.TESTHUB_AUTH_CACHE_SECONDS
        tokens = revisions_read((USERS,)) if seconds else None
        if tokens is None:  # nothing kept, or the revisions cannot be read: nothing may be reused
            return read()
        now = time.monotonic()
        kept = self._kept.get(key)
        if kept is not None and kept[0] == tokens[0] and kept[1] > now:
            return kept[2]
        value = read()
        if value is not None:
            with self._lock:
                if len(self._kept) >= self._most:
                    self._kept.clear()
                self._kept[key] = (tokens[0], now + seconds, value)
        return value

    def forget(self, key: Hashable) -> None:
        with self._lock:
            self._kept.pop(key, None)
