import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from catalog.models import Product, ProductTestResult
from tests.factories import (
    NodeToolFactory,
    ProductFactory,
    ProductTestResultFactory,
    ProductToolFactory,
    TaskFactory,
    ToolFactory,
)

pytestmark = pytest.mark.django_db


def _package(name="calc-1.0.tar.gz", content=b"package bytes"):
    return SimpleUploadedFile(name, content, content_type="application/gzip")


def test_a_lab_manager_creates_a_product(api, lab_manager):
    response = api.as_user(lab_manager).post("/api/products/", {"name": "calc", "version": "1.0"})
    assert response.status_code == 201
    assert Product.objects.filter(name="calc", version="1.0").exists()


def test_a_second_product_with_the_same_name_and_version_is_refused_with_a_reason(api, lab_manager):
    ProductFactory(name="calc", version="1.0")
    response = api.as_user(lab_manager).post("/api/products/", {"name": "calc", "version": "1.0"})
    assert response.status_code == 400
    assert "unique" in str(response.json())


def test_a_product_without_a_version_is_refused_naming_the_field(api, lab_manager):
    response = api.as_user(lab_manager).post("/api/products/", {"name": "calc"})
    assert response.status_code == 400
    assert "version" in response.json()


def test_uploading_a_package_creates_the_product_and_gives_a_download_link(api, lab_manager):
    response = api.as_user(lab_manager).post(
        "/api/products/upload/", {"name": "calc", "version": "2.0", "file": _package()}, format="multipart"
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["file_name"] == "calc-1.0.tar.gz"
    assert body["download_url"].endswith(f"/api/products/{body['id']}/file/")
    download = api.get(f"/api/products/{body['id']}/file/")
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == b"package bytes"


def test_uploading_again_replaces_the_file_of_the_existing_product(api, lab_manager):
    product = ProductFactory(name="calc", version="2.0")
    api.as_user(lab_manager).post(
        "/api/products/upload/", {"name": "calc", "version": "2.0", "file": _package()}, format="multipart"
    )
    response = api.post(
        "/api/products/upload/",
        {"name": "calc", "version": "2.0", "file": _package("calc-2.0.zip", b"new")},
        format="multipart",
    )
    assert response.status_code == 200
    product.refresh_from_db()
    assert product.file_name == "calc-2.0.zip"


def test_an_upload_larger_than_the_limit_is_refused_with_the_limit(api, lab_manager, settings):
    settings.TESTHUB_MAX_UPLOAD_BYTES = 10
    response = api.as_user(lab_manager).post(
        "/api/products/upload/", {"name": "calc", "version": "1", "file": _package()}, format="multipart"
    )
    assert response.status_code == 400
    assert "limit is 10 bytes" in str(response.json()["file"])
    assert not Product.objects.exists()


def _raw_upload(file_name: str) -> tuple[bytes, str]:
    """A multipart body sent exactly as given: test clients would clean the file name first."""
    boundary = "testhubboundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\ncalc\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="version"\r\n\r\n1\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{file_name}"\r\n'
        "Content-Type: application/gzip\r\n\r\npackage bytes\r\n"
        f"--{boundary}--\r\n"
    ).encode()
    return body, f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize(
    "hostile_name",
    [
        "../../etc/cron.tar.gz",
        "..\\\\win.zip",
        ".hidden.tar.gz",
        "run.sh",
        "a b;rm.zip",
        "c+d.zip",
        "x.tar.gz\x07.zip",
        "&#47;x.zip",
    ],
)
def test_an_upload_with_a_hostile_file_name_is_refused(api, lab_manager, hostile_name):
    body, content_type = _raw_upload(hostile_name)
    response = api.as_user(lab_manager).generic("POST", "/api/products/upload/", body, content_type)
    assert response.status_code == 400
    assert "File name" in str(response.json())
    assert not Product.objects.exists()


def test_an_upload_with_a_plain_file_name_is_stored_under_that_name(api, lab_manager):
    body, content_type = _raw_upload("calc_1.0-b2.tar.gz")
    response = api.as_user(lab_manager).generic("POST", "/api/products/upload/", body, content_type)
    assert response.status_code == 201
    assert response.json()["file_name"] == "calc_1.0-b2.tar.gz"


def test_the_tools_of_a_product_are_its_linked_tools_only(api, tester):
    link = ProductToolFactory()
    ToolFactory()  # not linked
    response = api.as_user(tester).get(f"/api/products/{link.product.pk}/tools/")
    assert response.status_code == 200
    assert [tool["id"] for tool in response.json()] == [link.tool.pk]


def test_a_lab_manager_links_and_unlinks_a_tool(api, lab_manager):
    product, tool = ProductFactory(), ToolFactory()
    assert api.as_user(lab_manager).post(f"/api/products/{product.pk}/tools/", {"tool": tool.pk}).status_code == 201
    assert list(product.tools.all()) == [tool]
    assert api.delete(f"/api/products/{product.pk}/tools/{tool.pk}/").status_code == 204
    assert not product.tools.exists()


def test_linking_an_unknown_tool_names_the_bad_id(api, lab_manager):
    product = ProductFactory()
    response = api.as_user(lab_manager).post(f"/api/products/{product.pk}/tools/", {"tool": 999999})
    assert response.status_code == 400
    assert "999999" in str(response.json()["tool"])


def test_unlinking_a_tool_installed_on_a_node_is_refused_with_409(api, lab_manager):
    install = NodeToolFactory()
    product, tool = install.node_product.product, install.tool
    ProductToolFactory(product=product, tool=tool)
    response = api.as_user(lab_manager).delete(f"/api/products/{product.pk}/tools/{tool.pk}/")
    assert response.status_code == 409
    assert "uninstall" in response.json()["detail"]


def test_deleting_a_product_that_tasks_use_is_refused_with_409_and_a_reason(api, lab_manager):
    task = TaskFactory()
    response = api.as_user(lab_manager).delete(f"/api/products/{task.product.pk}/")
    assert response.status_code == 409
    assert "task" in response.json()["detail"]
    assert Product.objects.filter(pk=task.product.pk).exists()


def test_deleting_a_tool_that_tasks_use_is_refused_with_409(api, lab_manager):
    task = TaskFactory()
    assert api.as_user(lab_manager).delete(f"/api/tools/{task.tool.pk}/").status_code == 409


def test_a_tool_command_with_an_unknown_placeholder_is_refused_listing_the_allowed_ones(api, lab_manager):
    response = api.as_user(lab_manager).post(
        "/api/tools/", {"name": "t", "version": "1", "command_template": "run {cas}"}
    )
    assert response.status_code == 400
    assert "{case}" in str(response.json()["command_template"])


def test_another_service_records_a_test_result_and_it_becomes_the_latest(api, lab_manager):
    product = ProductFactory()
    ProductTestResultFactory(product=product, pass_rate=50)
    response = api.as_user(lab_manager).put(
        f"/api/products/{product.pk}/test-result/",
        {
            "pass_rate": "97.50",
            "total": 40,
            "passed": 39,
            "failed": 1,
            "source": "nightly-ci",
            "report_url": "https://ci.example/r/1",
        },
    )
    assert response.status_code == 201, response.json()
    result = api.get(f"/api/products/{product.pk}/test-result/").json()
    assert result["latest"]["pass_rate"] == 97.5 and result["latest"]["source"] == "nightly-ci"
    assert [entry["pass_rate"] for entry in result["history"]] == [97.5, 50.0]


def test_a_pass_rate_above_100_is_refused(api, lab_manager):
    product = ProductFactory()
    response = api.as_user(lab_manager).put(
        f"/api/products/{product.pk}/test-result/", {"pass_rate": "120", "source": "x"}
    )
    assert response.status_code == 400
    assert "pass_rate" in response.json()
    assert not ProductTestResult.objects.exists()


def test_a_product_without_results_has_no_latest_result(api, tester):
    product = ProductFactory()
    assert api.as_user(tester).get(f"/api/products/{product.pk}/test-result/").json() == {"latest": None, "history": []}


def test_the_product_list_shows_the_latest_pass_rate(api, tester):
    product = ProductFactory()
    ProductTestResultFactory(product=product, pass_rate=10)
    ProductTestResultFactory(product=product, pass_rate=80)
    assert api.as_user(tester).get("/api/products/").json()["results"][0]["latest_pass_rate"] == 80.0


def test_product_list_runs_the_same_queries_for_any_page_size(api, tester, django_assert_num_queries):
    for _ in range(30):
        ProductToolFactory()
    api.as_user(tester)
    # user groups, count, one page of products with the latest pass rate, their linked tools
    with django_assert_num_queries(4):
        api.get("/api/products/?page_size=3")
    with django_assert_num_queries(4):
        api.get("/api/products/?page_size=30")


def test_tool_list_runs_the_same_queries_for_any_page_size(api, tester, django_assert_num_queries):
    ToolFactory.create_batch(30)
    api.as_user(tester)
    with django_assert_num_queries(3):
        api.get("/api/tools/?page_size=30")


def test_a_result_recorded_without_a_report_link_reads_back_with_an_empty_link(api, lab_manager):
    product = ProductFactory()
    api.as_user(lab_manager).put(f"/api/products/{product.pk}/test-result/", {"pass_rate": "90", "source": "ci"})
    assert api.get(f"/api/products/{product.pk}/test-result/").json()["latest"]["report_url"] == ""


def test_a_malformed_report_link_is_refused(api, lab_manager):
    product = ProductFactory()
    response = api.as_user(lab_manager).put(
        f"/api/products/{product.pk}/test-result/", {"pass_rate": "90", "source": "ci", "report_url": "not a url"}
    )
    assert response.status_code == 400 and "report_url" in response.json()


def test_a_lab_manager_uploads_a_tools_files_and_anyone_downloads_them(api, lab_manager, tester):
    tool = ToolFactory()
    upload = SimpleUploadedFile("runner.tar.gz", b"\x1f\x8b tool bytes")
    response = api.as_user(lab_manager).put(f"/api/tools/{tool.pk}/file/", {"file": upload}, format="multipart")
    assert response.status_code == 200, response.json()
    assert response.json()["file_name"] == "runner.tar.gz"
    download = api.as_user(tester).get(f"/api/tools/{tool.pk}/file/")
    assert b"".join(download.streaming_content) == b"\x1f\x8b tool bytes"


def test_a_tool_file_that_is_not_an_archive_is_refused_naming_the_kinds_taken(api, lab_manager):
    tool = ToolFactory()
    upload = SimpleUploadedFile("runner.sh", b"#!/bin/sh\n")
    response = api.as_user(lab_manager).put(f"/api/tools/{tool.pk}/file/", {"file": upload}, format="multipart")
    assert response.status_code == 400
    assert ".tar.gz" in response.json()["file"][0]
