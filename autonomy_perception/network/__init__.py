"""BEV/video perception network: RegNet -> BiFPN -> image-to-BEV transformer -> feature
queues -> spatial RNN -> HydraNet heads (no rclpy)."""
from .config import load_model_config, model_config  # noqa: F401
from .model import CheckpointError, PerceptionNet, load_checkpoint  # noqa: F401
