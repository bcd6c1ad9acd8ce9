"""A web process keeps who is asking (the session's user, their roles, a verified token) while nobody's account
changes, and counts a change on the very next request: a page polling every second costs no query, and a role
taken away or a token revoked anywhere still counts at once."""

from unittest import mock

import pytest
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.test import Client
from knox.models import AuthToken

from accounts import kept
from accounts.roles import LAB_MANAGERS, TESTERS
from tests.factories import TaskFactory

# Real commits: a revision moves when a transaction commits, and only then.
pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "a-long-test-password"


@pytest.fixture(autouse=True)
def _kept_as_in_a_web_process(settings):
    settings.TESTHUB_AUTH_CACHE_SECONDS = 300
    settings.TESTHUB_ANSWER_CACHE_SECONDS = 60


def _signed_in(user) -> Client:
    browser = Client()
    browser.force_login(user)
    return browser


def _webhook_shown(browser: Client, task) -> bool:
    response = browser.get(f"/api/tasks/{task.pk}/")
    assert response.status_code == 200
    return bool(response.json()["webhook_url"])


def test_a_page_asking_again_while_nothing_changed_costs_no_query(tester, django_assert_num_queries):
    task = TaskFactory()
    browser = _signed_in(tester)
    etag = browser.get(f"/api/tasks/{task.pk}/")["ETag"]
    with django_assert_num_queries(0):
        assert browser.get(f"/api/tasks/{task.pk}/", headers={"If-None-Match": etag}).status_code == 304


def test_a_signed_in_request_reads_the_cache_once_for_its_session_and_revisions(tester):
    task = TaskFactory()
    browser = _signed_in(tester)
    browser.get(f"/api/tasks/{task.pk}/")
    with mock.patch.object(cache, "get_many", wraps=cache.get_many) as reads:
        assert browser.get(f"/api/tasks/{task.pk}/").status_code == 200
    [keys] = [read.args[0] for read in reads.call_args_list]
    assert sorted(key.split(":")[0] if key.startswith("revision:") else "session" for key in keys) == [
        "revision",
        "revision",
        "revision",
        "revision",
        "session",
    ]


def test_a_role_given_counts_on_the_next_request(tester):
    task = TaskFactory(webhook_url="https://hooks.example.com/theirs")
    browser = _signed_in(tester)
    assert not _webhook_shown(browser, task)
    tester.groups.add(Group.objects.get(name=LAB_MANAGERS))
    assert _webhook_shown(browser, task)


def test_a_role_taken_away_counts_on_the_next_request(tester):
    browser = _signed_in(tester)
    assert browser.get("/api/products/").status_code == 200
    tester.groups.remove(Group.objects.get(name=TESTERS))
    assert browser.get("/api/products/").status_code == 403  # signed in, but no role


def test_a_deactivated_user_is_let_in_no_more(tester):
    browser = _signed_in(tester)
    assert browser.get("/api/products/").status_code == 200
    tester.is_active = False
    tester.save(update_fields=["is_active"])
    assert browser.get("/api/products/").status_code == 401


def test_a_token_revoked_by_another_web_process_opens_nothing_at_once(api, tester):
    token = api.post("/api/auth/token/", {"username": tester.username, "password": PASSWORD}).json()["token"]
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.get("/api/products/").status_code == 200
    AuthToken.objects.filter(user=tester).delete()  # as the process that served the logout does
    assert api.get("/api/products/").status_code == 401


def test_a_change_that_goes_around_the_orm_counts_once_the_bound_has_passed(tester, settings):
    browser = _signed_in(tester)
    assert browser.get("/api/products/").status_code == 200
    type(tester).objects.filter(pk=tester.pk).update(is_active=False)  # moves no revision
    assert browser.get("/api/products/").status_code == 200
    later = kept.time.monotonic() + settings.TESTHUB_AUTH_CACHE_SECONDS + 1
    with mock.patch.object(kept.time, "monotonic", return_value=later):
        assert browser.get("/api/products/").status_code == 401
