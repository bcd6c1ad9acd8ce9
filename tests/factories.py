import factory
from django.contrib.auth.models import Group, User
from django.utils import timezone

from accounts.roles import LAB_MANAGERS, TESTERS
from catalog.models import Product, ProductTestResult, ProductTool, TestTool
from execution.counts import CountChanges
from execution.models import Case, Task
from nodes.models import Node, NodeProduct, NodeTool
from reporting.models import Report


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("a-long-test-password")


def _joins(group_name: str):
    return factory.PostGeneration(
        lambda user, create, extracted, **kw: user.groups.add(Group.objects.get(name=group_name))
    )


class LabManagerFactory(UserFactory):
    is_staff = True
    role = _joins(LAB_MANAGERS)


class TesterFactory(UserFactory):
    __test__ = False  # not a pytest test class, whatever its name says
    role = _joins(TESTERS)


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    name = factory.Sequence(lambda n: f"product{n}")
    version = "1.0"


class ToolFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TestTool

    name = factory.Sequence(lambda n: f"tool{n}")
    version = "2.0"
    command_template = "{tool_path}/run {case}"


class ProductToolFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProductTool

    product = factory.SubFactory(ProductFactory)
    tool = factory.SubFactory(ToolFactory)


class NodeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Node

    name = factory.Sequence(lambda n: f"node{n}")
    ip = factory.Sequence(lambda n: f"127.0.0.{n % 250 + 2}")
    username = "tester"
    status = Node.Status.ONLINE
    last_heartbeat = factory.LazyFunction(timezone.now)
    install_root = "/opt/testhub"
    managed = False  # installs recorded only; tests of installs over SSH ask for managed nodes


class NodeProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = NodeProduct

    node = factory.SubFactory(NodeFactory)
    product = factory.SubFactory(ProductFactory)
    install_path = factory.LazyAttribute(lambda o: f"{o.node.install_root}/products/{o.product.slug}")


class NodeToolFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = NodeTool

    node_product = factory.SubFactory(NodeProductFactory)
    tool = factory.SubFactory(ToolFactory)
    install_path = factory.LazyAttribute(lambda o: f"{o.node_product.node.install_root}/tools/{o.tool.slug}")


class TaskFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Task

    name = factory.Sequence(lambda n: f"task{n}")
    product = factory.SubFactory(ProductFactory)
    tool = factory.SubFactory(ToolFactory)
    case_timeout = 60
    created_by = factory.SubFactory(TesterFactory)


class CaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Case
        skip_postgeneration_save = True

    task = factory.SubFactory(TaskFactory)
    name = factory.Sequence(lambda n: f"test_case_{n}")

    @factory.post_generation
    def counted(case, create, extracted, **kwargs):
        """Its task's kept counts include it, as when TestHub writes a case."""
        if create:
            changes = CountChanges()
            node = case.node.name if case.node_id else None
            changes.move(case.task_id, from_status=None, to_status=case.status, to_node=node)
            if case.status not in Case.OPEN_STATUSES:
                changes.timed(case.task_id, started_at=case.started_at, finished_at=case.finished_at)
            changes.save()


class ReportFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Report

    task = factory.SubFactory(TaskFactory)
    status = Report.Status.READY


class ProductTestResultFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProductTestResult

    product = factory.SubFactory(ProductFactory)
    pass_rate = 90
    source = "testhub"


def capable_lab(*, nodes: int = 1, status: str = Node.Status.ONLINE):
    """A product and a linked tool installed together on `nodes` nodes."""
    link = ProductToolFactory()
    lab_nodes = []
    for _ in range(nodes):
        install = NodeProductFactory(product=link.product, node=NodeFactory(status=status))
        NodeToolFactory(node_product=install, tool=link.tool)
        lab_nodes.append(install.node)
    return link.product, link.tool, lab_nodes
