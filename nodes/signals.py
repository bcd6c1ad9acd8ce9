"""What nodes asks of the apps built on it, without importing them (they depend on nodes, not the reverse)."""

from django.dispatch import Signal

# Sent before a node is removed, with `node=`; a receiver answers with why it cannot be removed yet (a
# sentence), or None. execution answers for the cases the node is running.
node_removal_checks = Signal()

# Sent by every liveness sweep, with `silent_since=`: nodes not heard from since then are silent. execution hands
# the cases they held out again.
nodes_went_silent = Signal()
