"""Capabilities: a product/tool pair, and the name of the queue that carries its cases."""

from catalog.models import Product, TestTool
from worker import protocol


def capability_queue(*, product: Product, tool: TestTool) -> str:
    return protocol.capability_queue(
        product=product.name, product_version=product.version, tool=tool.name, tool_version=tool.version
    )
