"""A minimal closed loop outside ROS and outside the project's simulator: a planning scene
built by hand (lanes, a parked car, an oncoming car, a goal), the planner at 10 Hz, the
tracking controller at 50 Hz and a kinematic bicycle written here, as any outside
simulator would have it.

    python examples/closed_loop_bicycle.py [--seconds 30]

Prints one line per second and a summary; exit 0 when the goal is reached without a
collision.

Conventions (the whole stack uses them):
* Frame: one fixed, flat world frame ("odom"): x, y in metres, yaw in radians counter-
  clockwise from +x; y is positive to the LEFT of a car heading along +x.
* Ego reference point: the REAR-AXLE centre (`EgoState.x, y`); the body extends
  `VehicleParams.front` ahead of it, `rear` behind it, `half_width` to each side
  (config/vehicle.yaml, `VehicleParams()`).
* Objects (`ObjectState`): x, y are the CENTRE of the box, length along yaw, width across;
  speed (signed, m/s) and acceleration along yaw.
* Lanes: centrelines (Nx2) in the driving direction; traffic drives on the RIGHT, so a
  two-way road has the oncoming lane on the ego's left (positive y here), marked
  `oncoming=True` (it may be borrowed to pass an obstacle, never changed into).
* Units: SI (m, s, m/s, m/s^2, rad); the stamps of scene and ego are seconds on one clock.
* Trajectory: samples every 0.1 s over 10 s (t from the scene's stamp), rear-axle poses,
  speed, acceleration, curvature. ControlCommand: wheel angle (rad, positive left) and
  acceleration (m/s^2 along the direction of travel of the gear).
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import replace

import numpy as np

from autonomy_control.controller import ControllerConfig, TrackingController
from autonomy_planning.planner import Planner, PlannerConfig
from autonomy_planning.scene import Goal, Lane, PlanningScene
from autonomy_stack.geometry import box_corners, boxes_overlap
from autonomy_stack.vector_space import EgoState, ObjectClass, ObjectState
from autonomy_vehicle.vehicle_model import VehicleParams

PLAN_DT = 0.1       # s: the planner runs at 10 Hz ...
CONTROL_DT = 0.02   # s: ... the controller and this bicycle at 50 Hz
LANE_WIDTH = 3.5


def road():
    """A straight two-way road along +x: the ego's lane centred on y = 0 (driving +x), the
    oncoming lane on its left at y = +3.5 (driving -x), road edges 1.75 m outside them."""
    x = np.linspace(-20.0, 300.0, 161)
    ego_lane = Lane(1, np.column_stack([x, np.zeros_like(x)]), LANE_WIDTH, speed_limit=12.0)
    oncoming = Lane(2, np.column_stack([x[::-1], np.full_like(x, LANE_WIDTH)]), LANE_WIDTH,
                    speed_limit=12.0, oncoming=True)
    edges = [np.column_stack([x, np.full_like(x, -LANE_WIDTH / 2)]),
             np.column_stack([x, np.full_like(x, 1.5 * LANE_WIDTH)])]
    return [ego_lane, oncoming], edges


def bicycle_step(s: EgoState, steer: float, accel: float, dt: float,
                 vp: VehicleParams) -> EgoState:
    """Kinematic bicycle about the rear axle (no actuator model, no clamp of the speed at
    zero: the controller must not command reverse motion when it brakes to a stop)."""
    steer = max(-vp.max_steer, min(vp.max_steer, steer))
    v = s.speed + accel * dt
    yaw_rate = v * math.tan(steer) / vp.wheelbase
    yaw = s.yaw + yaw_rate * dt
    return EgoState(x=s.x + v * math.cos(yaw) * dt, y=s.y + v * math.sin(yaw) * dt, yaw=yaw,
                    speed=v, accel=accel, yaw_rate=yaw_rate, steering_angle=steer,
                    stamp=s.stamp + dt)


def run(seconds: float = 30.0, verbose: bool = True) -> dict:
    """Drive the scene for up to `seconds`; returns the summary (goal_reached, collision,
    time, final pose, minimum speed seen)."""
    vp = VehicleParams()
    lanes, edges = road()
    goal = Goal(x=120.0, y=0.0, yaw=0.0, tolerance=2.0)
    # a parked car half in the ego's lane, front-right of the ego (box centre, on the
    # right: negative y) and an oncoming car in the left lane, 160 m ahead at 8 m/s
    parked = ObjectState(10, ObjectClass.CAR, 40.0, -1.2, 0.0, 4.5, 1.9, 1.5, is_static=True)
    oncoming = ObjectState(11, ObjectClass.CAR, 160.0, LANE_WIDTH, math.pi, 4.6, 1.9, 1.5,
                           speed=8.0)
    planner = Planner(PlannerConfig(vehicle=vp))
    controller = TrackingController(ControllerConfig(lateral="pure_pursuit", vehicle=vp))
    ego = EgoState(x=0.0, y=0.0, yaw=0.0, speed=8.0)
    every = int(round(PLAN_DT / CONTROL_DT))
    out = {"goal_reached": False, "collision": False, "min_speed": ego.speed}
    for k in range(int(round(seconds / CONTROL_DT))):
        now = k * CONTROL_DT
        ego = replace(ego, stamp=now)
        oncoming = replace(oncoming, x=160.0 - oncoming.speed * now)
        if k % every == 0:
            scene = PlanningScene(stamp=now, ego=ego, agents=[parked, oncoming], lanes=lanes,
                                  boundaries=edges, goal=goal)
            result = planner.plan(scene)
            controller.set_trajectory(result.trajectory, now)
            if verbose and k % (10 * every) == 0:
                print(f"t={now:4.1f} s  x={ego.x:6.1f} y={ego.y:5.2f} v={ego.speed:4.1f} m/s  "
                      f"{result.maneuver}")
        controller.set_odometry(ego, now)
        cmd, _ = controller.step(now)
        ego = bicycle_step(ego, cmd.steering_angle, cmd.acceleration, CONTROL_DT, vp)
        out["min_speed"] = min(out["min_speed"], ego.speed)
        body = box_corners(ego.x, ego.y, ego.yaw, vp.length, vp.width, vp.center_offset)
        if any(boxes_overlap(body, o.corners()) for o in (parked, oncoming)):
            out["collision"] = True
        if math.hypot(ego.x - goal.x, ego.y - goal.y) < goal.tolerance and abs(ego.speed) < 0.3:
            out["goal_reached"] = True
            break
    out.update(time=round(now + CONTROL_DT, 2), x=ego.x, y=ego.y, speed=ego.speed)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="simulated seconds at most")
    args = ap.parse_args(argv)
    res = run(args.seconds)
    print(f"goal reached: {res['goal_reached']} after {res['time']:.1f} s, collision: "
          f"{res['collision']}, final x={res['x']:.1f} y={res['y']:.2f} "
          f"v={res['speed']:.2f} m/s, min speed {res['min_speed']:.3f} m/s")
    return 0 if res["goal_reached"] and not res["collision"] else 1


if __name__ == "__main__":
    sys.exit(main())
