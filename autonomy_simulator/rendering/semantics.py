"""Semantic class ids of the rendered label images and the colour palette of the scene
(ground, kerbs, sky, default object colours, mesh part colours)."""
from typing import Dict

from autonomy_stack.vector_space import ObjectClass

SEM_NONE = 0          # outside the lens' image circle
SEM_SKY = 1
SEM_GROUND = 2        # verge / grass
SEM_ROAD = 3          # asphalt (drivable area)
SEM_LANE_MARKING = 4  # lane paint, stop lines, bay lines
SEM_ROAD_EDGE = 5     # border strip of the asphalt (no height)
SEM_CURB = 6          # kerb stones (with height)
SEM_OBJECT_BASE = 10  # object class c -> 10 + c (ObjectClass values)

SEMANTIC_CLASSES: Dict[int, str] = {
    SEM_NONE: "none", SEM_SKY: "sky", SEM_GROUND: "ground", SEM_ROAD: "road",
    SEM_LANE_MARKING: "lane_marking", SEM_ROAD_EDGE: "road_edge", SEM_CURB: "curb",
}
for _c in ObjectClass:
    SEMANTIC_CLASSES[SEM_OBJECT_BASE + int(_c)] = _c.name.lower()


def semantic_of_object_class(c: int) -> int:
    return SEM_OBJECT_BASE + int(c)


ASPHALT = (0.31, 0.31, 0.32)
EDGE_COLOR = (0.45, 0.42, 0.37)
CURB_COLOR = (0.72, 0.71, 0.68)
SKY_ZENITH = (0.30, 0.50, 0.82)
SKY_HORIZON = (0.78, 0.84, 0.90)
DEFAULT_COLORS = {
    ObjectClass.CAR: (0.6, 0.6, 0.65), ObjectClass.TRUCK: (0.85, 0.85, 0.82),
    ObjectClass.PEDESTRIAN: (0.2, 0.35, 0.7), ObjectClass.CYCLIST: (0.8, 0.2, 0.2),
    ObjectClass.CONE: (1.0, 0.45, 0.0), ObjectClass.POLE: (0.55, 0.55, 0.6),
    ObjectClass.BARRIER: (0.9, 0.9, 0.9), ObjectClass.UNKNOWN: (0.5, 0.4, 0.3),
}
GLASS = (0.10, 0.12, 0.15)
TYRE = (0.05, 0.05, 0.05)
SKIN = (0.85, 0.68, 0.55)
TROUSERS = (0.15, 0.15, 0.22)
