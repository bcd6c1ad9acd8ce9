"""Worker events as a node's worker sends them: signed with the node's key, a case's event with its token."""

import json

from execution.events import case_token
from nodes.models import Node
from nodes.services import node_event_key
from worker.protocol import event_envelope


def signed(message: dict, *, key: str | None = None) -> bytes:
    """`message` in its envelope, signed as its node's worker would (or with `key`, as a forger would)."""
    if message.get("type") == "case":
        message = {"token": case_token(message["case_id"]), **message}
    if key is None:
        node = Node.objects.filter(name=message["node"]).first()
        key = node_event_key(node=node) if node else "no key: the node is not known"
    return event_envelope(node=message["node"], key=key, message=message)


def signed_payload(raw_payload: bytes, *, node: Node) -> bytes:
    """Any payload (even not JSON) in an envelope a node's key really signed."""
    from worker.protocol import event_signature

    key = node_event_key(node=node)
    return b"%s\n%s\n%s" % (node.name.encode(), event_signature(key, raw_payload).encode(), raw_payload)


def as_json(message: dict) -> bytes:
    return json.dumps(message).encode()
