"""Where the package's data files live, in a source checkout and in an installed share/."""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_NAME = "autonomy_stack"
SOURCE_ROOT = Path(__file__).resolve().parent.parent


def share_dir() -> Path:
    """Directory holding `config/`, `launch/` and `rviz/`.

    Prefers the source checkout (editable installs, tests); falls back to the ament
    index of an installed package (colcon build on a full ROS 2 install).
    """
    if (SOURCE_ROOT / "config" / "graph.yaml").exists():
        return SOURCE_ROOT
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        candidate = Path(prefix) / "share" / PACKAGE_NAME
        if (candidate / "config" / "graph.yaml").exists():
            return candidate
    raise FileNotFoundError(
        f"cannot find the {PACKAGE_NAME} share directory (config/graph.yaml) in the source "
        "tree or on AMENT_PREFIX_PATH; source the workspace's setup file")


def config_file(name: str) -> Path:
    path = share_dir() / "config" / name
    if not path.exists():
        raise FileNotFoundError(f"config file not found: {path}")
    return path
