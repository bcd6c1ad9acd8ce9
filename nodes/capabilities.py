"""Capabilities: a product/tool pair, and the name of the queue that carries its cases."""

from catalog.models import Product, TestTool
from worker import protocol


def capability_queue(*, product: Product, tool: TestTool) -> str:
    """Named after the stored slugs, unique per product and per tool (never after names that may collide)."""
    return protocol.capability_queue(product_slug=product.slug, tool_slug=tool.slug)
