"""Model configuration: one nested dict (loaded from `config/perception_model*.yaml`) merged
over DEFAULTS. The checkpoint stores the full merged config; loading a checkpoint against a
different architecture config fails with `CheckpointError` naming the differing keys."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

from .geometry import resolve_virtual_cameras

CAMERAS = ["main", "narrow", "fisheye", "left_pillar", "right_pillar",
           "left_repeater", "right_repeater", "rear"]

# Seg channels of the BEV segmentation head, in order (the simulator's BEV label layers:
# drivable area, lane paint, road edges + curbs).
SEG_CLASSES = ["drivable", "lane", "edge"]
# Detection classes (names map onto autonomy_stack.vector_space.ObjectClass).
DET_CLASSES = ["car", "truck", "pedestrian", "cyclist", "static"]

DEFAULTS: Dict[str, Any] = {
    "name": "tiny_cpu",
    "input_hw": [96, 128],
    "cameras": list(CAMERAS),
    # Virtual (rectified) camera rig at the network input resolution.
    #   source: virtual_cameras -> config/virtual_cameras.yaml (the rectification layer's
    #           virtual cameras) scaled to input_hw; resolved into explicit numbers when
    #           the config is built, so a checkpoint carries its own geometry;
    #   source: default -> geometry.default_virtual_rig (synthetic tests);
    #   source: explicit, cameras: [...] -> as stored in a checkpoint.
    "rig": {"source": "virtual_cameras"},
    "regnet": {"depth": 8, "w0": 16, "wa": 12.0, "wm": 2.0, "group_width": 8,
               "bottleneck": 1.0, "stem_width": 16, "se_ratio": 0.25},
    "fpn": {"channels": 48, "layers": 2, "levels": [1, 2, 3]},
    "bev": {"x_range": [-24.0, 24.0], "y_range": [-24.0, 24.0], "resolution": 1.0,
            "channels": 48, "heads": 4, "feature_level": 0, "column_band": 1,
            "heights": [0.0, 1.0], "query_chunk": 1024, "pe_freqs": 6,
            # "pillars": geometry-aware sampling at projected pillar points (pillar_attention);
            # "columns": round 1's attention over the image columns that see a cell
            "attention": "columns", "points": 2},
    "queue": {"time_period": 0.0275, "time_length": 2, "space_distance": 2.0,
              "space_length": 2},
    "video": {"enabled": True, "hidden": 48},
    "trunk": {"channels": 48, "blocks": 2},
    "heads": {
        "segmentation": {"classes": list(SEG_CLASSES)},
        "detection": {"classes": list(DET_CLASSES)},
    },
}

# Keys whose values change tensor shapes or semantics of the weights.
ARCH_KEYS = ["input_hw", "cameras", "rig", "regnet", "fpn", "bev", "queue", "video",
             "trunk", "heads"]


class ConfigError(ValueError):
    pass


def _merge(base: Dict[str, Any], over: Dict[str, Any], path: str = "") -> Dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if k not in base and path != "" and not path.startswith(("heads", "rig")):
            raise ConfigError(f"unknown model config key '{path}{k}'")
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v, f"{path}{k}.")
        else:
            out[k] = copy.deepcopy(v)
    return out


def model_config(over: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    cfg = _merge(DEFAULTS, over or {})
    h, w = cfg["input_hw"]
    if h % 32 or w % 32:
        raise ConfigError(f"input_hw {cfg['input_hw']} must be multiples of 32")
    if len(cfg["cameras"]) < 1:
        raise ConfigError("cameras must not be empty")
    if cfg["rig"].get("source") == "virtual_cameras":
        cfg["rig"] = resolve_virtual_cameras(cfg["cameras"], w, h, cfg["rig"].get("path"))
    return cfg


def load_yaml(path: str | Path) -> Dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    return data


def load_model_config(path: str | Path) -> Dict[str, Any]:
    """A YAML with a top-level `model:` section (training configs have more sections)."""
    data = load_yaml(path)
    return model_config(data.get("model", data))


def arch_diff(a: Dict[str, Any], b: Dict[str, Any]) -> List[str]:
    """Dotted keys whose values differ between two configs (architecture keys only)."""
    diffs: List[str] = []

    def rec(x, y, p):
        if isinstance(x, dict) and isinstance(y, dict):
            for k in sorted(set(x) | set(y)):
                rec(x.get(k), y.get(k), f"{p}.{k}" if p else k)
        elif x != y:
            diffs.append(f"{p}: {x!r} != {y!r}")

    for k in ARCH_KEYS:
        rec(a.get(k), b.get(k), k)
    return diffs
