"""The contract between the simulator's world/agents (which produce it) and its renderer
and label writers (which consume it): everything visible at one instant, in the world
frame (x, y on the ground plane z = 0, z up)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from autonomy_stack.vector_space import EgoState, ObjectState, RoadLine


@dataclass
class PaintedLine:
    """Lane paint as the renderer draws it (the label is `line`)."""
    line: RoadLine
    width: float = 0.15                        # m
    color: Tuple[float, float, float] = (0.9, 0.9, 0.9)   # RGB 0..1 (white / yellow)
    dash_length: float = 0.0                   # m; 0 = solid
    gap_length: float = 0.0                    # m


@dataclass
class SceneSnapshot:
    stamp: float                               # s (sim time)
    ego: EgoState
    drivable_polygons: List[np.ndarray]        # each Mx2, asphalt surface (z = 0)
    painted_lines: List[PaintedLine]           # lane lines, stop lines, bay lines
    curbs: List[RoadLine]                      # line_type CURB, `height` > 0 (kerb stones)
    road_edges: List[RoadLine]                 # line_type ROAD_EDGE (asphalt border, no height)
    objects: List[ObjectState]                 # agents + static obstacles (boxes)
    object_colors: Dict[int, Tuple[float, float, float]] = field(default_factory=dict)
    ground_color: Tuple[float, float, float] = (0.35, 0.42, 0.28)   # grass/verge
    seed: int = 0                              # texture / noise seed for this world
