import pytest
from django.db import IntegrityError

from catalog.models import Product, ProductTool, TestTool
from execution.models import Case
from nodes.models import NodeProduct, NodeTool
from tests.factories import (
    CaseFactory,
    NodeFactory,
    NodeProductFactory,
    NodeToolFactory,
    ProductFactory,
    ProductToolFactory,
    ToolFactory,
)

pytestmark = pytest.mark.django_db


def test_the_database_refuses_a_second_product_with_the_same_name_and_version():
    ProductFactory(name="calc", version="1.0")
    with pytest.raises(IntegrityError):
        Product.objects.create(name="calc", version="1.0")


def test_the_database_refuses_a_second_tool_with_the_same_name_and_version():
    ToolFactory(name="pytest", version="8")
    with pytest.raises(IntegrityError):
        TestTool.objects.create(name="pytest", version="8", command_template="x {case}")


def test_the_database_refuses_linking_a_tool_to_a_product_twice():
    link = ProductToolFactory()
    with pytest.raises(IntegrityError):
        ProductTool.objects.create(product=link.product, tool=link.tool)


def test_the_database_refuses_installing_a_product_twice_on_one_node():
    install = NodeProductFactory()
    with pytest.raises(IntegrityError):
        NodeProduct.objects.create(node=install.node, product=install.product, install_path="/opt/testhub/x")


def test_the_database_refuses_installing_a_tool_twice_for_one_installed_product():
    tool_install = NodeToolFactory()
    with pytest.raises(IntegrityError):
        NodeTool.objects.create(node_product=tool_install.node_product, tool=tool_install.tool, install_path="/x")


def test_the_database_refuses_two_cases_with_one_name_in_a_task():
    case = CaseFactory()
    with pytest.raises(IntegrityError):
        Case.objects.create(task=case.task, name=case.name)


def test_the_node_password_column_holds_no_trace_of_the_password():
    node = NodeFactory()
    node.set_password("s3cret-Passw0rd")
    node.save()
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM nodes_node WHERE id = %s", [node.pk])
        raw_row = " ".join(str(value) for value in cursor.fetchone())
    assert "s3cret-Passw0rd" not in raw_row
    assert node.get_password() == "s3cret-Passw0rd"
