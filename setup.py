"""ament_python package `autonomy_stack` (also pip-installable into a plain venv)."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "autonomy_stack"

# Executables of the node graph (config/graph.yaml names them) and the command-line tool.
NODES = {
    "vehicle_description": "autonomy_vehicle.nodes.vehicle_description_node:main",
    "stack_monitor": "autonomy_tools.nodes.stack_monitor_node:main",
    "simulator_node": "autonomy_simulator.nodes.simulator_node:main",
    "rectification_node": "autonomy_perception.nodes.rectification_node:main",
    "perception_node": "autonomy_perception.nodes.perception_node:main",
    "planning_node": "autonomy_planning.nodes.planning_node:main",
    "control_node": "autonomy_control.nodes.control_node:main",
    "supervisor_node": "autonomy_control.nodes.supervisor_node:main",
}
TOOLS = {
    "autonomy-stack": "autonomy_tools.cli:main",
}

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[
        "autonomy_stack", "autonomy_stack.*",
        "autonomy_vehicle", "autonomy_vehicle.*",
        "autonomy_perception", "autonomy_perception.*",
        "autonomy_planning", "autonomy_planning.*",
        "autonomy_control", "autonomy_control.*",
        "autonomy_simulator", "autonomy_simulator.*",
        "autonomy_replay", "autonomy_replay.*",
        "autonomy_autolabel", "autonomy_autolabel.*",
        "autonomy_tools", "autonomy_tools.*",
    ]),
    # *.glsl: the renderer's shader sources (autonomy_simulator/rendering/), read at run time
    package_data={"": ["*.yaml", "*.json", "*.pt", "*.npz", "*.glsl"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
        (f"share/{PACKAGE}/rviz", glob("rviz/*.rviz")),
        (f"share/{PACKAGE}/models", glob("models/*.pt") + glob("models/*.json")),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="Autonomy stack maintainers",
    maintainer_email="maintainers@autonomy-stack.dev",
    description="Camera-only autonomy stack for ROS 2: rectification, BEV/video perception, "
                "joint multi-agent planning, control, simulator and bag replay.",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [f"{k} = {v}" for k, v in {**NODES, **TOOLS}.items()],
    },
)
