"""The one description of the node graph (config/graph.yaml), as plain data.

Both `launch/stack.launch.py` (ros2 launch, full ROS 2 install) and the standalone runner
(`autonomy-stack up`, pip-only path) build their processes from `nodes_for_mode()`, so the
executables, node names, namespaces, parameter files and remappings cannot drift apart.
No rclpy import here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence
import json

import yaml

from autonomy_stack.paths import share_dir

PACKAGE = "autonomy_stack"


class GraphError(ValueError):
    pass


@dataclass(frozen=True)
class NodeSpec:
    key: str
    executable: str
    name: str
    namespace: str = ""
    parameter_files: List[Path] = field(default_factory=list)
    remappings: Dict[str, str] = field(default_factory=dict)
    parameters: Dict[str, object] = field(default_factory=dict)   # inline overrides
    publishes: List[str] = field(default_factory=list)
    subscribes: List[str] = field(default_factory=list)
    # {output topic: input topic}: exactly one output message per input message received
    one_per_input: Dict[str, str] = field(default_factory=dict)

    @property
    def fully_qualified_name(self) -> str:
        ns = self.namespace.strip("/")
        return f"/{ns}/{self.name}" if ns else f"/{self.name}"

    def ros_args(self) -> List[str]:
        """The `--ros-args ...` that `ros2 launch` would pass for this node."""
        args = ["--ros-args", "-r", f"__node:={self.name}"]
        if self.namespace:
            args += ["-r", f"__ns:=/{self.namespace.strip('/')}"]
        for f in self.parameter_files:
            args += ["--params-file", str(f)]
        for k, v in self.parameters.items():
            args += ["-p", f"{k}:={_param_literal(v)}"]
        for a, b in self.remappings.items():
            args += ["-r", f"{a}:={b}"]
        return args


def _param_literal(v: object) -> str:
    """A value as ROS parses `-p name:=value` (YAML)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(v)
    if isinstance(v, str) and (v == "" or v.strip() != v):
        return "'" + v.replace("'", "''") + "'"     # YAML-quoted (rcl cannot parse `name:=`)
    return str(v)


def load_graph(path: Optional[Path] = None) -> dict:
    path = Path(path) if path else share_dir() / "config" / "graph.yaml"
    with open(path) as f:
        graph = yaml.safe_load(f)
    if not isinstance(graph, dict) or "nodes" not in graph or "modes" not in graph:
        raise GraphError(f"{path}: expected top-level 'nodes' and 'modes'")
    for mode, m in graph["modes"].items():
        for key in m.get("nodes", []):
            if key not in graph["nodes"]:
                raise GraphError(f"{path}: mode '{mode}' names unknown node '{key}'")
    return graph


def modes(graph: Optional[dict] = None) -> Dict[str, str]:
    graph = graph or load_graph()
    return {k: v.get("description", "") for k, v in graph["modes"].items()}


def nodes_for_mode(mode: str, graph: Optional[dict] = None,
                   overrides: Optional[Dict[str, Dict[str, object]]] = None,
                   config_dir: Optional[Path] = None) -> List[NodeSpec]:
    """NodeSpecs of `mode`, in start order. `overrides` = {node_key: {param: value}}."""
    graph = graph or load_graph()
    if mode not in graph["modes"]:
        raise GraphError(f"unknown mode '{mode}'; known: {sorted(graph['modes'])}")
    m = graph["modes"][mode]
    config_dir = Path(config_dir) if config_dir else share_dir() / "config"
    specs = []
    for key in m.get("nodes", []):
        n = graph["nodes"][key]
        params: Dict[str, object] = {}
        if m.get("use_sim_time", False):
            params["use_sim_time"] = True
        params.update((m.get("parameters") or {}).get(key, {}) or {})
        params.update((overrides or {}).get(key, {}))
        files = []
        for fname in n.get("parameters", []) or []:
            p = config_dir / fname
            if not p.exists():
                raise GraphError(f"node '{key}': parameter file not found: {p}")
            files.append(p)
        specs.append(NodeSpec(
            key=key, executable=n["executable"], name=n.get("name", key),
            namespace=n.get("namespace", "") or "", parameter_files=files,
            remappings=dict(n.get("remappings") or {}), parameters=params,
            publishes=list(n.get("publishes") or []),
            subscribes=list(n.get("subscribes") or []),
            one_per_input=dict(n.get("one_per_input") or {})))
    return specs


@dataclass(frozen=True)
class Link:
    """One topic from one node of a mode to another (fully qualified node names)."""
    topic: str
    publisher: str
    subscriber: str

    def __str__(self) -> str:
        return f"{self.topic} ({self.publisher} -> {self.subscriber})"


def mode_inputs(specs: Sequence[NodeSpec]) -> List[str]:
    """Topics the nodes subscribe to that none of them publishes (what a bag must feed)."""
    internal = {t for s in specs for t in s.publishes}
    out: List[str] = []
    for s in specs:
        out += [t for t in s.subscribes if t not in internal and t not in out]
    return out


def data_links(specs: Sequence[NodeSpec], sources: Iterable[str]) -> List[Link]:
    """The links between two nodes of `specs` that carry data derived from `sources` (e.g.
    the topics a bag plays), from the description's publishes/subscribes. A node is fed
    when it subscribes to a source or to a topic that a fed node publishes; each topic a fed
    node publishes and another node subscribes to is one link per (publisher, subscriber)."""
    fed_topics, fed = set(sources), set()
    changed = True
    while changed:
        changed = False
        for s in specs:
            if s.key not in fed and fed_topics.intersection(s.subscribes):
                fed.add(s.key)
                fed_topics.update(s.publishes)
                changed = True
    links: List[Link] = []
    for pub in specs:
        if pub.key not in fed:
            continue
        for topic in pub.publishes:
            for sub in specs:
                link = Link(topic, pub.fully_qualified_name, sub.fully_qualified_name)
                if (topic in sub.subscribes and sub.fully_qualified_name != link.publisher
                        and link not in links):
                    links.append(link)
    return links


def expected_counts(specs: Sequence[NodeSpec], played: Dict[str, int]) -> Dict[str, int]:
    """Messages each output should carry when the bag played `played` ({topic: count}),
    from the nodes' `one_per_input` ({output: input}): an output's count is the sum over the
    nodes that declare it of its input's count (a bag topic's played count, or another
    declared output's expected count). Outputs whose input is neither are left out."""
    rules: Dict[str, List[str]] = {}
    for s in specs:
        for out, inp in s.one_per_input.items():
            rules.setdefault(out, []).append(inp)
    memo: Dict[str, Optional[int]] = {}

    def count(topic: str, seen: frozenset) -> Optional[int]:
        if topic in played:
            return played[topic]
        if topic not in rules or topic in seen:
            return None
        if topic not in memo:
            parts = [count(i, seen | {topic}) for i in rules[topic]]
            memo[topic] = None if any(p is None for p in parts) else sum(parts)
        return memo[topic]

    out = {t: count(t, frozenset()) for t in rules if t not in played}
    return {t: n for t, n in out.items() if n is not None}


def parse_overrides(items: List[str]) -> dict:
    """-p node.param:=value -> {node: {param: value}} with YAML typing of the value."""
    out: dict = {}
    for item in items:
        if ":=" not in item or "." not in item.split(":=", 1)[0]:
            raise ValueError(f"bad -p '{item}': expected node_key.param:=value")
        lhs, value = item.split(":=", 1)
        node, param = lhs.split(".", 1)
        out.setdefault(node, {})[param] = yaml.safe_load(value)
    return out
