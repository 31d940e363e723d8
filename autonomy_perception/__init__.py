"""Perception: camera models, virtual-camera rectification, the BEV/video network
(RegNet + BiFPN + image-to-BEV transformer + feature queues + spatial RNN + HydraNet
heads), post-processing to typed outputs, and the rectification/perception nodes."""
