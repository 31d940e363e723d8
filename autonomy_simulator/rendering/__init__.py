"""Offscreen OpenGL renderer of the 8-camera rig (no ROS).

`RigRenderer(rig).render(snapshot)` turns a `scene.SceneSnapshot` into, per camera, an RGB
image (uint8), a depth image (float32 metres along the optical axis; `range` is the
Euclidean distance), a semantic segmentation (uint8 class ids, `SEMANTIC_CLASSES`), an
instance image (int32 object ids, 0 = no object) and the visible pixel count of every object.

Library: moderngl on an EGL context (`backend='egl'`). On this machine EGL is Mesa's
llvmpipe (OpenGL 4.5 core, software rasteriser on the CPU, no display needed); on a GPU
machine the same code reaches the NVIDIA driver through EGL. A rasteriser with a depth
buffer gives exact occlusion and handles thousands of triangles per view for almost
nothing, which vectorised ray casting in numpy could not match on 2 cores.

Lens model: the GPU renders *ideal pinhole* views and `cv2.remap` warps them into the real
(distorted) camera. Why not distort in the vertex shader: lens distortion bends straight
edges, so every large triangle (ground, curbs, box faces) would need tessellation, and a
~180 degree fisheye cannot be expressed by a single projective transform at all (triangles
crossing 90 degrees break). The remap route is exact per pixel for every model of
`camera_models` (the maps come from `CameraCalibration.pixel_rays`, i.e. the same
undistortion as everywhere else).

How: each camera's field of view is covered by up to 5 faces of a cube aligned with its
optical axis (front, left, right, up, down); a face is rendered only where the camera's
pixels look through it (cropped to their bounding box), so the narrow camera renders one
small front crop, main/pillars/repeaters a front face plus slivers, the fisheye and the
rear camera a front face plus 4 partial side faces. All crops of all cameras are packed
into one atlas framebuffer (MRT: colour RGBA8, label RGBA8 = 16-bit instance index +
class, inverse face depth float32, depth buffer), drawn with one viewport per crop and
read back in one go. The remap maps (fixed-point, from the atlas to each camera's pixels,
computed once per intrinsic calibration and cached) depend only on intrinsics: a mounting
error only changes the view matrices. Colour is remapped bilinearly, labels with nearest
neighbour (no blended ids at object borders), inverse depth bilinearly on surfaces (exact
on planes) and nearest at depth edges. The GL context, programs, buffers, the atlas and
the ground textures are reused across frames; the ground textures (top-down rasters of
asphalt, paint, edges with a fine 5 cm level near the ego and a coarse 25 cm level further
out) are rebuilt only when the static road geometry changes or the ego leaves their
centre.

Modules, by concern:

| module | holds |
|---|---|
| `semantics` | semantic class ids (`SEM_*`, `SEMANTIC_CLASSES`) and the colour palette |
| `meshes` | per-class object meshes, objects and kerb stones as world-space vertex arrays |
| `ground` | top-down ground rasters (`GroundLayer`), value noise, the road-geometry key |
| `atlas` | cube-face crops per camera (`plan_faces`), atlas packing, remap maps, pixel rays |
| `shaders` | loader of the GLSL sources (`*.glsl` next to it; package data) |
| `rig_renderer` | `RigRenderer` (GL context, uploads, drawing, read back, remap), `RigFrame`, `label_visibility` |

Importing this package needs numpy and OpenCV only; moderngl is imported when a
`RigRenderer` is created.
"""
from autonomy_simulator.rendering.atlas import (CUBE_FACES, CameraMaps, FaceView,
                                                dense_pixel_rays, plan_faces)
from autonomy_simulator.rendering.ground import GroundLayer, noise_texture
from autonomy_simulator.rendering.meshes import (curb_vertices, object_bottom_z, object_mesh,
                                                 object_vertices)
from autonomy_simulator.rendering.rig_renderer import (CameraFrame, RigFrame, RigRenderer,
                                                       label_visibility)
from autonomy_simulator.rendering.semantics import (SEM_CURB, SEM_GROUND, SEM_LANE_MARKING,
                                                    SEM_NONE, SEM_OBJECT_BASE, SEM_ROAD,
                                                    SEM_ROAD_EDGE, SEM_SKY, SEMANTIC_CLASSES,
                                                    semantic_of_object_class)

__all__ = [
    "RigRenderer", "RigFrame", "CameraFrame", "label_visibility",
    "CUBE_FACES", "CameraMaps", "FaceView", "dense_pixel_rays", "plan_faces",
    "GroundLayer", "noise_texture",
    "curb_vertices", "object_bottom_z", "object_mesh", "object_vertices",
    "SEM_NONE", "SEM_SKY", "SEM_GROUND", "SEM_ROAD", "SEM_LANE_MARKING", "SEM_ROAD_EDGE",
    "SEM_CURB", "SEM_OBJECT_BASE", "SEMANTIC_CLASSES", "semantic_of_object_class",
]
