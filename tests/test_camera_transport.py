"""autonomy_stack.ros.camera_transport.image_cdr: the one-copy serialised Image equals what
rclpy serialises (asymmetric image, odd sizes, frame ids of every alignment)."""
import numpy as np
import pytest

from autonomy_stack.ros.camera_transport import image_cdr
from autonomy_stack.ros.ros_conversions import ImageFormatError

pytest.importorskip("rclpy")
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402


@pytest.mark.parametrize("frame_id", ["", "c", "camera_main", "camera_left_pillar"])
@pytest.mark.parametrize("encoding,shape,dtype", [("bgr8", (9, 13, 3), np.uint8),
                                                  ("mono8", (7, 5), np.uint8),
                                                  ("32FC1", (3, 4), np.float32)])
def test_image_cdr_is_the_serialised_image(frame_id, encoding, shape, dtype):
    img = np.arange(np.prod(shape)).reshape(shape).astype(dtype)
    img[0, -1] = 200                                       # top-right marks orientation
    raw = image_cdr(img, encoding, 1_700_000_123 * 1_000_000_000 + 456_789, frame_id)
    msg = deserialize_message(raw, Image)
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (1_700_000_123, 456_789)
    assert (msg.header.frame_id, msg.encoding, msg.height, msg.width) == (frame_id, encoding, *shape[:2])
    assert msg.step == shape[1] * img.itemsize * (shape[2] if len(shape) == 3 else 1)
    back = np.frombuffer(bytes(msg.data), dtype).reshape(shape)
    np.testing.assert_array_equal(back, img)
    assert len(raw) == len(serialize_message(msg))         # same layout (rclpy leaves padding unset)


def test_image_cdr_rejects_wrong_channels():
    with pytest.raises(ImageFormatError):
        image_cdr(np.zeros((4, 4, 3), np.uint8), "mono8", 0, "x")
