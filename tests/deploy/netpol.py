"""A small NetworkPolicy evaluator: would this TCP connection be allowed by these policies?

It follows the Kubernetes semantics the chart relies on (policies select pods by label; a selected
pod accepts only what some rule of a selecting policy allows; a connection needs both the
source's egress and the destination's ingress), for pod and namespace selectors, port ranges, and
destinations outside the cluster (`dst_namespace=None`, labels `{"ip": "<address>"}`). ipBlock peers
match those outside destinations only (the chart's ipBlocks name object stores and API servers; how
a network plugin applies an ipBlock to pod addresses is implementation-defined).
"""

from __future__ import annotations

import ipaddress


def selects(selector: dict, labels: dict) -> bool:
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def peer_matches(peer: dict, policy_namespace: str, namespace: str | None, labels: dict) -> bool:
    if "ipBlock" in peer:
        if namespace is not None or "ip" not in labels:
            return False
        address = ipaddress.ip_address(labels["ip"])
        block = peer["ipBlock"]
        return address in ipaddress.ip_network(block["cidr"]) and not any(
            address in ipaddress.ip_network(e) for e in block.get("except", [])
        )
    if namespace is None:  # outside the cluster: only ipBlocks match
        return False
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": namespace}):
            return False
    elif namespace != policy_namespace:
        return False
    return selects(peer.get("podSelector") or {}, labels)


def port_matches(ports: list | None, port: int) -> bool:
    if not ports:
        return True
    for p in ports:
        if p.get("protocol", "TCP") != "TCP":
            continue
        if "port" not in p or p["port"] <= port <= p.get("endPort", p["port"]):
            return True
    return False


def _direction_allows(policies, kind, namespace, labels, peer_ns, peer_labels, port) -> bool:
    key, peers_key = ("ingress", "from") if kind == "Ingress" else ("egress", "to")
    selecting = [
        p for p in policies
        if p["metadata"]["namespace"] == namespace
        and kind in p["spec"].get("policyTypes", ["Ingress"])
        and selects(p["spec"]["podSelector"], labels)
    ]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get(key) or []:
            peers = rule.get(peers_key)
            peer_ok = not peers or any(peer_matches(peer, namespace, peer_ns, peer_labels) for peer in peers)
            if peer_ok and port_matches(rule.get("ports"), port):
                return True
    return False


def allowed(policies: list[dict], src: tuple[str, dict], dst: tuple[str | None, dict], port: int) -> bool:
    """Whether a pod `(namespace, labels)` may open a TCP connection to `dst` on `port`."""
    (src_ns, src_labels), (dst_ns, dst_labels) = src, dst
    if not _direction_allows(policies, "Egress", src_ns, src_labels, dst_ns, dst_labels, port):
        return False
    if dst_ns is None:
        return True
    return _direction_allows(policies, "Ingress", dst_ns, dst_labels, src_ns, src_labels, port)
