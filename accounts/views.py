"""Signing in: tokens for scripts (hashed at rest, expiring: django-rest-knox) and throttled logins.

POST /api/auth/token/ with a username and password gives a token that expires after TESTHUB_TOKEN_TTL_HOURS;
POST /api/auth/token/logout/ revokes the token it is sent with. Both logins (token and the browsable API's
session form) are throttled per client address (TESTHUB_LOGIN_RATE) and per account (TESTHUB_LOGIN_ACCOUNT_RATE), so
passwords cannot be guessed at speed from one machine or many.
"""

import hashlib
from collections.abc import Mapping

from django.contrib.auth import login as auth_login
from django.contrib.auth import logout as auth_logout
from django.contrib.auth import views as django_auth
from django.http import HttpResponse
from django.middleware.csrf import get_token
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_protect, ensure_csrf_cookie
from drf_spectacular.utils import extend_schema, extend_schema_view, inline_serializer
from knox.views import LoginView as KnoxLoginView
from knox.views import LogoutView as KnoxLogoutView
from rest_framework import serializers, status
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from accounts.authentication import TokenAuthentication
from accounts.roles import is_lab_manager, is_tester


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


@extend_schema_view(post=extend_schema(request=None, responses={204: None}))
class TokenLogoutView(KnoxLogoutView):
    """Revoke the token this request is signed with (every web process stops taking it at once: accounts.kept)."""

    authentication_classes = [TokenAuthentication]


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


# --- the browser's session: the web front end signs in with a cookie and CSRF, scripts use tokens --------------


class UserSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    roles = serializers.ListField(child=serializers.ChoiceField(choices=["lab_manager", "tester"]))
    is_lab_manager = serializers.BooleanField()


def user_answer(user) -> dict:
    roles = [role for role, has in (("lab_manager", is_lab_manager(user)), ("tester", is_tester(user))) if has]
    return {"id": user.pk, "username": user.get_username(), "roles": roles, "is_lab_manager": "lab_manager" in roles}


class CsrfView(APIView):
    """Sets the `csrftoken` cookie the front end sends back in `X-CSRFToken` on every change."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(responses=inline_serializer("Csrf", {"csrfToken": serializers.CharField()}))
    @method_decorator(ensure_csrf_cookie)
    def get(self, request):
        return Response({"csrfToken": get_token(request)})


class SessionLoginApiView(APIView):
    """Sign in for the browser: a session cookie (CSRF-checked like every change the session makes afterwards)."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = LOGIN_THROTTLES

    @extend_schema(request=AuthTokenSerializer, responses=UserSerializer)
    @method_decorator(csrf_protect)
    def post(self, request):
        credentials = AuthTokenSerializer(data=request.data, context={"request": request})
        if not credentials.is_valid():
            return Response(
                {"detail": "That username and password do not match an account.", "code": "invalid_credentials"},
                status=status.HTTP_400_BAD_REQUEST,
            )
        user = credentials.validated_data["user"]
        auth_login(request._request, user)
        return Response(user_answer(user))


class SessionLogoutView(APIView):
    """End the browser's session."""

    permission_classes = [AllowAny]

    @extend_schema(request=None, responses={204: None})
    def post(self, request):
        auth_logout(request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    """Who is signed in, and their roles (401 when nobody is)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses=UserSerializer)
    def get(self, request):
        return Response(user_answer(request.user))
