"""ros2 launch autonomy_stack stack.launch.py mode:=<mode> [log_level:=info]

Builds the nodes of one mode from config/graph.yaml -- the same description the
standalone runner (`autonomy-stack up --mode <mode>`) reads.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from autonomy_stack.graph import PACKAGE, modes, nodes_for_mode


def node_actions(mode: str, log_level: str = "info"):
    """launch_ros Node actions of `mode` (also used by the launch-description test)."""
    actions = []
    for spec in nodes_for_mode(mode):
        actions.append(Node(
            package=PACKAGE,
            executable=spec.executable,
            name=spec.name,
            namespace=spec.namespace or None,
            parameters=[str(f) for f in spec.parameter_files] + ([spec.parameters] if spec.parameters else []),
            remappings=list(spec.remappings.items()),
            arguments=["--ros-args", "--log-level", log_level],
            output="screen",
        ))
    return actions


def _setup(context, *args, **kwargs):
    mode = LaunchConfiguration("mode").perform(context)
    log_level = LaunchConfiguration("log_level").perform(context)
    return node_actions(mode, log_level)


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("mode", default_value="smoke",
                              description="graph mode: " + ", ".join(modes())),
        DeclareLaunchArgument("log_level", default_value="info"),
        OpaqueFunction(function=_setup),
    ])
