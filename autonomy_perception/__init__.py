"""Perception (layer 2 core): virtual-camera rectification, the BEV/video network
(RegNet + BiFPN + image-to-BEV transformer + feature queues + spatial RNN + HydraNet
heads), post-processing to typed outputs; `nodes/`: the rectification/perception nodes;
`training/` and `evaluation/evaluate.py`: tools-layer entry points. Camera models live in
`autonomy_vehicle`."""
