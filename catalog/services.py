from decimal import Decimal

from django.core.files import File
from django.db import transaction

from api.errors import Conflict, DomainError
from catalog.models import Product, ProductTestResult, ProductTool, TestTool
from catalog.signals import product_tool_unlink_checks


def product_upload(*, name: str, version: str, file: "File[bytes]") -> tuple[Product, bool]:
    """Store a product's package file, creating the product if it is new. Returns (product, created)."""
    with transaction.atomic():
        product, created = Product.objects.select_for_update().get_or_create(name=name, version=version)
        old_file_name = product.file.name if product.file else ""
        # File.name may be None in general; every caller passes a named file (an upload, or a named ContentFile).
        product.file.save(file.name, file, save=False)  # type: ignore[arg-type]
        product.save(update_fields=["file", "updated_at"])
    if old_file_name and old_file_name != product.file.name:
        transaction.on_commit(lambda: product.file.storage.delete(old_file_name))
    return product, created


def tool_file_set(*, tool: TestTool, file: "File[bytes]") -> TestTool:
    """Store the tool's files (replacing earlier ones). Nodes that have the tool keep the files they got until
    their installs are applied again with reinstall."""
    with transaction.atomic():
        tool = TestTool.objects.select_for_update().get(pk=tool.pk)
        old_file_name = tool.file.name if tool.file else ""
        tool.file.save(file.name, file, save=False)  # type: ignore[arg-type]  # named, as in product_upload
        tool.save(update_fields=["file", "updated_at"])
    if old_file_name and old_file_name != tool.file.name:
        transaction.on_commit(lambda: tool.file.storage.delete(old_file_name))
    return tool


def product_tool_link(*, product: Product, tool: TestTool) -> ProductTool:
    link, _ = ProductTool.objects.get_or_create(product=product, tool=tool)
    return link


def product_tools_require(*, product: Product, tools: list[TestTool]) -> None:
    """A product is tested only with its own tools: DomainError naming any tool not linked to it. Every way in
    (API, admin, templates, node installs) checks with this."""
    linked = set(ProductTool.objects.filter(product=product, tool__in=tools).values_list("tool_id", flat=True))
    unlinked = [str(tool) for tool in tools if tool.pk not in linked]
    if unlinked:
        raise DomainError(
            f"{', '.join(unlinked)} {'is' if len(unlinked) == 1 else 'are'} not linked to {product}: "
            "pick one of the product's tools, or link it to the product first."
        )


def product_tool_unlink(*, product: Product, tool: TestTool) -> None:
    """Refused while the apps built on catalog still use the link (they answer product_tool_unlink_checks)."""
    for _, refusal in product_tool_unlink_checks.send(sender=ProductTool, product=product, tool=tool):
        if refusal:
            raise Conflict(refusal)
    ProductTool.objects.filter(product=product, tool=tool).delete()


def product_test_result_record(
    *,
    product: Product,
    pass_rate: Decimal,
    source: str,
    total: int = 0,
    passed: int = 0,
    failed: int = 0,
    errors: int = 0,
    report_url: str = "",
    kind: str = ProductTestResult.Kind.FULL,
    task: int | None = None,
) -> ProductTestResult:
    return ProductTestResult.objects.create(
        product=product,
        pass_rate=pass_rate,
        source=source,
        total=total,
        passed=passed,
        failed=failed,
        errors=errors,
        report_url=report_url,
        kind=kind,
        task=task,
    )
