#version 330
noperspective in vec3 v_dir;
uniform vec3 u_zenith;
uniform vec3 u_horizon;
uniform vec3 u_fog;
uniform vec3 u_sun;
layout(location = 0) out vec4 o_color;
layout(location = 1) out vec4 o_label;
layout(location = 2) out float o_invz;
void main() {
    vec3 d = normalize(v_dir);
    float e = clamp(d.z, 0.0, 1.0);
    vec3 col = mix(u_horizon, u_zenith, pow(e, 0.6));
    col += vec3(1.0, 0.95, 0.8) * pow(max(dot(d, u_sun), 0.0), 400.0);
    if (d.z < 0.0) col = u_fog;
    o_color = vec4(col, 1.0);
    o_label = vec4(0.0, 0.0, 1.0 / 255.0, 1.0);
    o_invz = 0.0;                // infinitely far
}
