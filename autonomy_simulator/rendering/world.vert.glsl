#version 330
uniform mat4 u_view;      // world -> face optical frame (x right, y down, z forward)
uniform vec4 u_intr;      // 2f/w, 2f/h, 2(cx+.5)/w-1, 2(cy+.5)/h-1
uniform vec2 u_clip;      // near, far
in vec3 in_pos;
in vec3 in_normal;
in vec3 in_color;
in vec2 in_label;
out vec3 v_world;
out vec3 v_normal;
out vec3 v_color;
flat out vec2 v_label;
void main() {
    vec4 pc = u_view * vec4(in_pos, 1.0);
    float n = u_clip.x, f = u_clip.y;
    gl_Position = vec4(u_intr.x * pc.x + u_intr.z * pc.z,
                       u_intr.y * pc.y + u_intr.w * pc.z,
                       (f + n) / (f - n) * pc.z - 2.0 * f * n / (f - n),
                       pc.z);
    v_world = in_pos;
    v_normal = in_normal;
    v_color = in_color;
    v_label = in_label;
}
