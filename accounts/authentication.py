"""How an API request proves who sends it: a token (scripts) or the session (the browser)."""

import hashlib
import threading
import time

from django.conf import settings
from django.utils import timezone
from drf_spectacular.contrib.knox_auth_token import KnoxTokenScheme
from knox.auth import TokenAuthentication as KnoxTokenAuthentication
from knox.models import get_token_model


class TokenAuthentication(KnoxTokenAuthentication):
    """knox's hashed, expiring tokens, with what a busy API needs: a token verified in the last few seconds is
    taken again without the database (a revoked one stops working within TESTHUB_AUTH_CACHE_SECONDS on every web
    process, at once on the one that revoked it), and only the token at hand is checked for expiry (knox reads
    all of a user's tokens on every request; the reconciler deletes expired ones)."""

    _verified: dict[str, tuple[float, object, object]] = {}
    _lock = threading.Lock()

    def authenticate_credentials(self, token: bytes):
        key = hashlib.sha256(token).hexdigest()
        now = time.monotonic()
        seen = self._verified.get(key)
        if seen and seen[0] > now and (seen[2].expiry is None or seen[2].expiry > timezone.now()):
            return seen[1], seen[2]
        user, auth_token = super().authenticate_credentials(token)
        if settings.TESTHUB_AUTH_CACHE_SECONDS:
            with self._lock:
                if len(self._verified) > 10_000:
                    self._verified.clear()
                self._verified[key] = (now + settings.TESTHUB_AUTH_CACHE_SECONDS, user, auth_token)
        return user, auth_token

    def _cleanup_token(self, auth_token) -> bool:
        if auth_token.expiry is not None and auth_token.expiry < timezone.now():
            auth_token.delete()
            return True
        return False

    @classmethod
    def forget(cls, auth_token) -> None:
        """A revoked token: this process stops taking it at once."""
        with cls._lock:
            for key in [key for key, (_, _, cached) in cls._verified.items() if cached.pk == auth_token.pk]:
                del cls._verified[key]


def expired_tokens_delete() -> int:
    return get_token_model().objects.filter(expiry__lt=timezone.now()).delete()[0]


class TokenScheme(KnoxTokenScheme):
    """The API schema describes these tokens as knox's: `Authorization: Token <token>`."""

    target_class = TokenAuthentication
