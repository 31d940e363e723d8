"""The detection head's classes <-> the vector space's object classes (one mapping for
training targets, decoding and evaluation). The head has one "static" class for cones,
poles, barriers and unknown obstacles; decoded static objects are reported as BARRIER."""
from __future__ import annotations

from autonomy_stack.vector_space import ObjectClass

DET_CLASS_OF = {ObjectClass.CAR: "car", ObjectClass.TRUCK: "truck",
                ObjectClass.PEDESTRIAN: "pedestrian", ObjectClass.CYCLIST: "cyclist",
                ObjectClass.CONE: "static", ObjectClass.POLE: "static",
                ObjectClass.BARRIER: "static", ObjectClass.UNKNOWN: "static"}
OBJECT_CLASS_OF = {"car": ObjectClass.CAR, "truck": ObjectClass.TRUCK,
                   "pedestrian": ObjectClass.PEDESTRIAN, "cyclist": ObjectClass.CYCLIST,
                   "static": ObjectClass.BARRIER}
