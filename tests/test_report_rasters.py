"""The replay report samples the simulator's finer label rasters on the network's cells the
way training resamples them (thin lines: any line in the cell; areas: half the cell), in
the ego frame and through odom. Asymmetric fixture: a 0.5 m wide lane line 6.25 m to the
LEFT, from 5 to 20 m ahead. (The nearest label cell of a network cell centre sits on a
label-cell boundary at these resolutions, so nearest sampling found such lines by chance:
the demo's lane IoU was 0.00.)"""
import numpy as np
import pytest
from nav_msgs.msg import OccupancyGrid

from autonomy_replay.perception_eval import raster_on_grid
from autonomy_stack import vector_space as vs
from autonomy_stack.bev_grid import BEVGrid
from autonomy_stack.geometry import from_frame
from autonomy_stack.ros.ros_conversions import ego_to_odometry, sec_to_stamp

GRID = BEVGrid([-24, 24], [-24, 24], 1.0)
STAMP = 3.0
EGO = vs.EgoState(x=100.0, y=-40.0, yaw=2.0, stamp=STAMP)


def _label_grid(frame_id="base_link"):
    g = OccupancyGrid()
    g.header.stamp, g.header.frame_id = sec_to_stamp(STAMP), frame_id
    g.info.resolution, g.info.width, g.info.height = 0.5, 96, 96
    g.info.origin.position.x = g.info.origin.position.y = -24.0
    g.info.origin.orientation.w = 1.0
    occ = np.zeros((96, 96), np.int8)
    occ[60, 58:88] = 100                  # row 60: y in [6.0, 6.5); cols: x in [5, 20)
    g.data = occ.ravel().tolist()
    return g


@pytest.mark.parametrize("through_odom", [False, True])
def test_thin_left_lane_line_lands_in_the_network_cells_it_crosses(through_odom):
    odo = ego_to_odometry(EGO)
    poses = [(int(STAMP * 1e9), odo)]
    centres = GRID.cell_centres()
    c_odom = from_frame(centres.reshape(-1, 2), EGO.x, EGO.y, EGO.yaw).reshape(centres.shape) \
        if through_odom else None
    msg = _label_grid()
    t = int(STAMP * 1e9) + (1 if through_odom else 0)     # other stamp: goes through odom
    line = raster_on_grid(msg, poses, c_odom, centres, t, GRID.res, "max")
    col = int(np.floor(GRID.to_rc(np.array([10.0, 6.25]))[1]))   # the column of y = 6.25
    rows = [r for r in range(GRID.H) if 5.0 <= GRID.cell_centre(r, col)[0] < 20.0]
    assert (line[rows, col] == 100).all()
    assert (line > 0).sum() == len(rows)                  # nowhere else, not on the right
    area = raster_on_grid(msg, poses, c_odom, centres, t, GRID.res, "mean")
    assert (area > 0).sum() == len(rows)                  # the line fills half of each cell
    msg.data = [0 if i % 96 >= 58 and i // 96 == 60 and i % 2 else v   # every other 0.5 m
                for i, v in enumerate(msg.data)]
    area = raster_on_grid(msg, poses, c_odom, centres, t, GRID.res, "mean")
    assert (area > 0).sum() == 0                          # a quarter of a cell: not an area
