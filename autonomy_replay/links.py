"""Graph links and loss accounting for the replay (pure: no rclpy import).

- `link_problem`: why one link of the graph description (`autonomy_stack.graph.Link`) is not
  matched yet, from the endpoints the player discovers on its topic: the subscribing node's
  subscription, the publishing node's publisher, and a QoS pair that can match.
- `losses`: recorded outputs that received fewer messages than the graph should have
  produced from the bag's data.
"""
from __future__ import annotations

from typing import Callable, Dict, Iterable, Optional

from autonomy_stack.graph import Link


def endpoint_node(info) -> str:
    """Fully qualified node name of a TopicEndpointInfo (rclpy)."""
    ns = (info.node_namespace or "/").rstrip("/")
    return f"{ns}/{info.node_name}"


def link_problem(link: Link, publishers: Iterable, subscriptions: Iterable,
                 compatible: Callable[[object, object], bool]) -> Optional[str]:
    """None when the link's publisher and subscription are both discovered with QoS that
    match (`compatible(publisher_qos, subscription_qos)`), else what is missing."""
    pubs = [i for i in publishers if endpoint_node(i) == link.publisher]
    subs = [i for i in subscriptions if endpoint_node(i) == link.subscriber]
    missing = ([] if subs else [f"no subscription of {link.subscriber}"]) + \
              ([] if pubs else [f"no publisher of {link.publisher}"])
    if missing:
        return " and ".join(missing)
    if not any(compatible(p.qos_profile, s.qos_profile) for p in pubs for s in subs):
        return "publisher and subscription have incompatible QoS"
    return None


def losses(expected: Dict[str, int], received: Dict[str, int]) -> Dict[str, Dict[str, int]]:
    """{topic: {"received": n, "expected": m}} for each topic with n < m."""
    return {t: {"received": received.get(t, 0), "expected": n}
            for t, n in sorted(expected.items()) if received.get(t, 0) < n}
