"""One description of the node graph: launch files and runner build from config/graph.yaml;
colcon discovers and builds every package with the documented command."""
import ast
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autonomy_stack.graph import load_graph, nodes_for_mode

ROOT = Path(__file__).resolve().parent.parent


def setup_py_executables():
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "NODES":
            return {k.value: v.value for k, v in zip(node.value.keys, node.value.values)}
    raise AssertionError("NODES not found in setup.py")


def test_every_graph_node_has_an_executable_params_and_module():
    graph = load_graph()
    exes = setup_py_executables()
    for key, n in graph["nodes"].items():
        assert n["executable"] in exes, f"node {key}: executable not in setup.py NODES"
        module = exes[n["executable"]].split(":")[0]
        assert importlib.util.find_spec(module) is not None, f"node {key}: module {module} missing"
        for f in n.get("parameters", []):
            assert (ROOT / "config" / f).exists(), f"node {key}: config/{f} missing"
    for mode in graph["modes"]:
        specs = nodes_for_mode(mode)
        assert specs, mode
        if graph["modes"][mode].get("use_sim_time"):
            assert all(s.parameters.get("use_sim_time") is True for s in specs)


def test_launch_file_builds_its_nodes_from_the_graph_description():
    if importlib.util.find_spec("launch") is None or importlib.util.find_spec("launch_ros") is None:
        pytest.skip("ROS 2 'launch'/'launch_ros' are not installable from PyPI; this test runs "
                    "on a full ROS 2 install")
    import launch  # noqa: F401  (PyPI's unrelated 'launch' has no LaunchDescription)
    if not hasattr(launch, "LaunchDescription"):
        pytest.skip("the installed 'launch' is not ROS 2 launch (PyPI name clash)")
    spec = importlib.util.spec_from_file_location("stack_launch", ROOT / "launch" / "stack.launch.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.generate_launch_description() is not None
    for mode in load_graph()["modes"]:
        actions = mod.node_actions(mode)
        assert len(actions) == len(nodes_for_mode(mode))


def test_launch_file_only_uses_the_graph_description():
    """Without `launch` installed, check statically that the launch file takes its nodes
    from autonomy_stack.graph (and hard-codes no executable)."""
    src = (ROOT / "launch" / "stack.launch.py").read_text()
    tree = ast.parse(src)
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert any(i.module == "autonomy_stack.graph" and any(a.name == "nodes_for_mode" for a in i.names)
               for i in imports)
    exes = setup_py_executables()
    consts = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert not (consts & set(exes)), "launch file hard-codes an executable name"


@pytest.mark.timeout(240)
def test_colcon_discovers_and_builds_every_package(tmp_path):
    colcon = shutil.which("colcon")
    if colcon is None:
        pytest.fail("colcon is not installed (tools/setup_env.sh installs it)")
    listed = subprocess.run([colcon, "list", "--base-paths", str(ROOT), str(ROOT / "interfaces")],
                            capture_output=True, text=True, cwd=tmp_path, timeout=60)
    names = {line.split()[0] for line in listed.stdout.splitlines() if line.strip()}
    assert names == {"autonomy_stack", "autonomy_interfaces"}, listed.stdout + listed.stderr
    env = dict(os.environ)
    env["AMENT_PREFIX_PATH"] = os.environ.get("AMENT_PREFIX_PATH", "")
    build = subprocess.run(
        [colcon, "build", "--base-paths", str(ROOT), str(ROOT / "interfaces"),
         "--cmake-args", "-DBUILD_TESTING=OFF", f"-DPython3_EXECUTABLE={sys.executable}"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=220)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    inst = tmp_path / "install"
    assert (inst / "autonomy_interfaces" / "share" / "autonomy_interfaces" / "msg" / "Object.msg").exists()
    share = inst / "autonomy_stack" / "share" / "autonomy_stack"
    assert (share / "config" / "graph.yaml").exists() and (share / "launch" / "stack.launch.py").exists()
    assert (inst / "autonomy_stack" / "share" / "ament_index" / "resource_index" / "packages" / "autonomy_stack").exists()
    for exe in setup_py_executables():
        assert (inst / "autonomy_stack" / "lib" / "autonomy_stack" / exe).exists(), exe


def test_ros_args_quote_empty_strings_and_serialise_lists():
    from autonomy_stack.graph import NodeSpec
    spec = NodeSpec(key="k", executable="e", name="n",
                    parameters={"s": "", "flag": False, "topics": ["/a", "/b"], "x": 1.5})
    args = spec.ros_args()
    assert "s:=''" in args and "flag:=false" in args and 'topics:=["/a", "/b"]' in args and "x:=1.5" in args
