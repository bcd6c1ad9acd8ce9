"""Signing in: tokens for scripts (hashed at rest, expiring: django-rest-knox) and throttled logins.

POST /api/auth/token/ with a username and password gives a token that expires after TESTHUB_TOKEN_TTL_HOURS;
POST /api/auth/token/logout/ revokes the token it is sent with. Both logins (token and the browsable API's
session form) are throttled per client address (TESTHUB_LOGIN_RATE) and per account (TESTHUB_LOGIN_ACCOUNT_RATE), so
passwords cannot be guessed at speed from one machine or many.
"""

import hashlib
from collections.abc import Mapping

from django.contrib.auth import views as django_auth
from django.http import HttpResponse
from drf_spectacular.utils import extend_schema, inline_serializer
from knox.views import LoginView as KnoxLoginView
from knox.views import LogoutView as KnoxLogoutView
from rest_framework import serializers
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.permissions import AllowAny
from rest_framework.throttling import SimpleRateThrottle

from accounts.authentication import TokenAuthentication


class LoginRateThrottle(SimpleRateThrottle):
    """Logins per client address, in the shared cache (so every web process counts the same attempts). The address
    is the connection's own unless TESTHUB_TRUSTED_PROXIES says how many proxies in front of TestHub append to
    X-Forwarded-For: a header a client writes itself never picks its own bucket."""

    scope = "login"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class LoginAccountRateThrottle(SimpleRateThrottle):
    """Logins per account, from any number of addresses: guessing one user's password from many machines."""

    scope = "login_account"

    def get_cache_key(self, request, view):
        data = request.data if hasattr(request, "data") else request.POST  # DRF's request, or Django's form post
        username = data.get("username") if isinstance(data, Mapping) else None
        if not isinstance(username, str) or not username.strip():
            return None
        digest = hashlib.blake2b(username.strip().lower().encode(), digest_size=16).hexdigest()
        return self.cache_format % {"scope": self.scope, "ident": digest}


LOGIN_THROTTLES = [LoginRateThrottle, LoginAccountRateThrottle]


class TokenLoginView(KnoxLoginView):
    """Exchange a username and password for an API token."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = LOGIN_THROTTLES

    @extend_schema(
        request=AuthTokenSerializer,
        responses=inline_serializer("Token", {"token": serializers.CharField(), "expiry": serializers.DateTimeField()}),
    )
    def post(self, request, format=None):
        credentials = AuthTokenSerializer(data=request.data, context={"request": request})
        credentials.is_valid(raise_exception=True)
        request.user = credentials.validated_data["user"]
        return super().post(request, format=format)


class TokenLogoutView(KnoxLogoutView):
    """Revoke the token this request is signed with."""

    authentication_classes = [TokenAuthentication]

    @extend_schema(request=None, responses={204: None})
    def post(self, request, format=None):
        TokenAuthentication.forget(request.auth)
        return super().post(request, format=format)


class SessionLoginView(django_auth.LoginView):
    """The browsable API's sign-in form, throttled like the token login."""

    template_name = "rest_framework/login.html"

    def post(self, request, *args, **kwargs):
        for throttle in (throttle_class() for throttle_class in LOGIN_THROTTLES):
            if not throttle.allow_request(request, self):
                wait = int(throttle.wait() or 60)
                return HttpResponse(
                    f"Too many sign-in attempts; try again in {wait} s.", status=429, headers={"Retry-After": str(wait)}
                )
        return super().post(request, *args, **kwargs)
