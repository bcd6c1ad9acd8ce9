"""GET answers kept by the revisions they were built from (messaging.revisions).

The web front end asks for the same lists every second, and most of the time nothing in them changed. An
answer is named by what it depends on: the URL, the user and their roles, the media type, and the revision
of each topic the view reads. That name is its ETag: a client that sends it back in If-None-Match gets a 304
without a query. Otherwise each web process keeps the rendered bytes of recent answers and serves them again
while the name holds. A write anywhere in a topic moves its revision, so the next request builds afresh;
TESTHUB_ANSWER_CACHE_SECONDS bounds how long an answer is kept even then (0 keeps none).
"""

import hashlib
import threading

from cachetools import TTLCache
from django.conf import settings
from django.http import HttpResponse
from django.utils.cache import patch_cache_control
from rest_framework import status
from rest_framework.renderers import JSONRenderer

from accounts.roles import role_names
from messaging.revisions import revisions_read

_kept: TTLCache | None = None
_kept_lock = threading.Lock()
_kept_settings: tuple[int, int] | None = None


def _store() -> TTLCache | None:
    global _kept, _kept_settings
    wanted = (settings.TESTHUB_ANSWER_CACHE_SECONDS, settings.TESTHUB_ANSWER_CACHE_BYTES)
    if wanted != _kept_settings:
        _kept_settings = wanted
        _kept = TTLCache(maxsize=wanted[1], ttl=wanted[0], getsizeof=len) if wanted[0] > 0 else None
    return _kept


class RevisionCachedAnswers:
    """For API views: `list` and `retrieve` answers kept while `answer_topics`' revisions hold."""

    answer_topics: tuple[str, ...] = ()

    def list(self, request, *args, **kwargs):
        return self._answer(super().list, request, *args, **kwargs)

    def retrieve(self, request, *args, **kwargs):
        return self._answer(super().retrieve, request, *args, **kwargs)

    def answer_audience(self, request) -> str:
        """Who the answer is for: by default one user with their roles. A view whose answer is the same for more
        people says so, and they share one kept answer (and its ETag)."""
        user = request.user
        return f"user {user.pk}: {','.join(sorted(role_names(user)))}"

    def _answer(self, build, request, *args, **kwargs):
        store = _store()
        revisions = revisions_read(self.answer_topics) if store is not None else None
        if revisions is None or type(request.accepted_renderer) is not JSONRenderer:
            return build(request, *args, **kwargs)
        name = "\n".join(
            [request.build_absolute_uri(), self.answer_audience(request), request.accepted_media_type, *revisions]
        )
        etag = f'"{hashlib.blake2b(name.encode(), digest_size=16).hexdigest()}"'
        if etag in _if_none_match(request):
            return _with_etag(HttpResponse(status=status.HTTP_304_NOT_MODIFIED), etag)
        with _kept_lock:
            content = store.get(etag)
        if content is None:
            response = build(request, *args, **kwargs)
            if response.status_code != status.HTTP_200_OK:
                return response
            content = request.accepted_renderer.render(
                response.data, request.accepted_media_type, self.get_renderer_context()
            )
            if len(content) <= store.maxsize // 8:  # one huge answer must not push out all the others
                with _kept_lock:
                    store[etag] = content
        return _with_etag(HttpResponse(content, content_type=request.accepted_media_type), etag)


def _if_none_match(request) -> set[str]:
    header = request.headers.get("If-None-Match", "")
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def _with_etag(response: HttpResponse, etag: str) -> HttpResponse:
    response["ETag"] = etag
    patch_cache_control(response, private=True, no_cache=True)  # the browser asks each time, with the tag
    return response
