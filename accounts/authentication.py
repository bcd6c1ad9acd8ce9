"""How an API request proves who sends it: a token (scripts) or the session (the browser)."""

import hashlib

from django.utils import timezone
from drf_spectacular.contrib.knox_auth_token import KnoxTokenScheme
from knox.auth import TokenAuthentication as KnoxTokenAuthentication
from knox.models import get_token_model

from accounts.kept import KeptWhileUsersHold


class TokenAuthentication(KnoxTokenAuthentication):
    """knox's hashed, expiring tokens, with what a busy API needs: a verified token is taken again without the
    database while nobody's account or tokens change (accounts.kept: a token revoked anywhere stops working at
    once everywhere), and only the token at hand is checked for expiry (knox reads all of a user's tokens on
    every request; the reconciler deletes expired ones)."""

    _verified: KeptWhileUsersHold[tuple[object, object]] = KeptWhileUsersHold()

    def authenticate_credentials(self, token: bytes):
        key = hashlib.sha256(token).hexdigest()
        verified = self._verified.get(key, lambda: self._verify(token))
        assert verified is not None  # knox raises AuthenticationFailed rather than verify nothing
        user, auth_token = verified
        if auth_token.expiry is not None and auth_token.expiry <= timezone.now():
            self._verified.forget(key)
            return self._verify(token)  # expired since: knox deletes it and refuses
        return user, auth_token

    def _verify(self, token: bytes) -> tuple[object, object]:
        return super().authenticate_credentials(token)

    def _cleanup_token(self, auth_token) -> bool:
        if auth_token.expiry is not None and auth_token.expiry < timezone.now():
            auth_token.delete()
            return True
        return False


def expired_tokens_delete() -> int:
    return get_token_model().objects.filter(expiry__lt=timezone.now()).delete()[0]


class TokenScheme(KnoxTokenScheme):
    """The API schema describes these tokens as knox's: `Authorization: Token <token>`."""

    target_class = TokenAuthentication
