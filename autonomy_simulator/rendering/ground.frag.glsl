#version 330
in vec3 v_world;
in vec3 v_normal;
in vec3 v_color;
flat in vec2 v_label;
uniform sampler2D u_fine_col;
uniform sampler2D u_fine_cls;
uniform vec4 u_fine_rect;    // x0, y0, 1/extent_x, 1/extent_y
uniform sampler2D u_coarse_col;
uniform sampler2D u_coarse_cls;
uniform vec4 u_coarse_rect;
uniform vec3 u_verge;

#include "emit.frag.glsl"

void main() {
    vec2 p = v_world.xy;
    vec2 uf = (p - u_fine_rect.xy) * u_fine_rect.zw;
    vec2 uc = (p - u_coarse_rect.xy) * u_coarse_rect.zw;
    vec3 col;
    float cls;
    if (all(greaterThan(uf, vec2(0.002))) && all(lessThan(uf, vec2(0.998)))) {
        col = texture(u_fine_col, uf).rgb;
        cls = floor(texture(u_fine_cls, uf).r * 255.0 + 0.5);
    } else if (all(greaterThan(uc, vec2(0.0))) && all(lessThan(uc, vec2(1.0)))) {
        col = texture(u_coarse_col, uc).rgb;
        cls = floor(texture(u_coarse_cls, uc).r * 255.0 + 0.5);
    } else {
        col = u_verge;
        cls = 2.0;
    }
    // fine grain near the camera: a hash per 2.5 cm cell (arithmetic is much cheaper than
    // another filtered texture fetch on llvmpipe); the coarser variation is baked into the
    // ground rasters
    vec2 cell = floor(p * 40.0);
    float h = fract(sin(dot(cell, vec2(12.9898, 78.233))) * 43758.5453);
    float fade = clamp(1.0 - length(v_world - u_campos) / 25.0, 0.0, 1.0);
    float grain = (cls == 2.0) ? 0.35 : 0.18;
    col *= 1.0 + grain * fade * (h - 0.5);
    float diff = max(u_sun.z, 0.0);
    col *= 0.55 + 0.55 * diff;
    emit(col, cls, 0.0);
}
