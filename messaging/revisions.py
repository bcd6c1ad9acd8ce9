"""Revisions: a token per topic ("tasks", "catalog", "nodes", "users") that changes whenever anything the topic
covers changes, so an API answer built from a topic's rows is good until one of its tokens moves (see
api.answers, which caches answers by them), and a signed-in user, their roles or a verified API token read
while "users" held are still good while it holds (accounts).

Every ORM write to a RevisedModel moves its `revision_topic` once the transaction commits: save() and delete()
through the model, update, delete and the bulk writes through RevisedQuerySet. The few writes that go
around the ORM for speed (the recorder's batched UPDATE, the kept counts, COPY of new cases) call
revisions_bump themselves. Tokens live in the shared cache (Redis), so every web process sees every writer's.

A web request reads them once (RevisionsReadOncePerRequest): the first read takes every topic in one round trip,
and the user check and the answer's name reuse it, so a page that polls costs no more than that one read and its
session's (no database at all while nothing changed).
"""

import logging
import secrets
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any, TypeVar

from django.core.cache import cache
from django.db import models, transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

log = logging.getLogger(__name__)

TASKS, CATALOG, NODES, USERS = "tasks", "catalog", "nodes", "users"
_TOPICS = (TASKS, CATALOG, NODES, USERS)

# The tokens this web request has read so far (None outside a request: every read asks the cache).
_read_this_request: ContextVar[dict[str, str] | None] = ContextVar("revisions_read_this_request", default=None)

_M = TypeVar("_M", bound="RevisedModel")


def _key(topic: str) -> str:
    return f"revision:{topic}"


class _Bump:
    """The topics one transaction changed, moved together once it commits."""

    def __init__(self) -> None:
        self.topics: set[str] = set()

    def __call__(self) -> None:
        token = secrets.token_hex(8)
        try:
            cache.set_many({_key(topic): token for topic in self.topics}, timeout=None)
        except Exception as error:
            log.warning("Could not move the revisions of %s: %s", sorted(self.topics), error)


def revisions_bump(*topics: str) -> None:
    """Move the topics' revisions after the current transaction commits (at once outside one).

    A transaction registers one callback however many writes it makes: the recorder writes thousands of rows
    per batch and must not send thousands of cache writes.
    """
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        bump = _Bump()
        bump.topics.update(topics)
        bump()
        return
    # run_on_commit holds (savepoint ids, callback, robust) for the open transaction; a savepoint rolled
    # back takes its callbacks with it, and then the next write registers a new one.
    pending = next((func for _, func, _ in connection.run_on_commit if isinstance(func, _Bump)), None)
    if pending is None:
        pending = _Bump()
        transaction.on_commit(pending)
    pending.topics.update(topics)


def revisions_read(topics: tuple[str, ...]) -> tuple[str, ...] | None:
    """The topics' current tokens, or None when the cache cannot be read (then nothing may be reused).

    Within a web request, every topic is read at the first call and those tokens answer the later ones."""
    this_request = _read_this_request.get()
    if this_request is not None and all(topic in this_request for topic in topics):
        return tuple(this_request[topic] for topic in topics)
    tokens = _tokens_read(_TOPICS if this_request is not None else topics)
    if tokens is None:
        return None
    if this_request is not None:
        this_request.update(tokens)
    return tuple(tokens[topic] for topic in topics)


def revisions_read_along(key: str) -> Any:
    """The cache's value under `key` (None when absent or unreadable), read in one round trip with this
    request's revisions when it has not read them yet: the session's read brings them (accounts.sessions)."""
    this_request = _read_this_request.get()
    keys = [key] if this_request is None or this_request else [key, *(_key(topic) for topic in _TOPICS)]
    try:
        found = cache.get_many(keys)
    except Exception as error:
        log.warning("Could not read %s from the cache: %s", key, error)
        return None
    if this_request is not None and all(_key(topic) in found for topic in _TOPICS):
        this_request.update({topic: str(found[_key(topic)]) for topic in _TOPICS})
    return found.get(key)


def _tokens_read(topics: tuple[str, ...]) -> dict[str, str] | None:
    keys = {_key(topic): topic for topic in topics}
    try:
        found = cache.get_many(keys)
        missing = [key for key in keys if key not in found]
        if missing:  # never written, or the cache was emptied: start a token, keeping one a racer started
            for key in missing:
                cache.add(key, secrets.token_hex(8), timeout=None)
            found = cache.get_many(keys)
    except Exception as error:
        log.warning("Could not read the revisions of %s: %s", topics, error)
        return None
    if len(found) != len(keys):
        return None
    return {keys[key]: str(token) for key, token in found.items()}


class RevisionsReadOncePerRequest:
    """Middleware, ahead of the session's: the request's revisions are read once, when first needed.

    Tokens read at the start of a request are never newer than the rows it reads after, so what is kept under
    them is at worst built again once more, never served stale."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        reset = _read_this_request.set({})
        try:
            return self.get_response(request)
        finally:
            _read_this_request.reset(reset)


class RevisedQuerySet(models.QuerySet[_M]):
    """A queryset whose writes move its model's revision topic."""

    def _revised(self, changed: int) -> int:
        if changed:
            revisions_bump(self.model.revision_topic)
        return changed

    def update(self, **kwargs: Any) -> int:
        return self._revised(super().update(**kwargs))

    def delete(self) -> tuple[int, dict[str, int]]:
        deleted = super().delete()
        self._revised(deleted[0])
        return deleted

    def bulk_create(self, objs: Iterable[_M], *args: Any, **kwargs: Any) -> list[_M]:
        created = super().bulk_create(objs, *args, **kwargs)
        self._revised(len(created))
        return created

    def bulk_update(self, objs: Iterable[_M], fields: Iterable[str], *args: Any, **kwargs: Any) -> int:
        return self._revised(super().bulk_update(objs, fields, *args, **kwargs))


class RevisedModel(models.Model):
    """A model whose saves and deletes move `revision_topic` (cascades are the deleted row's own change)."""

    revision_topic: str = ""
    objects = RevisedQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        super().save(*args, **kwargs)
        revisions_bump(self.revision_topic)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        deleted = super().delete(*args, **kwargs)
        revisions_bump(self.revision_topic)
        return deleted


def _user_written(sender, **kwargs) -> None:
    revisions_bump(USERS)


def revisions_connect() -> None:
    """Users, groups and API tokens belong to django.contrib.auth and knox: their writes are heard
    through signals (usernames and roles show in answers; web processes keep users, roles and tokens they checked
    while "users" holds)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from knox.models import get_token_model

    user = get_user_model()
    post_save.connect(_user_written, sender=user, dispatch_uid="messaging.revisions.user_saved")
    post_delete.connect(_user_written, sender=user, dispatch_uid="messaging.revisions.user_deleted")
    m2m_changed.connect(_user_written, sender=user.groups.through, dispatch_uid="messaging.revisions.user_groups")
    post_save.connect(_user_written, sender=Group, dispatch_uid="messaging.revisions.group_saved")
    post_delete.connect(_user_written, sender=Group, dispatch_uid="messaging.revisions.group_deleted")
    post_delete.connect(_user_written, sender=get_token_model(), dispatch_uid="messaging.revisions.token_deleted")
