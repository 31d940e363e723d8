"""The vector space's conventions end to end, with asymmetric fixtures (round 1 shipped the
BEV rasters rotated by 180 degrees because every fixture was symmetric).

Each case goes from the producer's format through the ROS message (serialised to CDR and
decoded the way the replay report reads bags) and the consumer's frame change into `odom`,
and finds the thing where it is: a hot front-left raster cell, a front-right lane line, an
object front-left moving forward-left; the ego stands at (100, -40) heading 2.0 rad so a
missing rotation or a swapped axis cannot cancel out."""
import math

import numpy as np
import pytest
from rclpy.serialization import serialize_message

from autonomy_perception.nodes.ros_outputs import probability_grid
from autonomy_perception.postprocess import PostProcessor
from autonomy_replay.bag import make_typestore
from autonomy_replay.bag_data import grid_from_msg, road_lines_in_odom
from autonomy_replay.report import objects_to_boxes
from autonomy_stack import vector_space as vs
from autonomy_stack.bev_grid import (BEVGrid, from_occupancy_layout, occupancy_cell_centres,
                                     to_occupancy_layout)
from autonomy_stack.ros.ros_conversions import ego_to_odometry, sec_to_stamp, vector_space_to_msgs

EGO = vs.EgoState(x=100.0, y=-40.0, yaw=2.0, speed=5.0)
CFG = {"bev": {"x_range": [-24.0, 24.0], "y_range": [-24.0, 24.0], "resolution": 1.0},
       "heads": {"segmentation": {"classes": ["drivable", "lane", "edge"]},
                 "detection": {"classes": ["car", "truck", "pedestrian", "cyclist", "static"]}}}
GRID = BEVGrid.from_config(CFG)
STAMP = 12.5


@pytest.fixture(scope="module")
def ts():
    return make_typestore()


def through_cdr(msg, msgtype, ts):
    """rclpy message -> CDR bytes -> the rosbags message the replay report decodes."""
    return ts.deserialize_cdr(serialize_message(msg), msgtype)


def to_odom(p):
    c, s = math.cos(EGO.yaw), math.sin(EGO.yaw)
    return np.array([EGO.x + c * p[0] - s * p[1], EGO.y + s * p[0] + c * p[1]])


@pytest.fixture(scope="module")
def ego_msgs(ts):
    odo = ego_to_odometry(EGO)
    odo.header.stamp = sec_to_stamp(STAMP)
    return [(int(STAMP * 1e9), through_cdr(odo, "nav_msgs/msg/Odometry", ts))]


def test_layout_helpers_are_inverse_and_place_front_left_at_high_x_high_y():
    r = np.arange(48 * 48).reshape(48, 48)
    assert np.array_equal(from_occupancy_layout(to_occupancy_layout(r)), r)
    occ = to_occupancy_layout(r)
    centres = occupancy_cell_centres(occ.shape, GRID.res, GRID.occupancy_origin())
    i, j = np.argwhere(occ == r[0, 0])[0]                # the network's front-left cell
    assert np.allclose(centres[i, j], [23.5, 23.5])
    assert np.allclose(GRID.cell_centre(0, 0), [23.5, 23.5])
    assert np.allclose(GRID.cell_centre(47, 47), [-23.5, -23.5])


def test_hot_front_left_raster_cell_is_found_front_left_in_odom(ts, ego_msgs):
    prob = np.zeros((48, 48), np.float32)
    prob[0, 0] = 1.0                                     # front-left corner cell (23.5, 23.5)
    prob[10, 40] = 0.6                                   # front-right cell (13.5, -16.5)
    msg = probability_grid(prob, GRID, "base_link", sec_to_stamp(STAMP))
    g = grid_from_msg(through_cdr(msg, "nav_msgs/msg/OccupancyGrid", ts), ego_msgs)
    look = lambda p: int(g.lookup(to_odom(p)[None])[0])  # noqa: E731
    assert look((23.5, 23.5)) == 100
    assert look((-23.5, -23.5)) == 0                     # round 1 found the 100 here
    assert look((13.5, -16.5)) == 60
    assert look((13.5, 16.5)) == 0
    assert int((g.data > 0).sum()) == 2


def test_simulator_label_raster_reaches_the_network_raster_the_right_way_round():
    """Producer: the simulator's label writer (OccupancyGrid layout, ego-centred); consumer:
    the training reader that resamples it into the network raster."""
    from autonomy_perception.training.data import resample_layer
    from autonomy_simulator import labels as lab
    spec = lab.BevSpec(48.0, 48.0, 1.0, -24.0, -24.0)
    v = vs.VectorSpace(0.0, "base_link", [], [],
                       drivable_area=np.array([[10.0, 10.0], [20.0, 10.0], [20.0, 20.0], [10.0, 20.0]]))
    occ = lab.bev_rasters(v, spec)["drivable"]
    bev = {"cell": 1.0, "origin_x": -24.0, "origin_y": -24.0}
    net = resample_layer(occ, bev, GRID, "mean")
    r, c = np.argwhere(net > 0.5).mean(0)
    assert np.allclose(GRID.cell_centre(r, c), [15.0, 15.0], atol=1.0)   # front-left
    assert net[24:, :].sum() == 0 and net[:, 24:].sum() == 0             # nothing behind/right
    assert np.array_equal(to_occupancy_layout(net) > 0.5, occ > 0)


def _outputs(obj_rc=(8, 14), yaw=0.3, speed=4.0, lane_rows=range(5, 20), lane_col=42):
    H, W = GRID.shape
    out = {"obj": np.zeros((H, W), np.float32), "cls": np.zeros((5, H, W), np.float32),
           "offset": np.zeros((2, H, W), np.float32), "size": np.zeros((3, H, W), np.float32),
           "heading": np.zeros((2, H, W), np.float32), "vel": np.zeros((2, H, W), np.float32),
           "seg": np.zeros((3, H, W), np.float32)}
    r, c = obj_rc
    out["obj"][r, c] = 0.9
    out["cls"][0, r, c] = 1.0                                            # car
    out["offset"][:, r, c] = (0.2, -0.3)
    out["size"][:, r, c] = np.log([4.5, 1.9, 1.5])
    out["heading"][:, r, c] = (math.sin(yaw), math.cos(yaw))
    out["vel"][:, r, c] = (speed * math.cos(yaw), speed * math.sin(yaw))
    for rr in lane_rows:
        out["seg"][1, rr, lane_col] = 1.0                                # lane front-right
    return out


def test_front_left_object_and_its_velocity_reach_odom(ts, ego_msgs):
    pp = PostProcessor(CFG, score_threshold=0.3, track=False)
    v = pp.process(_outputs(), STAMP, "base_link")
    assert len(v.objects) == 1
    o = v.objects[0]
    assert (o.x, o.y) == pytest.approx((24 - 8.5 + 0.2, 24 - 14.5 - 0.3))   # (15.7, 9.2)
    objs, _ = vector_space_to_msgs(v)
    objs.header.stamp = sec_to_stamp(STAMP)
    b = objects_to_boxes(through_cdr(objs, "autonomy_interfaces/msg/ObjectArray", ts), ego_msgs)
    assert b.xy[0] == pytest.approx(to_odom((15.7, 9.2)), abs=1e-4)
    v_ego = 4.0 * np.array([math.cos(0.3), math.sin(0.3)])             # forward-left
    R = np.array([[math.cos(EGO.yaw), -math.sin(EGO.yaw)], [math.sin(EGO.yaw), math.cos(EGO.yaw)]])
    assert b.vel[0] == pytest.approx(R @ v_ego, abs=1e-4)
    assert b.yaw[0] == pytest.approx(0.3 + EGO.yaw, abs=1e-6)


def test_front_right_lane_line_reaches_odom(ts, ego_msgs):
    pp = PostProcessor(CFG, score_threshold=0.3, track=False)
    v = pp.process(_outputs(), STAMP, "base_link")
    lanes = [l for l in v.lines if l.line_type == vs.LineType.LANE_DASHED_WHITE]
    assert len(lanes) == 1
    pts = np.asarray(lanes[0].points)[:, :2]
    assert np.allclose(pts[:, 1], 24 - 42.5)                            # y = -18.5 (right)
    assert pts[:, 0].min() == pytest.approx(24 - 19.5) and pts[:, 0].max() == pytest.approx(24 - 5.5)
    _, road = vector_space_to_msgs(v)
    road.header.stamp = sec_to_stamp(STAMP)
    lines = road_lines_in_odom(through_cdr(road, "autonomy_interfaces/msg/RoadStructure", ts),
                               ego_msgs)
    got = [p for t, p in lines if t == int(vs.LineType.LANE_DASHED_WHITE)][0]
    want = np.array([to_odom(p) for p in pts])
    assert np.allclose(np.sort(got, 0), np.sort(want, 0), atol=1e-4)
