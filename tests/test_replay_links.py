"""Graph links and loss accounting of the replay, without ROS: which links of a mode carry
the bag's data (autonomy_stack.graph.data_links), when a link counts as matched
(autonomy_replay.links.link_problem), expected counts chained through `one_per_input`, and
the usage errors of the new options."""
from types import SimpleNamespace

import pytest

from autonomy_replay import command as C
from autonomy_replay.links import endpoint_node, link_problem, losses
from autonomy_stack.graph import Link, NodeSpec, data_links, expected_counts, nodes_for_mode


def _spec(key, subscribes=(), publishes=(), one_per_input=None, namespace=""):
    return NodeSpec(key=key, executable=key, name=key, namespace=namespace,
                    subscribes=list(subscribes), publishes=list(publishes),
                    one_per_input=dict(one_per_input or {}))


def test_demo_mode_links_follow_the_bag_data():
    demo = nodes_for_mode("demo")
    cams = ["/cameras/main/image_raw", "/cameras/main/camera_info", "/odom", "/tf_static"]
    links = data_links(demo, cams)
    assert Link("/cameras/main/image_rect", "/rectification", "/perception") in links
    assert Link("/cameras/rear/image_rect", "/rectification", "/perception") in links
    assert Link("/perception/objects", "/perception", "/planning") in links
    assert Link("/perception/road", "/perception", "/planning") in links
    assert Link("/planning/trajectory", "/planning", "/control_node") in links
    # no link from a node to itself (rectification republishes /tf_static), none to nobody
    assert all(link.publisher != link.subscriber for link in links)
    assert not any(link.topic == "/diagnostics" for link in links)
    # a bag without cameras does not feed rectification: its outputs are not waited for
    no_cams = data_links(demo, ["/odom"])
    assert not any(link.publisher == "/rectification" for link in no_cams)
    assert Link("/planning/trajectory", "/planning", "/control_node") in no_cams
    # nothing of the mode reads the bag: nothing to wait for
    assert data_links(demo, ["/unrelated"]) == []
    assert data_links(nodes_for_mode("smoke"), cams) == []


def test_links_chain_through_fed_nodes_only():
    a = _spec("a", ["/in"], ["/x"])
    b = _spec("b", ["/x"], ["/y"], namespace="ns")
    c = _spec("c", ["/y", "/z"], [])
    idle = _spec("idle", [], ["/z"])           # publishes, but nothing from the bag
    links = data_links([a, b, c, idle], ["/in"])
    assert links == [Link("/x", "/a", "/ns/b"), Link("/y", "/ns/b", "/c")]
    assert str(links[0]) == "/x (/a -> /ns/b)"


def _info(node, ns="/", qos="q"):
    return SimpleNamespace(node_name=node, node_namespace=ns, qos_profile=qos)


def test_link_problem_needs_both_named_endpoints_with_matching_qos():
    link = Link("/x", "/a", "/ns/b")
    ok = lambda p, s: p == s      # noqa: E731
    assert endpoint_node(_info("b", "/ns/")) == "/ns/b" and endpoint_node(_info("a")) == "/a"
    assert link_problem(link, [_info("a")], [_info("b", "/ns")], ok) is None
    # the player's view alone (someone else subscribes) is not enough
    assert link_problem(link, [_info("a")], [_info("bag_replay")], ok) == \
        "no subscription of /ns/b"
    assert link_problem(link, [], [], ok) == "no subscription of /ns/b and no publisher of /a"
    assert link_problem(link, [_info("a", qos="reliable")], [_info("b", "/ns", "other")],
                        ok) == "publisher and subscription have incompatible QoS"


def test_expected_counts_chain_one_per_input_from_the_played_counts():
    specs = [_spec("a", one_per_input={"/x": "/in"}),
             _spec("b", one_per_input={"/y": "/x", "/lat": "/x"}),
             _spec("c", one_per_input={"/lat": "/in2"}),      # two nodes feed /lat
             _spec("d", one_per_input={"/u": "/unknown"}),
             _spec("e", one_per_input={"/p": "/q"}), _spec("f", one_per_input={"/q": "/p"})]
    assert expected_counts(specs, {"/in": 50, "/in2": 3}) == {
        "/x": 50, "/y": 50, "/lat": 53}
    assert expected_counts(specs, {"/in": 0}) == {"/x": 0, "/y": 0}
    assert losses({"/x": 50, "/y": 50, "/z": 0}, {"/x": 50, "/y": 16}) == {
        "/y": {"received": 16, "expected": 50}}


@pytest.fixture(scope="module")
def small_bag(tmp_path_factory):
    from autonomy_replay.synthetic import write_synthetic_bag
    return write_synthetic_bag(tmp_path_factory.mktemp("bag") / "in", duration=0.2,
                               odom_hz=10, camera_hz=5, cameras=("main",))


def test_new_options_usage_errors(small_bag, tmp_path, capsys):
    bag = str(small_bag)
    assert C.main([bag, "--expect", "/x=3"]) == C.EXIT_USAGE            # nothing recorded
    assert "--expect needs the outputs recorded" in capsys.readouterr().err
    assert C.main([bag, "--record", str(tmp_path / "o"), "--expect", "x"]) == C.EXIT_USAGE
    assert C.main([bag, "--graph", "no_such_mode"]) == C.EXIT_USAGE
    assert "unknown mode 'no_such_mode'" in capsys.readouterr().err
    assert C.main([bag, "--nodes", "smoke", "--graph-file", "g.yaml"]) == C.EXIT_USAGE
    assert C.main([bag, "--graph-file", str(tmp_path / "missing.yaml"),
                   "--graph", "x"]) == C.EXIT_USAGE
