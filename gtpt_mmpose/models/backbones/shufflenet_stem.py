"""ShuffleNetV2 stems that turn the image into a stride-4 feature map
(docs/spec.md §1.2–§1.4).

They follow the authors' blocks exactly: every convolution has a bias and
there is no max-pool (quirk Q8), unlike MMPose's ``ShuffleNetV2``, so the
authors' weights load one to one.
"""
from typing import List, Tuple

import torch
import torch.nn as nn
from torch import Tensor


def concat_shuffle(a: Tensor, b: Tensor) -> Tensor:
    """``channel_shuffle(cat((a, b), 1), groups=2)`` as one copy: output
    channel ``2j + g`` is channel ``j`` of input ``g``.

    (B, C, H, W) twice -> (B, 2C, H, W), in the memory format of ``b``.
    """
    if b.is_contiguous(memory_format=torch.channels_last):
        return InterleaveChannels.apply(a, b)
    return torch.stack((a, b), dim=2).flatten(1, 2)


class InterleaveChannels(torch.autograd.Function):
    """:func:`concat_shuffle` of channels-last maps, forward and backward
    as strided copies that keep channels the innermost axis.

    Autograd's own backward of an interleave clones the whole gradient per
    input and hands on strided views that the BatchNorm and ReLU backwards
    read slowly: GTPT-S training step, batch 8, 2 Intel cores, 201.4 ms per
    image against 191.9 with this backward (docs/design.md §1.6).
    """

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor) -> Tensor:
        n, c, h, w = b.shape
        nhwc = b.new_empty(n, h, w, c, 2)  # channel 2j + g at [..., j, g]
        nhwc[..., 0] = a.permute(0, 2, 3, 1)
        nhwc[..., 1] = b.permute(0, 2, 3, 1)
        return nhwc.flatten(3).permute(0, 3, 1, 2)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tuple[Tensor, Tensor]:
        # (B, 2C, H, W) -> (B, H, W, C, 2): a view in any memory format
        halves = grad.permute(0, 2, 3, 1).unflatten(-1, (-1, 2))
        return tuple(halves[..., g].contiguous().permute(0, 3, 1, 2)
                     for g in (0, 1))


def conv_bn(in_channels: int,
            out_channels: int,
            kernel_size: int,
            stride: int = 1,
            groups: int = 1) -> List[nn.Module]:
    """A biased convolution and its BatchNorm."""
    return [
        nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            kernel_size // 2,
            groups=groups),
        nn.BatchNorm2d(out_channels)
    ]


def conv_bn_relu(in_channels: int,
                 out_channels: int,
                 kernel_size: int,
                 stride: int = 1) -> nn.Sequential:
    """Convolution, BatchNorm, ReLU."""
    return nn.Sequential(
        *conv_bn(in_channels, out_channels, kernel_size, stride),
        nn.ReLU(inplace=True))


class InvertedResidual(nn.Module):
    """ShuffleNetV2 unit with biased convolutions (spec §1.2).

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels; equal to ``in_channels`` when
            ``stride`` is 1.
        stride (int): 1 (split, transform one half, concat) or 2 (two
            branches, downsample).
    """

    def __init__(self, in_channels: int, out_channels: int,
                 stride: int) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f'stride must be 1 or 2, got {stride}')
        if stride == 1 and in_channels != out_channels:
            raise ValueError('a stride-1 unit needs in_channels == '
                             f'out_channels, got {in_channels} and '
                             f'{out_channels}')
        self.stride = stride
        mid = out_channels // 2
        if stride == 2:  # keys branch1.{0, 1, 2, 3}
            self.branch1 = nn.Sequential(
                *conv_bn(in_channels, in_channels, 3, 2, in_channels),
                *conv_bn(in_channels, mid, 1), nn.ReLU(inplace=True))
        # keys branch2.{0, 1, 3, 4, 5, 6}
        self.branch2 = nn.Sequential(
            *conv_bn(in_channels if stride == 2 else mid, mid, 1),
            nn.ReLU(inplace=True), *conv_bn(mid, mid, 3, stride, mid),
            *conv_bn(mid, mid, 1), nn.ReLU(inplace=True))

    def forward(self, x: Tensor) -> Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            return concat_shuffle(x1, self.branch2(x2))
        return concat_shuffle(self.branch1(x), self.branch2(x))


def make_stage(in_channels: int, out_channels: int,
               num_blocks: int) -> nn.Sequential:
    """One stride-2 unit followed by ``num_blocks - 1`` stride-1 units."""
    blocks = [InvertedResidual(in_channels, out_channels, 2)]
    blocks += [
        InvertedResidual(out_channels, out_channels, 1)
        for _ in range(num_blocks - 1)
    ]
    return nn.Sequential(*blocks)


class ShuffleStem(nn.Module):
    """Stem of GTPT-T and -S (spec §1.3): conv1, then one 4-unit stage.

    (B, 3, H, W) -> (B, out_channels, H/4, W/4).

    Args:
        out_channels (int): 128 (T) or 256 (S).
    """

    def __init__(self, out_channels: int) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.conv1 = conv_bn_relu(3, 64, 3, stride=2)
        self.layer = make_stage(64, out_channels, 4)

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(self.conv1(x))


class UpShuffle(nn.Sequential):
    """1x1 conv to 4C, PixelShuffle(2), BN, ReLU: doubles the resolution
    and ends with C channels."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels * 4, 1), nn.PixelShuffle(2),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class UShapedShuffleStem(nn.Module):
    """Stem of GTPT-B (spec §1.4): three ShuffleNetV2 down stages, then two
    up stages with skip connections.

    (B, 3, H, W) -> (B, 256, H/4, W/4), for H and W multiples of 4.
    """

    out_channels = 256

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = conv_bn_relu(3, 64, 3, stride=2)
        self.down_layer1 = make_stage(64, 256, 4)
        self.down_layer2 = make_stage(256, 384, 4)
        self.down_layer3 = make_stage(384, 512, 4)
        self.upsample1 = UpShuffle(512, 384)
        self.up_layer1 = nn.Sequential(
            conv_bn_relu(768, 384, 1), InvertedResidual(384, 384, 1),
            InvertedResidual(384, 384, 1))
        self.upsample2 = UpShuffle(384, 256)
        self.up_layer2 = nn.Sequential(
            conv_bn_relu(512, 256, 1), InvertedResidual(256, 256, 1),
            InvertedResidual(256, 256, 1))

    def forward(self, x: Tensor) -> Tensor:
        x1 = self.down_layer1(self.conv1(x))  # 256 x H/4
        x2 = self.down_layer2(x1)  # 384 x H/8
        x3 = self.down_layer3(x2)  # 512 x H/16
        x2 = self.up_layer1(torch.cat((x2, _like(self.upsample1(x3), x2)), 1))
        return self.up_layer2(
            torch.cat((x1, _like(self.upsample2(x2), x1)), 1))


def _like(up: Tensor, skip: Tensor) -> Tensor:
    """``up`` cut to ``skip``'s height and width: a stride-2 stage rounds an
    odd size up (33 -> 17 columns for a 264-pixel-wide input), doubling
    gives one row or column more than the skip has; the last one lies past
    the input. A no-op for sizes that are multiples of 16, like 256 x 192."""
    if up.shape[-2:] == skip.shape[-2:]:
        return up
    return up[..., :skip.shape[-2], :skip.shape[-1]]
