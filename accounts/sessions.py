"""Sessions kept in the shared cache and written through to the database (Django's cached_db), whose read from
the cache brings the request's revisions along: a page polling every second costs one cache round trip."""

from django.contrib.sessions.backends import cached_db

from messaging.revisions import revisions_read_along


class SessionStore(cached_db.SessionStore):
    def load(self):
        data = revisions_read_along(self.cache_key)
        if data is not None:
            return data
        return super().load()  # not in the cache: read from the database, and put back in the cache
