#version 330
in vec3 v_world;
in vec3 v_normal;
in vec3 v_color;
flat in vec2 v_label;

#include "emit.frag.glsl"

void main() {
    vec3 n = normalize(v_normal);
    float diff = max(dot(n, u_sun), 0.0);
    float sky = 0.5 + 0.5 * n.z;
    vec3 col = v_color * (0.30 + 0.25 * sky + 0.60 * diff);
    // a little specular sheen on glass / paint
    vec3 vdir = normalize(u_campos - v_world);
    vec3 h = normalize(vdir + u_sun);
    col += vec3(0.25) * pow(max(dot(n, h), 0.0), 40.0);
    emit(col, v_label.x, v_label.y);
}
