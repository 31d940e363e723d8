import math

import numpy as np

from autonomy_stack import vector_space as vs


def test_transform_vector_space_moves_objects_lines_and_headings():
    v = vs.VectorSpace(stamp=1.0, frame_id="base_link",
                       objects=[vs.ObjectState(1, vs.ObjectClass.CAR, 10.0, 0.0, 0.0, 4.5, 1.9, 1.5, speed=3.0)],
                       lines=[vs.RoadLine(2, vs.LineType.CURB, np.array([[0.0, 1.0], [5.0, 1.0]]))],
                       drivable_area=np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]))
    out = vs.transform_vector_space(v, 100.0, 50.0, math.pi / 2, "odom")
    o = out.objects[0]
    assert out.frame_id == "odom"
    assert np.allclose([o.x, o.y, o.yaw, o.speed], [100.0, 60.0, math.pi / 2, 3.0])
    assert np.allclose(o.vx, 0.0, atol=1e-9) and np.allclose(o.vy, 3.0)
    assert np.allclose(out.lines[0].points, [[99.0, 50.0], [99.0, 55.0]])
    assert np.allclose(out.drivable_area[1], [100.0, 51.0])
    # input untouched
    assert v.objects[0].x == 10.0 and v.lines[0].points[0, 0] == 0.0
