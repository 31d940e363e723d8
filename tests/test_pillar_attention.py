"""Geometry-aware image->BEV attention: the camera geometry is given (pillar points projected
with the virtual cameras), so evidence lands where the cameras see it. Asymmetric fixtures:
a front-left ground point, the rear camera's features reaching only the cells behind."""
import numpy as np
import pytest
import torch

from autonomy_perception.network.geometry import default_virtual_rig
from autonomy_perception.network.pillar_attention import PillarAttention, pillar_reference_points
from autonomy_stack.bev_grid import BEVGrid

CAMS = ["main", "left_pillar", "right_pillar", "rear"]
BEV = {"x_range": [-16.0, 16.0], "y_range": [-16.0, 16.0], "resolution": 1.0, "channels": 16,
       "heads": 2, "heights": [0.0, 1.0], "points": 2, "pe_freqs": 4}


def _net(seed=0):
    torch.manual_seed(seed)
    cams = default_virtual_rig(CAMS, 128, 96)
    grid = BEVGrid(BEV["x_range"], BEV["y_range"], BEV["resolution"])
    return PillarAttention(cams, (12, 16), 8, BEV, grid.cell_centres()).eval(), cams, grid


def test_front_left_ground_point_projects_left_of_centre_below_horizon():
    cams = default_virtual_rig(["main"], 128, 96)
    centres = np.array([[[10.0, 3.0]], [[10.0, -3.0]]])          # front-left, front-right
    g, valid = pillar_reference_points(cams, centres, [0.0])
    assert valid[0, :, 0].all()
    (ul, vl), (ur, vr) = g[0, 0, 0], g[0, 1, 0]
    assert ul < 0.0 < ur                    # left of the image centre / right of it
    assert vl > 0.0 and vr > 0.0            # the ground ahead is below the horizon
    assert np.isclose(vl, vr)               # same range, same image row


def test_rear_camera_features_reach_only_cells_behind():
    net, cams, grid = _net()
    feat = torch.randn(1, len(CAMS), 8, 12, 16)
    with torch.no_grad():
        base = net(feat)
        f2 = feat.clone()
        f2[:, CAMS.index("rear")] += 5.0 * torch.randn_like(f2[:, 0])
        diff = (net(f2) - base).abs().sum(1)[0].numpy()          # [H, W]
    xy = grid.cell_centres()
    ahead = (xy[..., 0] > 4.0) & (np.abs(xy[..., 1]) < 2.0)
    behind = (xy[..., 0] < -6.0) & (np.abs(xy[..., 1]) < 2.0)
    assert diff[ahead].max() < 1e-5
    assert diff[behind].min() > 1e-3
    # raster convention: row 0 is the front, so the changed cells are in the bottom rows
    assert diff[-4:].sum() > 0 and diff[:4, 6:10].max() < 1e-5


def test_missing_camera_is_the_same_as_no_evidence_from_it():
    net, cams, grid = _net(1)
    feat = torch.randn(1, len(CAMS), 8, 12, 16)
    mask = torch.tensor([[True, True, True, False]])
    with torch.no_grad():
        a = net(feat, mask)
        f2 = feat.clone()
        f2[:, 3] = torch.randn_like(f2[:, 3]) * 10
        b = net(f2, mask)
    assert torch.allclose(a, b, atol=1e-5)


def test_gradients_reach_the_image_features():
    net, cams, grid = _net(2)
    net.train()
    feat = torch.randn(1, len(CAMS), 8, 12, 16, requires_grad=True)
    out = net(feat)
    w = torch.randn(out.shape[1])           # (a plain sum is 0 after the LayerNorm)
    (out[0, :, 2, 13] * w).sum().backward() # one front-left cell (x 13.5, y 2.5)
    g = feat.grad.abs().sum((0, 2, 3, 4))
    assert g[CAMS.index("main")] > 0
    assert g[CAMS.index("rear")] == pytest.approx(0.0, abs=1e-9)
