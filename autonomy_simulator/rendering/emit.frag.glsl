// Fragment outputs shared by object.frag.glsl and ground.frag.glsl (pasted in by their
// `#include` line, see shaders.py): colour with distance fog, label (16-bit instance index +
// semantic class) and the inverse depth along the face's axis.
uniform vec3 u_campos;
uniform vec3 u_sun;
uniform vec3 u_fog;
uniform float u_fog_dist;
layout(location = 0) out vec4 o_color;
layout(location = 1) out vec4 o_label;
layout(location = 2) out float o_invz;
void emit(vec3 col, float cls, float inst) {
    float d = length(v_world - u_campos);
    float fog = 1.0 - exp(-d / u_fog_dist);
    o_color = vec4(mix(col, u_fog, fog), 1.0);
    float lo = mod(inst, 256.0);
    float hi = floor(inst / 256.0);
    o_label = vec4(lo / 255.0, hi / 255.0, cls / 255.0, 1.0);
    o_invz = gl_FragCoord.w;     // 1 / depth along the face's axis (affine on planes)
}
