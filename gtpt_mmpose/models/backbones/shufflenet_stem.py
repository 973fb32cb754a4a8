"""ShuffleNetV2 stems that turn the image into a stride-4 feature map (spec §1.2–1.4).

They follow the authors' blocks exactly: every convolution has a bias and there is no max-pool,
unlike MMPose's ``ShuffleNetV2``, so the authors' weights load one to one. The concat + channel
shuffle that ends a unit is one copy that keeps the memory format (channels-last in eager PyTorch).
At inference in eager PyTorch each BatchNorm is folded into the convolution before it.
"""
from typing import List

import torch
import torch.nn as nn


def concat_shuffle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``channel_shuffle(cat((a, b), 1), groups=2)`` as one copy: output channel ``2j + g`` is
    channel ``j`` of input ``g``. (B, C, H, W) twice -> (B, 2C, H, W), channels-last if ``b`` is."""
    if b.is_contiguous(memory_format=torch.channels_last
                       ):  # channels are the innermost axis
        n, c, h, w = b.shape
        # two strided copies into (B, H, W, C, 2): a third faster than stack's element interleave
        nhwc = b.new_empty(n, h, w, c, 2)
        nhwc[..., 0] = a.permute(0, 2, 3, 1)
        nhwc[..., 1] = b.permute(0, 2, 3, 1)
        return nhwc.flatten(3).permute(0, 3, 1, 2)
    return torch.stack((a, b), dim=2).flatten(1, 2)


def conv_bn_eval(conv: nn.Conv2d, bn: nn.BatchNorm2d,
                 x: torch.Tensor) -> torch.Tensor:
    """``bn(conv(x))`` with BN's running statistics folded into the convolution's weight and bias."""
    scale = bn.weight * (bn.running_var + bn.eps).rsqrt()
    bias = -bn.running_mean if conv.bias is None else conv.bias - bn.running_mean
    return conv._conv_forward(x, conv.weight * scale.view(-1, 1, 1, 1),
                              bias * scale + bn.bias)


def _hooked(*modules: nn.Module) -> bool:
    return any(m._forward_hooks or m._forward_pre_hooks for m in modules)


class ConvBNSequential(nn.Sequential):
    """``nn.Sequential`` whose Conv2d -> BatchNorm2d pairs run as one folded convolution at
    inference in eager PyTorch (BatchNorm was 18 % of the stem's time at batch 1 on 2 cores).

    Same children and keys as ``nn.Sequential``. Training, ONNX export (ONNX Runtime folds BN
    itself) and pairs with forward hooks (e.g. the FLOPs counter) run the layers one by one.
    """

    def __init__(self, *layers: nn.Module) -> None:
        super().__init__(*layers)
        # positions of the convolutions whose output goes straight into a BatchNorm with statistics
        self.folded = frozenset(
            i for i in range(len(layers) - 1)
            if isinstance(layers[i], nn.Conv2d)
            and isinstance(layers[i + 1], nn.BatchNorm2d)
            and layers[i + 1].affine and layers[i + 1].track_running_stats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or torch.onnx.is_in_onnx_export():
            return super().forward(x)
        layers = iter(enumerate(self))
        for i, layer in layers:
            if i in self.folded:
                bn = next(layers)[1]
                x = bn(layer(x)) if _hooked(layer, bn) else conv_bn_eval(
                    layer, bn, x)
            else:
                x = layer(x)
        return x


class InvertedResidual(nn.Module):
    """ShuffleNetV2 unit with biased convolutions (spec §1.2).

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels; equal to ``in_channels`` when ``stride`` is 1.
        stride (int): 1 (split, transform half, concat) or 2 (two branches, downsample).
    """

    def __init__(self, in_channels: int, out_channels: int,
                 stride: int) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f'stride must be 1 or 2, got {stride}')
        if stride == 1 and in_channels != out_channels:
            raise ValueError(
                'a stride-1 unit needs in_channels == out_channels, '
                f'got {in_channels} and {out_channels}')
        self.stride = stride
        mid = out_channels // 2
        if stride == 2:
            self.branch1 = ConvBNSequential(
                nn.Conv2d(
                    in_channels, in_channels, 3, stride, 1,
                    groups=in_channels), nn.BatchNorm2d(in_channels),
                nn.Conv2d(in_channels, mid, 1), nn.BatchNorm2d(mid),
                nn.ReLU(inplace=True))
        branch2_in = in_channels if stride == 2 else mid
        self.branch2 = ConvBNSequential(
            nn.Conv2d(branch2_in, mid, 1), nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, stride, 1, groups=mid), nn.BatchNorm2d(mid),
            nn.Conv2d(mid, mid, 1), nn.BatchNorm2d(mid), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            return concat_shuffle(x1, self.branch2(x2))
        return concat_shuffle(self.branch1(x), self.branch2(x))


def conv_bn_relu(in_channels: int,
                 out_channels: int,
                 kernel_size: int,
                 stride: int = 1) -> nn.Sequential:
    return ConvBNSequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride,
                  kernel_size // 2), nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True))


def make_stage(in_channels: int, out_channels: int,
               num_blocks: int) -> nn.Sequential:
    """One stride-2 unit followed by ``num_blocks - 1`` stride-1 units."""
    blocks: List[nn.Module] = [InvertedResidual(in_channels, out_channels, 2)]
    blocks += [
        InvertedResidual(out_channels, out_channels, 1)
        for _ in range(num_blocks - 1)
    ]
    return nn.Sequential(*blocks)


class ShuffleStem(nn.Module):
    """Stem of GTPT-T and -S: conv1 then one 4-unit stage; (B, 3, H, W) -> (B, C, H/4, W/4)."""

    def __init__(self, out_channels: int) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.conv1 = conv_bn_relu(3, 64, 3, stride=2)
        self.layer = make_stage(64, out_channels, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(self.conv1(x))


class UpShuffle(nn.Sequential):
    """1x1 conv to 4C, PixelShuffle(2), BN, ReLU: doubles the resolution, keeps C channels."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels * 4, 1), nn.PixelShuffle(2),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class UShapedShuffleStem(nn.Module):
    """Stem of GTPT-B (spec §1.4): three ShuffleNetV2 down stages and two up stages with skips.

    (B, 3, H, W) -> (B, 256, H/4, W/4).
    """

    def __init__(self, out_channels: int = 256) -> None:
        super().__init__()
        if out_channels != 256:
            raise ValueError(
                f'the U-shaped stem outputs 256 channels, got out_channels={out_channels}'
            )
        self.out_channels = out_channels
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.down_layer1(self.conv1(x))  # 256 x H/4
        x2 = self.down_layer2(x1)  # 384 x H/8
        x3 = self.down_layer3(x2)  # 512 x H/16
        x2 = self.up_layer1(torch.cat((x2, self.upsample1(x3)),
                                      dim=1))  # 384 x H/8
        return self.up_layer2(torch.cat((x1, self.upsample2(x2)),
                                        dim=1))  # 256 x H/4
