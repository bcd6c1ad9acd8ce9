"""The browser's signed-in user, read from the database at most every TESTHUB_AUTH_CACHE_SECONDS per web process.

A page polling every second would otherwise load its user (and then its groups) on every request. The same
bound as for API tokens applies: a user deactivated or removed stops being let in within those seconds on every
process; a changed password ends the session at once (Django checks the session's hash against the user's)."""

import threading
import time

from django.conf import settings
from django.contrib.auth.backends import ModelBackend


class CachedUserBackend(ModelBackend):
    _users: dict[int, tuple[float, object]] = {}
    _lock = threading.Lock()

    def get_user(self, user_id):
        seconds = settings.TESTHUB_AUTH_CACHE_SECONDS
        seen = self._users.get(user_id)
        now = time.monotonic()
        if seconds and seen and seen[0] > now:
            return seen[1]
        user = super().get_user(user_id)
        if seconds and user is not None:
            with self._lock:
                if len(self._users) > 10_000:
                    self._users.clear()
                self._users[user_id] = (now + seconds, user)
        return user
