"""GLSL sources of the renderer. They live as `.glsl` files next to this module (installed
as package data: `setup.py` `package_data`, so a wheel, `pip install -e .` and colcon's
install space all carry them) and are read on first use through `importlib.resources`.

| file | stage | draws |
|---|---|---|
| `world.vert.glsl` | vertex | world-space triangles (objects, kerbs, ground) into a face crop |
| `object.frag.glsl` | fragment | objects and kerbs: flat colour, diffuse + sky light, sheen |
| `ground.frag.glsl` | fragment | the ground quad textured from the fine/coarse ground rasters |
| `sky.vert.glsl`, `sky.frag.glsl` | both | the sky gradient, sun and fog below the horizon |
| `emit.frag.glsl` | fragment (included) | the shared outputs: fogged colour, label, inverse depth |

GLSL has no include of its own: a line `#include "name.glsl"` is replaced by that file's
text here.
"""
import functools
import re
from importlib import resources

_INCLUDE = re.compile(r'^[ \t]*#include[ \t]+"([^"]+)"[ \t]*$', re.M)


@functools.lru_cache(maxsize=None)
def shader_source(name: str) -> str:
    """Text of the shader file `name` (e.g. "world.vert.glsl") with its includes expanded."""
    text = resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
    return _INCLUDE.sub(lambda m: shader_source(m.group(1)), text)


def program(ctx, vertex: str, fragment: str):
    """A moderngl program from two shader files of this folder."""
    return ctx.program(vertex_shader=shader_source(vertex), fragment_shader=shader_source(fragment))
