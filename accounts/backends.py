"""The browser's signed-in user, kept by each web process while nobody's account changes (accounts.kept).

Django checks the session's hash against the user's on every request, so a password changed ends the session
at once: the change moves the "users" revision, and the user is read afresh."""

from django.contrib.auth.backends import ModelBackend

from accounts.kept import KeptWhileUsersHold


class CachedUserBackend(ModelBackend):
    _users: KeptWhileUsersHold = KeptWhileUsersHold()

    def get_user(self, user_id):
        return self._users.get(user_id, lambda: super(CachedUserBackend, self).get_user(user_id))
