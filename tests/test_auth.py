"""Signing in: tokens that expire and can be revoked, logins throttled, bodies bounded before parsing."""

from datetime import timedelta
from unittest import mock

import pytest
from django.test import Client
from django.utils import timezone
from knox.models import AuthToken

from accounts.views import LoginAccountRateThrottle, LoginRateThrottle

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-test-password"


def _token(api, user) -> str:
    response = api.post("/api/auth/token/", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 200, response.content
    return response.json()["token"]


def test_a_token_says_when_it_expires_and_is_stored_only_hashed(api, tester):
    response = api.post("/api/auth/token/", {"username": tester.username, "password": PASSWORD})
    body = response.json()
    assert body["expiry"] and body["token"]
    stored = AuthToken.objects.get(user=tester)
    assert body["token"] not in (stored.digest, stored.token_key)


def test_an_expired_token_opens_nothing(api, tester):
    token = _token(api, tester)
    AuthToken.objects.filter(user=tester).update(expiry=timezone.now() - timedelta(seconds=1))
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.get("/api/products/").status_code == 401


def test_the_token_lifetime_is_a_setting(api, tester, settings):
    settings.REST_KNOX = {"TOKEN_TTL": timedelta(hours=2), "AUTH_HEADER_PREFIX": "Token"}
    _token(api, tester)
    expiry = AuthToken.objects.get(user=tester).expiry
    assert timedelta(minutes=119) < expiry - timezone.now() <= timedelta(hours=2)


def test_a_revoked_token_opens_nothing(api, tester):
    token = _token(api, tester)
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.post("/api/auth/token/logout/").status_code == 204
    assert api.get("/api/products/").status_code == 401


def test_guessing_passwords_for_a_token_is_throttled(api, tester, settings):
    for _ in range(10):
        assert api.post("/api/auth/token/", {"username": tester.username, "password": "guess"}).status_code == 400
    response = api.post("/api/auth/token/", {"username": tester.username, "password": PASSWORD})
    assert response.status_code == 429 and "Retry-After" in response


def test_guessing_passwords_on_the_sign_in_form_is_throttled(tester):
    client = Client()
    for _ in range(10):
        client.post("/api/auth/login/", {"username": tester.username, "password": "guess"})
    response = client.post("/api/auth/login/", {"username": tester.username, "password": PASSWORD})
    assert response.status_code == 429 and "try again" in response.content.decode()


def test_signing_in_on_the_form_returns_to_the_page_it_came_from(tester):
    client = Client()
    response = client.post(
        "/api/auth/login/?next=/api/tasks/", {"username": tester.username, "password": PASSWORD, "next": "/api/tasks/"}
    )
    assert response.status_code == 302 and response["Location"] == "/api/tasks/"


def test_a_huge_json_body_from_anyone_is_refused_unread(api):
    body = b'{"username": "' + b"x" * (40 * 1024 * 1024) + b'"}'
    response = api.generic("POST", "/api/auth/token/", body, content_type="application/json")
    assert response.status_code == 413 and "at most" in response.json()["detail"]


def test_a_signed_in_clients_body_is_bounded_too(api, tester, settings):
    settings.TESTHUB_MAX_JSON_BYTES = 1000
    body = b'{"name": "' + b"x" * 2000 + b'"}'
    response = api.as_user(tester).generic("POST", "/api/tasks/", body, content_type="application/json")
    assert response.status_code == 413


def test_metrics_refuse_a_non_ascii_bearer_token_instead_of_failing(api, settings):
    settings.TESTHUB_METRICS_TOKEN = "s3cret"
    response = api.get("/metrics", HTTP_AUTHORIZATION="Bearer sécrét")
    assert response.status_code in (401, 403)


def test_a_forged_forwarded_for_header_does_not_escape_the_login_throttle(api, tester):
    for attempt in range(10):
        headers = {"HTTP_X_FORWARDED_FOR": f"198.51.100.{attempt}"}
        assert (
            api.post("/api/auth/token/", {"username": tester.username, "password": "guess"}, **headers).status_code
            == 400
        )
    response = api.post(
        "/api/auth/token/", {"username": tester.username, "password": PASSWORD}, HTTP_X_FORWARDED_FOR="203.0.113.9"
    )
    assert response.status_code == 429


def test_guessing_one_accounts_password_from_many_addresses_is_throttled(api, tester):
    with (
        mock.patch.object(LoginRateThrottle, "rate", "1000/minute", create=True),
        mock.patch.object(LoginAccountRateThrottle, "rate", "5/hour", create=True),
    ):
        for attempt in range(5):
            body = {"username": tester.username, "password": "guess"}
            assert api.post("/api/auth/token/", body, REMOTE_ADDR=f"198.51.100.{attempt}").status_code == 400
        body = {"username": tester.username.upper(), "password": PASSWORD}
        assert api.post("/api/auth/token/", body, REMOTE_ADDR="203.0.113.9").status_code == 429
        other = {"username": "someone-else", "password": "guess"}
        assert api.post("/api/auth/token/", other, REMOTE_ADDR="203.0.113.9").status_code == 400
