"""The simulated ego obeys the command's acceleration, also while the watchdog flags an
emergency stop (the controller bounds that deceleration for comfort)."""
from autonomy_simulator import worlds
from autonomy_simulator.simulation import Simulation
from autonomy_stack.vector_space import ControlCommand


def test_emergency_stop_applies_the_commanded_bounded_deceleration():
    world = worlds.road(0, length=600.0, lanes_forward=1, lanes_backward=0, curved=False,
                        n_cones=0, n_poles=0, speed_limit=30.0)
    lane = next(iter(world.lanes_dict().values())) if hasattr(world, "lanes_dict") else None
    y0 = float(lane["centerline"][0][1]) if isinstance(lane, dict) else 0.0
    sim = Simulation(world, [], ego_start=(10.0, y0, 0.0, 15.0), seed=0)
    v0 = sim.ego.speed
    for _ in range(50):     # 1 s
        sim.step(ControlCommand(stamp=0.0, steering_angle=0.0, steering_rate=0.0,
                                acceleration=-3.0, target_speed=0.0, gear=1, emergency=True))
    assert abs((v0 - sim.ego.speed) - 3.0) < 0.15     # 3 m/s^2, not full braking
