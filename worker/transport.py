"""kombu's Redis transport as a test machine uses it: its own record of the messages it holds, and no
handing out of other workers' messages.

kombu keeps the messages a worker has taken and not yet acknowledged in Redis (a hash, an index and a lock),
and every worker hands out again those another worker left too long. On a test machine both would need the
right to write every queue and to read every worker's messages, which its broker user must not have: so each
machine keeps its own record (unacked:<node>, ...) and hands nothing out; the control plane does that, from
the database, for machines that died (execution.services.cases_requeue_from_silent_nodes, and the reconciler).
"""

from kombu.transport import redis


class QoS(redis.QoS):
    def restore_visible(self, *args: object, **kwargs: object) -> None:
        """Leave other workers' messages alone: the control plane hands out again what a dead worker held."""


class Channel(redis.Channel):
    QoS = QoS


class Transport(redis.Transport):
    Channel = Channel


def unacked_keys(node: str) -> dict[str, str]:
    """The transport options that give a node's worker a record of its own."""
    return {
        "unacked_key": f"unacked:{node}",
        "unacked_index_key": f"unacked_index:{node}",
        "unacked_mutex_key": f"unacked_mutex:{node}",
    }
