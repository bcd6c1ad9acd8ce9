import re

import pytest
from django.contrib.auth.models import Group
from django.urls import URLPattern, URLResolver, get_resolver

from tests.factories import NodeFactory, ProductFactory, ToolFactory, capable_lab

pytestmark = pytest.mark.django_db

# Endpoints meant for everyone: the login itself and the API's documentation.
PUBLIC = ("api/auth/", "api/schema/", "api/docs/", "api/redoc/")


def _api_routes(patterns=None, prefix=""):
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _api_routes(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            yield route


def _concrete(route: str) -> str:
    """Turn a route pattern (regex or path syntax) into a URL with id 1."""
    if "format>" in route:  # the same views again with a .json suffix
        return ""
    path = route.replace("^", "").replace("$", "")
    path = re.sub(r"\(\?P<[^>]+>[^)]+\)", "1", path)
    path = re.sub(r"<(?:\w+:)?\w+>", "1", path)
    return "/" + path.replace("\\", "")


def _data_endpoints():
    urls = {_concrete(route) for route in _api_routes()}
    return sorted(url for url in urls if url.startswith("/api/") and not url.startswith(tuple("/" + p for p in PUBLIC)))


def test_the_walk_finds_every_kind_of_data_endpoint():
    endpoints = _data_endpoints()
    for expected in ["/api/products/", "/api/nodes/1/installs/", "/api/tasks/1/cases/", "/api/reports/1/download/"]:
        assert expected in endpoints


@pytest.mark.parametrize("url", _data_endpoints())
def test_an_anonymous_client_is_refused_on_every_data_endpoint(api, url):
    for method in ("get", "post", "put", "patch", "delete"):
        response = getattr(api, method)(url)
        assert response.status_code in (401, 403, 405), (method, url, response.status_code)
        if method == "get":
            assert response.status_code in (401, 403), (url, response.status_code)


def test_both_role_groups_exist_after_migrate():
    assert set(Group.objects.values_list("name", flat=True)) >= {"lab managers", "testers"}


def test_a_tester_cannot_add_a_node(api, tester):
    response = api.as_user(tester).post("/api/nodes/", {"name": "n1", "ip": "10.0.0.1", "username": "u"})
    assert response.status_code == 403


def test_a_tester_cannot_change_a_product(api, tester):
    product = ProductFactory()
    assert api.as_user(tester).patch(f"/api/products/{product.pk}/", {"version": "2"}).status_code == 403


def test_a_tester_cannot_delete_a_tool(api, tester):
    tool = ToolFactory()
    assert api.as_user(tester).delete(f"/api/tools/{tool.pk}/").status_code == 403


def test_a_tester_cannot_change_what_is_installed_on_a_node(api, tester):
    node = NodeFactory()
    assert api.as_user(tester).put(f"/api/nodes/{node.pk}/installs/", {"products": []}).status_code == 403


def test_a_tester_cannot_link_a_tool_to_a_product(api, tester):
    product, tool = ProductFactory(), ToolFactory()
    response = api.as_user(tester).post(f"/api/products/{product.pk}/tools/", {"tool": tool.pk})
    assert response.status_code == 403


def test_a_tester_reads_the_lab(api, tester):
    NodeFactory()
    for url in ["/api/products/", "/api/tools/", "/api/nodes/", "/api/tasks/", "/api/reports/"]:
        assert api.as_user(tester).get(url).status_code == 200, url


def test_a_tester_submits_a_task(api, tester):
    product, tool, _ = capable_lab()
    response = api.as_user(tester).post(
        "/api/tasks/", {"name": "smoke", "product": product.pk, "tool": tool.pk, "cases": ["a"]}
    )
    assert response.status_code == 201


def test_a_user_without_a_role_reads_nothing(api, django_user_model):
    nobody = django_user_model.objects.create_user("nobody", password="x-long-password")
    assert api.as_user(nobody).get("/api/products/").status_code == 403


def test_a_token_from_username_and_password_opens_the_api(api, tester):
    response = api.post("/api/auth/token/", {"username": tester.username, "password": "a-long-test-password"})
    assert response.status_code == 200
    api.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    assert api.get("/api/products/").status_code == 200


def test_a_wrong_password_gets_no_token(api, tester):
    response = api.post("/api/auth/token/", {"username": tester.username, "password": "wrong"})
    assert response.status_code == 400
