"""GET answers are kept while nothing they were built from changed, and built afresh the moment it does."""

import pytest
from django.core.cache import cache
from django.db import transaction

from catalog.models import Product
from execution.counts import cases_move
from execution.models import Case, Task
from messaging import revisions
from tests.factories import CaseFactory, ProductFactory, TaskFactory

# Real commits: a revision moves when a transaction commits, and only then.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _answers_kept(settings):
    settings.TESTHUB_ANSWER_CACHE_SECONDS = 60
    settings.TESTHUB_AUTH_CACHE_SECONDS = 300  # users and roles kept, as in a web process


def _product_names(api) -> list[str]:
    response = api.get("/api/products/")
    assert response.status_code == 200
    return [row["name"] for row in response.json()["results"]]


def test_a_list_asked_again_unchanged_is_answered_without_a_query(api, tester, django_assert_num_queries):
    ProductFactory.create_batch(3)
    api.as_user(tester).get("/api/products/")
    with django_assert_num_queries(0):
        assert len(_product_names(api)) == 3


def test_a_saved_row_is_in_the_next_answer(api, tester):
    product = ProductFactory(name="before")
    assert _product_names(api.as_user(tester)) == ["before"]
    product.name = "after"
    product.save()
    assert _product_names(api) == ["after"]


def test_a_queryset_update_is_in_the_next_answer(api, tester):
    product = ProductFactory(name="before")
    assert _product_names(api.as_user(tester)) == ["before"]
    Product.objects.filter(pk=product.pk).update(name="after")
    assert _product_names(api) == ["after"]


def test_a_deleted_row_leaves_the_next_answer(api, tester):
    product = ProductFactory()
    assert len(_product_names(api.as_user(tester))) == 1
    product.delete()
    assert _product_names(api) == []


def test_cases_moved_by_the_counts_path_show_in_the_task_list(api, tester):
    task = TaskFactory(created_by=tester)
    CaseFactory.create_batch(2, task=task)
    Task.objects.filter(pk=task.pk).update(cases_total=2, cases_queued=2)
    assert api.as_user(tester).get("/api/tasks/").json()["results"][0]["counts"]["cancelled"] == 0
    cases_move(Case.objects.filter(task=task), to="cancelled")
    assert api.get("/api/tasks/").json()["results"][0]["counts"]["cancelled"] == 2


def test_a_write_moves_the_revision_only_once_it_commits():
    ProductFactory(name="before")
    before = revisions.revisions_read((revisions.CATALOG,))
    with transaction.atomic():
        Product.objects.update(name="after")
        assert revisions.revisions_read((revisions.CATALOG,)) == before
    assert revisions.revisions_read((revisions.CATALOG,)) != before


def test_a_rolled_back_write_leaves_the_revision_alone():
    ProductFactory(name="before")
    before = revisions.revisions_read((revisions.CATALOG,))
    with pytest.raises(RuntimeError), transaction.atomic():
        Product.objects.update(name="after")
        raise RuntimeError("rolled back")
    assert revisions.revisions_read((revisions.CATALOG,)) == before


def test_the_answer_carries_an_etag_and_the_same_tag_gets_a_304_without_a_query(api, tester, django_assert_num_queries):
    ProductFactory()
    first = api.as_user(tester).get("/api/products/")
    etag = first["ETag"]
    assert "no-cache" in first["Cache-Control"] and "private" in first["Cache-Control"]
    with django_assert_num_queries(0):
        again = api.get("/api/products/", HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304 and again.content == b""


def test_a_change_gives_a_new_etag_and_a_full_answer(api, tester):
    product = ProductFactory(name="before")
    etag = api.as_user(tester).get("/api/products/")["ETag"]
    product.name = "after"
    product.save()
    response = api.get("/api/products/", HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 200 and response["ETag"] != etag
    assert response.json()["results"][0]["name"] == "after"


def test_one_users_answer_is_never_given_to_another(api, tester):
    from tests.factories import TesterFactory

    TaskFactory(created_by=tester, webhook_url="https://hooks.example.com/mine")
    assert api.as_user(tester).get("/api/tasks/").json()["results"][0]["webhook_url"]
    other = TesterFactory()
    assert api.as_user(other).get("/api/tasks/").json()["results"][0]["webhook_url"] == ""


def test_a_role_given_changes_the_answer(api, tester):
    from django.contrib.auth.models import Group

    from accounts.roles import LAB_MANAGERS

    owner_task = TaskFactory(webhook_url="https://hooks.example.com/theirs")
    assert api.as_user(tester).get(f"/api/tasks/{owner_task.pk}/").json()["webhook_url"] == ""
    tester.groups.add(Group.objects.get(name=LAB_MANAGERS))
    assert api.get(f"/api/tasks/{owner_task.pk}/").json()["webhook_url"]


def test_answers_are_built_afresh_when_the_revisions_cannot_be_read(api, tester, monkeypatch):
    product = ProductFactory(name="before")
    assert _product_names(api.as_user(tester)) == ["before"]

    def unreadable(*args, **kwargs):
        raise ConnectionError("the cache is down")

    monkeypatch.setattr(cache, "get_many", unreadable)
    monkeypatch.setattr(cache, "set_many", unreadable)
    product.name = "after"
    product.save()  # its revision is lost too
    response = api.get("/api/products/")
    assert response.status_code == 200 and "ETag" not in response
    assert response.json()["results"][0]["name"] == "after"


def test_a_transaction_of_many_writes_moves_each_topic_once(monkeypatch):
    products = ProductFactory.create_batch(5)
    written = []
    monkeypatch.setattr(cache, "set_many", lambda mapping, timeout=None: written.append(sorted(mapping)))
    with transaction.atomic():
        for product in products:
            Product.objects.filter(pk=product.pk).update(name=f"renamed {product.pk}")
        TaskFactory()
    assert written == [["revision:catalog", "revision:tasks", "revision:users"]]  # its submitter is new


def test_a_write_after_a_rolled_back_savepoint_still_moves_its_topic(monkeypatch):
    product = ProductFactory()
    written = []
    monkeypatch.setattr(cache, "set_many", lambda mapping, timeout=None: written.append(sorted(mapping)))
    with transaction.atomic():
        try:
            with transaction.atomic():
                Product.objects.filter(pk=product.pk).update(name="lost")
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
        Product.objects.filter(pk=product.pk).update(name="kept")
    assert written == [["revision:catalog"]]
