#version 330
in vec2 in_ndc;
in vec3 in_dir;
noperspective out vec3 v_dir;
void main() {
    gl_Position = vec4(in_ndc, 0.999999, 1.0);
    v_dir = in_dir;
}
