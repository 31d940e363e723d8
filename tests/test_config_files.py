"""Every parameter file in config/ matches its node's declarations: no unknown key (ROS
would ignore a typo silently), every value of the declared type and in range; the
generated parameter reference is up to date."""
import importlib

import pytest
import yaml

from autonomy_stack.graph import load_graph
from autonomy_tools.param_docs import node_modules, render
from autonomy_stack.paths import SOURCE_ROOT

GRAPH = load_graph()


@pytest.mark.parametrize("key", sorted(GRAPH["nodes"]))
def test_parameter_files_match_declarations(key):
    n = GRAPH["nodes"][key]
    module = importlib.import_module(node_modules()[n["executable"]])
    specs = {s.name: s for s in module.PARAMS}
    assert specs, f"{key}: no PARAMS declared"
    for fname in n.get("parameters", []):
        data = yaml.safe_load((SOURCE_ROOT / "config" / fname).read_text())
        params = data["/**"]["ros__parameters"]
        for name, value in params.items():
            assert name in specs or name == "use_sim_time", f"config/{fname}: unknown parameter '{name}'"
            if name in specs:
                specs[name].validate(value)
    for mode, m in GRAPH["modes"].items():
        for name, value in ((m.get("parameters") or {}).get(key) or {}).items():
            assert name in specs, f"mode {mode}: unknown parameter '{name}' for {key}"
            specs[name].validate(value)


def test_parameter_reference_is_up_to_date():
    committed = (SOURCE_ROOT / "docs" / "parameters.md").read_text()
    assert committed == render() + "\n", "regenerate: python -m autonomy_tools.param_docs > docs/parameters.md"
