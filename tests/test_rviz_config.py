"""rviz/autonomy_stack.rviz: valid RViz2 YAML with the displays the vector space needs, and
every topic it names is published by some node of config/graph.yaml (`publishes:` lists)."""
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
RVIZ = ROOT / "rviz" / "autonomy_stack.rviz"
CAMERAS = ["main", "narrow", "fisheye", "left_pillar", "right_pillar", "left_repeater",
           "right_repeater", "rear"]


def _displays(cfg):
    out = []

    def walk(ds):
        for d in ds or []:
            out.append(d)
            walk(d.get("Displays"))           # display groups
    walk(cfg["Visualization Manager"]["Displays"])
    return out


def _topics(cfg):
    """Every topic the config subscribes to: (display class, topic)."""
    res = []
    for d in _displays(cfg):
        for key in ("Topic", "Update Topic"):
            t = d.get(key)
            if isinstance(t, dict) and t.get("Value"):
                res.append((d["Class"], t["Value"]))
    return res


def _graph_published():
    graph = yaml.safe_load((ROOT / "config" / "graph.yaml").read_text())
    pubs = {}
    for key, node in graph["nodes"].items():
        for t in node.get("publishes") or []:
            pubs.setdefault(t, []).append(key)
    return pubs


def unpublished(cfg, published):
    return sorted({t for _, t in _topics(cfg) if t not in published})


def test_rviz_yaml_is_valid_rviz2_config():
    cfg = yaml.safe_load(RVIZ.read_text())
    vm = cfg["Visualization Manager"]
    assert vm["Global Options"]["Fixed Frame"] == "odom"
    assert vm["Transformation"]["Current"]["Class"] == "rviz_default_plugins/TF"
    assert vm["Views"]["Current"]["Class"].startswith("rviz_default_plugins/")
    for d in _displays(cfg):
        assert d["Class"].startswith(("rviz_default_plugins/", "rviz_common/")), d
        assert isinstance(d.get("Name"), str) and isinstance(d.get("Enabled"), bool), d
        t = d.get("Topic")
        if t is not None:
            assert t["Value"].startswith("/")
            assert t["Reliability Policy"] in ("Reliable", "Best Effort", "System Default")
            assert t["Durability Policy"] in ("Volatile", "Transient Local", "System Default")
    assert {p["Class"] for p in cfg["Panels"]} >= {"rviz_common/Displays", "rviz_common/Views"}


def test_rviz_shows_cameras_bev_markers_path_and_tf():
    cfg = yaml.safe_load(RVIZ.read_text())
    by_class = {}
    for cls, t in _topics(cfg):
        by_class.setdefault(cls, set()).add(t)
    assert by_class["rviz_default_plugins/Image"] == {f"/cameras/{c}/image_rect" for c in CAMERAS}
    # one Map display per BEV layer the graph publishes
    bev = {t for t in _graph_published() if t.startswith("/perception/bev/")}
    assert bev and by_class["rviz_default_plugins/Map"] == bev
    assert {"/perception/markers", "/planning/markers"} <= by_class["rviz_default_plugins/MarkerArray"]
    assert by_class["rviz_default_plugins/Path"] == {"/planning/path"}
    assert any(d["Class"] == "rviz_default_plugins/TF" and d["Enabled"] for d in _displays(cfg))


def test_every_rviz_topic_is_published_by_the_graph():
    cfg = yaml.safe_load(RVIZ.read_text())
    published = _graph_published()
    assert unpublished(cfg, published) == [], (
        "topics in rviz/autonomy_stack.rviz that no node of config/graph.yaml lists under "
        "`publishes:`")
    # the check itself can fail: a display on a topic nobody publishes is reported
    cfg["Visualization Manager"]["Displays"].append(
        {"Class": "rviz_default_plugins/Image", "Name": "x", "Enabled": True,
         "Topic": {"Value": "/cameras/main/image_nobody"}})
    assert unpublished(cfg, published) == ["/cameras/main/image_nobody"]
