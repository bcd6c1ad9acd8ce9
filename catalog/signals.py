"""What catalog asks of the apps built on it, without importing them (they depend on catalog, not the reverse)."""

from django.dispatch import Signal

# Sent before a tool is unlinked from a product, with `product=` and `tool=`; a receiver answers with why the
# link is still in use (a sentence), or None. nodes answers for installs, execution for unfinished tasks.
product_tool_unlink_checks = Signal()
