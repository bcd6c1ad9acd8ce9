"""Capabilities: a product/tool pair, and the name of the queue that carries its cases."""

from catalog.models import Product, TestTool


def capability_queue(*, product: Product, tool: TestTool) -> str:
    """`cap.<product>-<version>.<tool>-<version>`: readable in Flower, stable while work is queued.

    Slugs hold only letters, digits, '-' and '_', so the Redis transport's priority
    separator (a control character) can never occur in a queue name.
    """
    return f"cap.{product.slug}.{tool.slug}"
