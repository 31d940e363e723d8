"""Rectification throughput: the node's per-frame path vs bare cv2.remap.

In one process: a RectificationNode (8 cameras of config/camera_rig.yaml, 1280x960 bgr8,
mounting from the rig file) is fed CameraInfo once, then its per-frame path
`process_image` (Image message in -> rectified Image + CameraInfo out: checks, zero-copy
input view, cv2.remap into the reused output message) is timed against bare `cv2.remap`
with the node's own fixed-point maps on the same images. The two are measured in
alternating rounds so that load from other processes hits both alike.
Also reported: the same path including `publish()` (serialisation), and, when CUDA is
present, the torch grid_sample path (upload + warp + download).

    bench/run rectification [--seconds 6] [--width 1280 --height 960] [--encoding bgr8]

Last line: JSON {node_images_per_s, remap_images_per_s, ratio, ...[, gpu_images_per_s]}.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2  # noqa: E402
import numpy as np  # noqa: E402


def make_image_msg(img, encoding, stamp_ns):
    from autonomy_stack.ros.ros_conversions import numpy_to_image
    from builtin_interfaces.msg import Time
    return numpy_to_image(img, encoding, stamp=Time(sec=stamp_ns // 10**9,
                                                    nanosec=stamp_ns % 10**9),
                          frame_id="camera")


def parse_args(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=6.0, help="total timed seconds (both paths)")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=960)
    ap.add_argument("--encoding", default="bgr8", choices=["bgr8", "rgb8", "mono8", "mono16"])
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args(argv)


def make_node(args, rig):
    """A RectificationNode for the rig's cameras (virtual cameras at the input size), fed
    this vehicle's CameraInfo once; returns (node, its cameras)."""
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import CameraInfo

    from autonomy_perception.nodes.rectification_node import RectificationNode

    node = RectificationNode(parameter_overrides=[
        Parameter("mounting_source", value="file"),
        Parameter("output_width", value=args.width),     # virtual cameras at the input
        Parameter("output_height", value=args.height),   # size, configured fields of view
        Parameter("publish_virtual_tf", value=False),
    ])
    cams = list(node.cams.values())
    # per-camera calibration message (this vehicle's intrinsics; mounting from the file)
    for cam in cams:
        cal = rig[cam.name]
        info = CameraInfo()
        info.width, info.height = cal.width, cal.height
        info.distortion_model = cal.distortion_model
        info.k = [float(x) for x in cal.K.reshape(9)]
        info.d = [float(x) for x in cal.D]
        node._on_info(cam, info)
    return node, cams


def input_images(args, cams, rng):
    """Smooth random texture, one per camera: (Image messages, numpy sources)."""
    ch = 1 if args.encoding.startswith("mono") else 3
    dtype = np.uint16 if args.encoding == "mono16" else np.uint8
    msgs, srcs = [], []
    for i, cam in enumerate(cams):
        small = rng.integers(0, 256, (args.height // 8, args.width // 8, ch), dtype=np.uint8)
        img = cv2.resize(small, (args.width, args.height), interpolation=cv2.INTER_CUBIC)
        img = img.reshape(args.height, args.width, ch) if ch > 1 else img.reshape(args.height, args.width)
        if dtype == np.uint16:
            img = img.astype(np.uint16) << 4
        m = make_image_msg(img, args.encoding, 10**9 + i)
        msgs.append(m)
        srcs.append(np.ascontiguousarray(img))
    return msgs, srcs


def time_alternating(process, pairs, rpairs, rounds: int, per_round: float):
    """Images per second of the node path and of bare cv2.remap, measured in alternating
    rounds of `per_round` s each (load from other processes hits both alike)."""
    remap = cv2.remap
    INTER, BORDER = cv2.INTER_LINEAR, cv2.BORDER_CONSTANT
    node_t = remap_t = 0.0
    node_n = remap_n = 0
    for _ in range(rounds):
        t0 = time.perf_counter()
        n = 0
        while time.perf_counter() - t0 < per_round:
            for cam, m in pairs:
                process(cam, m)
            n += len(pairs)
        node_t += time.perf_counter() - t0
        node_n += n
        t0 = time.perf_counter()
        n = 0
        while time.perf_counter() - t0 < per_round:
            for s, (m1, m2), d in rpairs:
                remap(s, m1, m2, INTER, dst=d, borderMode=BORDER, borderValue=0)
            n += len(rpairs)
        remap_t += time.perf_counter() - t0
        remap_n += n
    return node_n / node_t, remap_n / remap_t


def gpu_result(cams, srcs, dsts) -> dict:
    """The torch grid_sample path (upload + warp + download) when CUDA is present, else {}."""
    from autonomy_perception.rectification import Rectifier, cuda_available
    if not cuda_available():
        return {}
    import torch
    rects = [Rectifier(c.virtual, c.rectifier.geometry, device="cuda") for c in cams]
    outs = [np.empty_like(s) for s in srcs]
    for r, s, o in zip(rects, srcs, outs):
        r.rectify(s, o)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    n = 0
    while time.perf_counter() - t0 < 2.0:
        for r, s, o in zip(rects, srcs, outs):
            r.rectify(s, o)
        n += len(rects)
    result = {"gpu_images_per_s": round(n / (time.perf_counter() - t0), 1),
              "gpu": torch.cuda.get_device_name(0)}
    diff = np.abs(outs[0].astype(float) - dsts[0]).mean()
    result["gpu_vs_cpu_mean_abs_diff"] = round(float(diff), 4)
    return result


def main():
    args = parse_args()
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    root = Path(__file__).resolve().parent.parent
    os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(root / "config" / "fastdds_profile.xml"))
    import rclpy

    from autonomy_vehicle.camera_models import load_rig, sample_mounting_error

    rng = np.random.default_rng(args.seed)
    rig = load_rig(width=args.width, height=args.height)
    rig = sample_mounting_error(rig, rng)           # one vehicle's own mounting
    rclpy.init(args=[])
    node, cams = make_node(args, rig)
    msgs, srcs = input_images(args, cams, rng)
    dtype = np.uint16 if args.encoding == "mono16" else np.uint8
    # warm-up: builds the maps once per camera
    t = time.perf_counter()
    for cam, m in zip(cams, msgs):
        out = node.process_image(cam, m)
        assert out is not None, cam.stats.last_error
        assert out[0].header.stamp == m.header.stamp
    build_s = time.perf_counter() - t
    maps = [(c.rectifier.map1, c.rectifier.map2) for c in cams]
    dsts = [np.empty_like(s) for s in srcs]

    # correctness: the node's output equals bare remap with the same maps
    for cam, m, s, (m1, m2), d in zip(cams, msgs, srcs, maps, dsts):
        out, _ = node.process_image(cam, m)
        cv2.remap(s, m1, m2, cv2.INTER_LINEAR, dst=d, borderMode=cv2.BORDER_CONSTANT,
                  borderValue=0)
        got = np.frombuffer(out.data, dtype=dtype).reshape(d.shape)
        assert np.array_equal(got, d), f"node output differs from cv2.remap for {cam.name}"

    per_round = args.seconds / (2 * args.rounds)
    pairs = list(zip(cams, msgs))
    node_ips, remap_ips = time_alternating(node.process_image, pairs,
                                           list(zip(srcs, maps, dsts)), args.rounds, per_round)

    # the full callback incl. publish (serialisation into the DDS sample)
    t0 = time.perf_counter()
    n = 0
    while time.perf_counter() - t0 < min(2.0, per_round * 2):
        for cam, m in pairs:
            node._on_image(cam, m)
        n += len(pairs)
    pub_ips = n / (time.perf_counter() - t0)

    result = {
        "node_images_per_s": round(node_ips, 1),
        "remap_images_per_s": round(remap_ips, 1),
        "ratio": round(node_ips / remap_ips, 3),
        "node_with_publish_images_per_s": round(pub_ips, 1),
        "cameras": len(cams),
        "width": args.width, "height": args.height, "encoding": args.encoding,
        "cv_threads": cv2.getNumThreads(),
        "map_build_s_8_cameras": round(build_s, 3),
    }
    result.update(gpu_result(cams, srcs, dsts))

    node.destroy_node()
    rclpy.try_shutdown()
    print(f"# {len(cams)} cameras {args.width}x{args.height} {args.encoding}: node path "
          f"{node_ips:.1f} img/s, bare cv2.remap {remap_ips:.1f} img/s", file=sys.stderr)
    print(json.dumps(result))

if __name__ == "__main__":
    main()
