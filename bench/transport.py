"""DDS transport of a camera frame: 8 images of 1280x960 bgr8 per frame at 30 Hz between two
processes, with the project's Fast DDS profile (config/fastdds_profile.xml) and image QoS
(autonomy_stack.ros.qos.SENSOR_IMAGES).

The publisher is the stack's camera path (autonomy_stack.ros.camera_transport: each image
serialised once from the numpy array and published raw; --typed: rclpy's typed publish, the
former path). The subscriber takes typed sensor_msgs/Image, as the rectification node does.
Two conditions in one run: idle, and `loaded` with a one-core CPU burner (a busy-looping
process) beside publisher and subscriber.

Latency = arrival of the 8th image of a frame (subscriber clock) - header stamp (publisher
clock; same machine). Last line: JSON {frames_sent, frames_complete, latency_ms_p50,
latency_ms_p95, ..., loaded: {same keys}, load_average}.

    bench/run transport [--frames 150] [--rate 30] [--width 1280 --height 960] [--typed]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

CAMERAS = ["main", "narrow", "fisheye", "left_pillar", "right_pillar", "left_repeater",
           "right_repeater", "rear"]


def subscriber(args) -> None:
    import rclpy
    from sensor_msgs.msg import Image

    from autonomy_stack.ros.qos import SENSOR_IMAGES
    rclpy.init()
    node = rclpy.create_node("transport_bench_sub")
    arrivals: dict = {}       # stamp_ns -> [count, last_arrival_ns]
    done = {"last": time.monotonic()}

    def cb(msg, cam):
        now = time.time_ns()
        key = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        entry = arrivals.setdefault(key, [0, 0])
        entry[0] += 1
        entry[1] = max(entry[1], now)
        done["last"] = time.monotonic()

    for cam in CAMERAS:
        node.create_subscription(Image, f"/cameras/{cam}/image_raw", lambda m, c=cam: cb(m, c), SENSOR_IMAGES)
    print("READY", flush=True)
    deadline = time.monotonic() + args.frames / args.rate + 30
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
        if sys.stdin in select_readable() and sys.stdin.readline().strip() == "STOP":
            # drain what is in flight
            t_end = time.monotonic() + 1.0
            while time.monotonic() < t_end:
                rclpy.spin_once(node, timeout_sec=0.02)
            break
    complete = [(k, v[1]) for k, v in arrivals.items() if v[0] == len(CAMERAS)]
    lat = [(arr - k) / 1e6 for k, arr in complete]
    print("RESULT " + json.dumps({"complete": len(complete), "latencies_ms": lat,
                                  "partial": sum(1 for v in arrivals.values() if v[0] < len(CAMERAS))}),
          flush=True)
    node.destroy_node()
    rclpy.shutdown()


def select_readable():
    import select
    r, _, _ = select.select([sys.stdin], [], [], 0)
    return r


def publisher(args) -> dict:
    import rclpy
    from sensor_msgs.msg import Image

    from autonomy_stack.ros.qos import SENSOR_IMAGES
    from autonomy_stack.ros.camera_transport import image_cdr
    from autonomy_stack.ros.ros_conversions import numpy_to_image
    sub = subprocess.Popen([sys.executable, __file__, "--role", "sub", "--frames", str(args.frames),
                            "--rate", str(args.rate)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           text=True)
    assert sub.stdout.readline().strip() == "READY"
    rclpy.init()
    node = rclpy.create_node("transport_bench_pub")
    pubs = [node.create_publisher(Image, f"/cameras/{c}/image_raw", SENSOR_IMAGES) for c in CAMERAS]
    t0 = time.monotonic()
    while any(p.get_subscription_count() == 0 for p in pubs):
        rclpy.spin_once(node, timeout_sec=0.05)
        if time.monotonic() - t0 > 30:
            raise SystemExit("subscriber never matched")
    time.sleep(0.5)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (args.height, args.width, 3), dtype=np.uint8) for _ in CAMERAS]
    msgs = [numpy_to_image(img, "bgr8", frame_id=f"camera_{c}") for img, c in zip(images, CAMERAS)]
    period = 1.0 / args.rate
    next_t = time.monotonic()
    publish_ms = []
    for i in range(args.frames):
        now_ns = time.time_ns()
        t_pub = time.perf_counter()
        for msg, pub, img, cam in zip(msgs, pubs, images, CAMERAS):
            if args.typed:
                msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now_ns, 1_000_000_000)
                pub.publish(msg)
            else:
                pub.publish(image_cdr(img, "bgr8", now_ns, f"camera_{cam}"))
        publish_ms.append((time.perf_counter() - t_pub) * 1e3)
        next_t += period
        time.sleep(max(0.0, next_t - time.monotonic()))
    sub.stdin.write("STOP\n")
    sub.stdin.flush()
    result = None
    for line in sub.stdout:
        if line.startswith("RESULT "):
            result = json.loads(line[7:])
    sub.wait(timeout=30)
    node.destroy_node()
    rclpy.shutdown()
    lat = np.array(result["latencies_ms"]) if result and result["latencies_ms"] else np.array([np.nan])
    return {
        "frames_sent": args.frames,
        "frames_complete": int(result["complete"]) if result else 0,
        "frames_partial": int(result["partial"]) if result else 0,
        "latency_ms_p50": round(float(np.percentile(lat, 50)), 2),
        "latency_ms_p95": round(float(np.percentile(lat, 95)), 2),
        "publish_ms_p50_8_images": round(float(np.percentile(publish_ms, 50)), 2),
        "images_per_frame": len(CAMERAS),
        "image": f"{args.width}x{args.height} bgr8",
        "rate_hz": args.rate,
        "publisher": "typed" if args.typed else "raw_cdr",
        "fastdds_profile": os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE", ""),
    }


def run_loaded(args) -> dict:
    """The same measurement with a one-core CPU burner running beside it."""
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        return publisher(args)
    finally:
        burner.kill()
        burner.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--role", default="pub")
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--rate", type=float, default=30.0)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=960)
    ap.add_argument("--typed", action="store_true", help="rclpy's typed publish (the former path)")
    args = ap.parse_args()
    if args.role == "sub":
        subscriber(args)
        return
    os.environ.setdefault("ROS_DOMAIN_ID", str(150 + os.getpid() % 50))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    idle = publisher(args)
    print(f"idle: {idle}", flush=True)
    loaded = run_loaded(args)
    print(f"loaded (one-core burner): {loaded}", flush=True)
    load = [round(x, 2) for x in os.getloadavg()]
    print(f"load average {load}")
    print(json.dumps({**idle, "loaded": loaded, "load_average": load}))


if __name__ == "__main__":
    main()
