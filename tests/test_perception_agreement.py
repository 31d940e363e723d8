"""The agreement check (autonomy_replay.perception_agreement) on a small generated bag:
8 raw cameras with this rig's lenses and mountings (/tf_static), /odom, ground truth; the
"node output" is produced the way the demo graph does it (Rectifier from the calibration,
InferenceEngine.run with the odometry's kinematics on the frames it processed -- one is
skipped --, PostProcessor at the node's score threshold, objects moved to odom,
probability_grid for the BEV) -- then the tool re-runs the network offline over the same
frames from the bag and must find the same figures."""
import math

import numpy as np
import pytest
import transforms3d

from autonomy_replay.perception_agreement import (ProcessedFrame, kinematics_at,
                                                  processed_frames)
from autonomy_replay.perception_eval import EvalFrame

MODEL = "models/perception_tiny.pt"


def test_processed_frames_and_kinematics():
    from types import SimpleNamespace as NS
    frames = [EvalFrame(300, [], [], 310), EvalFrame(100, [], [], 95), EvalFrame(200, [])]
    assert processed_frames(frames) == [ProcessedFrame(95, 100), ProcessedFrame(310, 300)]

    def od(t, v, w):
        return (t, NS(header=NS(stamp=NS(sec=0, nanosec=t)),
                      twist=NS(twist=NS(linear=NS(x=v), angular=NS(z=w)))))
    odom = [od(100, 2.0, 0.1), od(200, 3.0, 0.2)]
    assert kinematics_at(odom, 50) == (0.0, 0.0, 0.0)
    assert kinematics_at(odom, 150) == (2.0, 0.0, 0.1)
    # 1 m/s in 100 ns: clipped like the node
    assert kinematics_at(odom, 250) == (3.0, 15.0, 0.2)


def _write_input(path, stamps, ego, size=(96, 64)):
    from rosbags.rosbag2 import StoragePlugin, Writer

    from autonomy_replay.bag import make_typestore
    from autonomy_replay.synthetic import _quat, _set_stamp, default_msg
    from autonomy_vehicle.camera_models import load_rig
    ts = make_typestore()
    rig = load_rig(width=size[0], height=size[1])
    rng = np.random.default_rng(0)
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        conns = {}

        def write(topic, mt, t, msg):
            if topic not in conns:
                conns[topic] = w.add_connection(topic, mt, typestore=ts)
            w.write(conns[topic], t, ts.serialize_cdr(msg, mt))
        tf = default_msg(ts, "tf2_msgs/msg/TFMessage")
        for name, cal in rig.items():
            tr = default_msg(ts, "geometry_msgs/msg/TransformStamped")
            _set_stamp(tr.header, stamps[0], "base_link")
            tr.child_frame_id = f"camera_{name}"
            T = np.asarray(cal.T_base_camera)
            tr.transform.translation.x, tr.transform.translation.y, tr.transform.translation.z = T[:3, 3]
            qw, qx, qy, qz = transforms3d.quaternions.mat2quat(T[:3, :3])
            tr.transform.rotation.x, tr.transform.rotation.y = qx, qy
            tr.transform.rotation.z, tr.transform.rotation.w = qz, qw
            tf.transforms.append(tr)
        write("/tf_static", "tf2_msgs/msg/TFMessage", stamps[0], tf)
        for k, t in enumerate(stamps):
            x, y, yaw = ego(t)
            od = default_msg(ts, "nav_msgs/msg/Odometry")
            _set_stamp(od.header, t, "odom")
            od.child_frame_id = "base_link"
            od.pose.pose.position.x, od.pose.pose.position.y = x, y
            _quat(od.pose.pose.orientation, yaw)
            od.twist.twist.linear.x = 5.0
            write("/odom", "nav_msgs/msg/Odometry", t, od)
            write("/ground_truth/ego", "nav_msgs/msg/Odometry", t, od)
            objs = default_msg(ts, "autonomy_interfaces/msg/ObjectArray")
            _set_stamp(objs.header, t, "odom")
            for i, (ox, oy) in enumerate(((12.0, 5.0), (-8.0, -3.0), (20.0, -10.0))):
                o = default_msg(ts, "autonomy_interfaces/msg/Object")
                o.id, o.object_class.value, o.score = i + 1, 1, 1.0
                o.pose.position.x = x + math.cos(yaw) * ox - math.sin(yaw) * oy
                o.pose.position.y = y + math.sin(yaw) * ox + math.cos(yaw) * oy
                _quat(o.pose.orientation, yaw)
                o.size.x, o.size.y, o.size.z = 4.5, 1.9, 1.6
                o.visible_pixels = 100
                objs.objects.append(o)
            write("/ground_truth/objects", "autonomy_interfaces/msg/ObjectArray", t, objs)
            g = default_msg(ts, "nav_msgs/msg/OccupancyGrid")
            _set_stamp(g.header, t, "base_link")
            g.info.resolution, g.info.width, g.info.height = 1.0, 48, 48
            g.info.origin.position.x, g.info.origin.position.y = -24.0, -24.0
            g.info.origin.orientation.w = 1.0
            occ = np.zeros((48, 48), np.int8)
            occ[20:28, :] = 100                              # a road along x
            g.data = occ.reshape(-1)
            write("/ground_truth/bev/drivable", "nav_msgs/msg/OccupancyGrid", t, g)
            for name, cal in rig.items():
                img = default_msg(ts, "sensor_msgs/msg/Image")
                _set_stamp(img.header, t, f"camera_{name}")
                img.height, img.width, img.encoding, img.step = size[1], size[0], "bgr8", 3 * size[0]
                im = np.zeros((size[1], size[0], 3), np.uint8)
                im[: size[1] // 2] = (200, 150, 90)
                im[size[1] // 2:] = (90, 90, 90)
                im = np.clip(im.astype(int) + rng.integers(-40, 40, im.shape), 0, 255).astype(np.uint8)
                img.data = im.reshape(-1)
                write(f"/cameras/{name}/image_raw", "sensor_msgs/msg/Image", t, img)
                info = default_msg(ts, "sensor_msgs/msg/CameraInfo")
                _set_stamp(info.header, t, f"camera_{name}")
                info.width, info.height = size
                info.distortion_model = cal.distortion_model
                info.k = np.asarray(cal.K, float).reshape(-1)
                info.d = np.asarray(cal.D, float).reshape(-1)
                write(f"/cameras/{name}/camera_info", "sensor_msgs/msg/CameraInfo", t, info)
    return path, rig


def _node_outputs(path, inp, rig, processed, ego, size=(96, 64)):
    """What the demo graph publishes for the processed frames (rectification node ->
    perception node with output_frame odom)."""
    import cv2
    from rclpy.serialization import serialize_message
    from rosbags.rosbag2 import StoragePlugin, Writer

    from autonomy_perception.inference_engine import InferenceEngine
    from autonomy_perception.nodes.ros_outputs import probability_grid
    from autonomy_perception.postprocess import PostProcessor
    from autonomy_perception.rectification import CameraGeometry, Rectifier
    from autonomy_perception.virtual_camera import load_virtual_cameras
    from autonomy_replay.bag import BagReader, make_typestore
    from autonomy_stack.ros.ros_conversions import image_to_numpy, sec_to_stamp, vector_space_to_msgs
    from autonomy_stack.vector_space import EgoState, transform_vector_space
    engine = InferenceEngine.from_checkpoint(MODEL, "cpu")
    H, W = engine.input_hw
    virt = load_virtual_cameras(width=W, height=H)
    rects = {}
    for name, cal in rig.items():
        rects[name] = Rectifier(virt[name], device="cpu")
        rects[name].set_calibration(CameraGeometry(name, size[0], size[1], cal.K, cal.D,
                                                   cal.distortion_model,
                                                   np.asarray(cal.T_base_camera)[:3, :3]))
    ts = make_typestore()
    r = BagReader(inp)
    types = {n: t.msgtype for n, t in r.topics.items()}
    imgs = {}
    for topic, t, data in r.messages():
        if topic.endswith("/image_raw") and t in processed:
            m = ts.deserialize_cdr(data, types[topic])
            name = topic.split("/")[2]
            rgb = cv2.cvtColor(rects[name].rectify(image_to_numpy(m)), cv2.COLOR_BGR2RGB)
            imgs.setdefault(t, {})[name] = rgb
    r.close()
    from autonomy_replay.perception_eval import node_params
    # the node's post-processing (config/perception.yaml) with -p perception.score_threshold
    pp = PostProcessor.from_node_params(engine.config, {**node_params("perception"),
                                                        "score_threshold": 0.05})
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        c_obj = w.add_connection("/perception/objects", "autonomy_interfaces/msg/ObjectArray", typestore=ts)
        c_bev = w.add_connection("/perception/bev/drivable", "nav_msgs/msg/OccupancyGrid", typestore=ts)
        for t in processed:
            for i, name in enumerate(engine.camera_names):
                engine.fill_camera(i, imgs[t][name])
            res = engine.run([True] * 8, (5.0, 0.0, 0.0), t * 1e-9)
            x, y, yaw = ego(t)
            v = pp.process(res.outputs, t * 1e-9, "base_link", EgoState(x=x, y=y, yaw=yaw))
            objs, _ = vector_space_to_msgs(transform_vector_space(v, x, y, yaw, "odom"))
            objs.header.stamp = sec_to_stamp(t * 1e-9)
            w.write(c_obj, t + 40_000_000, serialize_message(objs))
            g = probability_grid(res.outputs["seg"][0], engine.grid, "base_link", sec_to_stamp(t * 1e-9))
            w.write(c_bev, t + 40_000_000, serialize_message(g))
    return path


@pytest.mark.timeout(600)
def test_agreement_on_a_generated_bag(tmp_path):
    import json

    from autonomy_replay import perception_agreement as A
    stamps = [100_000_000_000 + k * 100_000_000 for k in range(4)]

    def ego(t):
        s = (t - stamps[0]) * 1e-9
        return (100.0 + 5.0 * s * math.cos(2.0), -40.0 + 5.0 * s * math.sin(2.0), 2.0)
    inp, rig = _write_input(tmp_path / "in", stamps, ego)
    processed = [stamps[0], stamps[1], stamps[3]]                 # the node skipped one
    out = _node_outputs(tmp_path / "out", inp, rig, processed, ego)
    # the replay's options: mode demo (rectification straight to the network's 128x96);
    # the node publishing down to 0.05 so that this untrained-looking scene has detections
    opts = {"nodes": "demo", "param": ["perception.score_threshold:=0.05"]}
    res = A.agreement(inp, out, options=opts)
    assert res["node_score_threshold"] == 0.05
    assert res["processed_frames"] == 3 and res["frames_with_missing_cameras"] == 0
    assert res["camera_problems"] == [] and res["extent_source"].endswith("perception_tiny.pt")
    node, same = res["node"], res["offline_node_threshold"]
    assert node["frames"] == same["frames"] == 3 and node["n_gt"]["vehicle"] == 9
    assert res["agree"] and res["vehicle_ap_difference"] == pytest.approx(0.0, abs=1e-9)
    for key in ("vehicle_ap", "velocity_error", "occluded_recall"):
        assert node[key] == pytest.approx(same[key], abs=1e-6) if node[key] is not None \
            else same[key] is None
    assert node["iou"]["drivable"] == pytest.approx(same["iou"]["drivable"], abs=1e-6)
    assert node["vehicle_ap_per_threshold"]["4.0"] > 0          # detections went through odom
    # the full curve is a plain decode at 0.05: without the node's tracking (coasted objects)
    full = res["offline_full_curve"]
    assert full["frames"] == 3 and full["vehicle_ap"] is not None
    md = A.markdown(res)
    assert "| vehicle AP |" in md and "AGREE" in md
    # the command: report.json of a replay -> bags
    rep_dir = tmp_path / "demo" / "report"
    rep_dir.mkdir(parents=True)
    (rep_dir / "report.json").write_text(json.dumps({"bag": {"path": str(inp)},
                                                    "output_bag": str(out),
                                                    "options": opts}))
    assert A.main([str(tmp_path / "demo"), "--max-frames", "2"]) == 0
    j = json.loads((rep_dir / "agreement.json").read_text())
    assert j["processed_frames"] == 2 and j["agree"]
    assert A.main([str(tmp_path / "nothing")]) == 2
