"""FLOP and parameter counts: thop's rules on toy layers, and the GTPT
variants against the figures measured with thop on the authors' models
(tests/data/official-gtpt/README.md)."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import config_file
from mmengine.config import Config

from gtpt_mmpose.analysis.flops import count_flops

pytestmark = pytest.mark.usefixtures('one_torch_thread')

# authors-convention GFLOPs (thop, authors' eval model, 1x3x256x192) and
# trainable parameters of one branch (spec §12; the README rounds them to
# 2.373 M ... 8.342 M)
TARGETS = {
    'gtpt-t_coco': (0.663, 2_372_864),
    'gtpt-s_coco': (1.626, 5_429_856),
    'gtpt-b_coco': (3.647, 8_318_752),
    'gtpt-t_coco-wholebody': (0.832, 2_388_352),
    'gtpt-s_coco-wholebody': (1.994, 5_453_088),
    'gtpt-b_coco-wholebody': (4.015, 8_341_984),
}


class ToyAttention(nn.Module):
    """Conv, BN, LayerNorm, qkv Linear, fused attention over 2 heads.

    Maps (B, 3, H, W) to (B, 2, H*W, 4).
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.norm = nn.LayerNorm(8, elementwise_affine=False)
        self.qkv = nn.Linear(8, 24)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = F.relu(self.bn(self.conv(x))).flatten(2).transpose(1,
                                                               2)  # B, H*W, 8
        q, k, v = self.qkv(self.norm(t)).unflatten(-1,
                                                   (3, 2,
                                                    4)).permute(2, 0, 3, 1, 4)
        return F.scaled_dot_product_attention(q, k, v).softmax(-1)


def test_thop_rules_on_toy_layers():
    model = ToyAttention().eval()
    result = count_flops(model, (torch.zeros(1, 3, 4, 5), ))
    n = 4 * 5
    expected = dict(
        Conv2d=n * 8 * 3 * 9,  # output numel * C_in * kernel area, no bias
        BatchNorm2d=2 * n * 8 * 2,  # affine: doubled
        LayerNorm=2 * n * 8,  # not affine
        Linear=n * 24 * 8,  # output numel * in_features, no bias
        attention=2 * n * n * 4 *
        2)  # (q k^T + attn v) per head, F.softmax is free
    assert result['by_type'] == expected
    assert result['authors'] == sum(expected.values()) - expected['attention']
    assert result['full'] == sum(expected.values())
    assert result['params'] == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize('name', sorted(TARGETS))
def test_gtpt_counts_match_authors(name):
    from mmpose.registry import MODELS
    gflops, params = TARGETS[name]
    model = MODELS.build(Config.fromfile(config_file(name)).model).eval()
    result = count_flops(model, (torch.zeros(1, 3, 256, 192), None, 'tensor'))
    assert result['authors'] / 1e9 == pytest.approx(gflops, rel=0.01)
    assert result['params'] == params
    assert result['full'] > result['authors']
