import copy
import uuid

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from accounts.backends import CachedUserBackend
from tests.factories import LabManagerFactory, TesterFactory
from tests.lab import Lab
from tests.machines import fresh_machine, machines  # noqa: F401  (fixtures: simulated machines over SSH)
from tests.servers import private_redis  # noqa: F401  (fixture: a Redis server of the test's own)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """Each test run gets a database of its own, so parallel runs on one server never meet."""
    from django.conf import settings

    test_settings = settings.DATABASES["default"].setdefault("TEST", {})
    test_settings["NAME"] = f"test_testhub_{uuid.uuid4().hex[:8]}"


@pytest.fixture(autouse=True, scope="session")
def _runs_on_postgresql(django_db_setup, django_db_blocker):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.exit("The tests run on PostgreSQL: use ./bin/test, or set DATABASE_URL=postgres://...", returncode=2)


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(autouse=True)
def _cache_of_the_tests_own(settings):
    # Login throttles count in the cache: each test starts with none counted (the real cache is in Redis).
    from django.core.cache import cache

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    cache.clear()


@pytest.fixture(autouse=True)
def _roles_and_tokens_read_afresh(settings):
    # Tests change roles and revoke tokens inside a test transaction, whose commit (which moves the "users"
    # revision) never comes; tests/test_kept_users.py covers what is kept, with real commits.
    settings.TESTHUB_AUTH_CACHE_SECONDS = 0


@pytest.fixture(autouse=True)
def _answers_built_afresh(settings):
    # A test's writes commit only with the test's transaction; tests/test_answers.py covers kept answers.
    settings.TESTHUB_ANSWER_CACHE_SECONDS = 0
    from execution.api import _task_owner

    _task_owner.cache_clear()  # ids come round again when a transactional test empties the tables


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Factories make many users; the real hasher is slow on purpose.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


class Api(APIClient):
    """An API client that signs every request in as `as_user`'s user, as a real request would have it: read
    afresh, or kept by the web process when TESTHUB_AUTH_CACHE_SECONDS keeps users (accounts.kept)."""

    _user = None

    def as_user(self, user):
        self._user = user
        return self

    def request(self, **kwargs):
        if self._user is not None:
            if settings.TESTHUB_AUTH_CACHE_SECONDS:
                self.force_authenticate(CachedUserBackend().get_user(self._user.pk))
            else:
                fresh = copy.copy(self._user)
                fresh.__dict__.pop("_testhub_groups", None)  # roles are read once per user object
                self.force_authenticate(fresh)
        return super().request(**kwargs)


@pytest.fixture
def api(db):
    return Api()


def counts_kept_check() -> None:
    """Every task's kept case counts equal a recount of its cases."""
    from execution.counts import COUNTED, task_node_counts, task_node_recount
    from execution.models import Task

    for task in Task.objects.with_recounted_cases():
        kept = [getattr(task, field) for field in ["cases_total", *COUNTED]]
        recounted = [getattr(task, field.replace("cases_", "recounted_")) for field in ["cases_total", *COUNTED]]
        assert kept == recounted, f"task {task.pk}: kept {kept} but its cases count {recounted}"
        assert task_node_counts(task.pk) == task_node_recount(task.pk), f"task {task.pk}: its nodes' counts drifted"


@pytest.fixture
def keys(settings):
    """Swap in known encryption keys (the first encrypts) and forget them again after the test."""
    from nodes import crypto

    def use(*new_keys):
        settings.ENCRYPTION_KEYS = list(new_keys)
        crypto.reset_keys()

    yield use
    crypto.reset_keys()


@pytest.fixture
def hearing(settings):
    """The control plane has heard the workers long enough to judge a node silent (as a running recorder says)."""
    import time

    from messaging import broker

    broker.hearing_restored(at=time.time() - 3600)


@pytest.fixture
def tester(db):
    return TesterFactory()


@pytest.fixture
def lab_manager(db):
    return LabManagerFactory()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def lab(transactional_db, tmp_path, request):
    """A real lab: control worker and test-machine workers as processes, stopped after the test.

    @pytest.mark.lab(visibility_timeout=N) shortens the time Redis waits before it hands out again
    a case whose worker died, here and in the lab's processes alike.
    """
    from testhub.celery import app

    if "private_redis" in request.fixturenames:
        request.getfixturevalue("private_redis")  # first: the lab's processes use it
    marker = request.node.get_closest_marker("lab")
    visibility_timeout = marker.kwargs.get("visibility_timeout", 3600) if marker else 3600
    transport = app.conf.broker_transport_options
    app.conf.broker_transport_options = {**transport, "visibility_timeout": visibility_timeout}
    running = Lab(tmp_path, visibility_timeout=visibility_timeout)
    yield running
    running.stop()
    app.conf.broker_transport_options = transport
    if getattr(request.node, "report_call", None) and request.node.report_call.failed:
        print(running.logs())
    elif getattr(request.node, "report_call", None):
        counts_kept_check()  # whatever the test did to the lab, each task's kept counts equal its cases
