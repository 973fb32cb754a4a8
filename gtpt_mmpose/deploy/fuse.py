"""Weight rewrites of a trained GTPT for inference: BatchNorms folded into
the layer before them, and the stem's last stage without channel shuffles
(``shuffle_free_stage.py``), its output order absorbed by the patch
embedding. The same function of the input, to float rounding.
"""
import torch
import torch.nn as nn
from torch import Tensor
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..models.backbones.shufflenet_stem import ShuffleStem, UShapedShuffleStem
from .shuffle_free_stage import ShuffleFreeStage


def cut_stem_shuffles(backbone: nn.Module) -> None:
    """Run the stem's last stage (GTPT-B: its last up stage) as a
    :class:`~.shuffle_free_stage.ShuffleFreeStage`, without channel shuffles
    or splits, and permute the patch embedding's columns to the order it
    leaves the channels in. Needs the stem's BatchNorms and ``patch_norm``
    folded first."""
    stem = backbone.stem
    if isinstance(stem, ShuffleStem):
        stage = stem.layer = ShuffleFreeStage(stem.layer[0], stem.layer[1:])
    elif isinstance(stem, UShapedShuffleStem):
        stage = stem.up_layer2 = ShuffleFreeStage(stem.up_layer2[0],
                                                  stem.up_layer2[1:])
    else:
        raise TypeError(f'no shuffle stage known in a {type(stem).__name__}')
    _permute_patch_channels(backbone, torch.tensor(stage.out_order))


def _permute_patch_channels(backbone: nn.Module, order: Tensor) -> None:
    """Make the patch embedding read stem channel j where it read channel
    ``order[j]``."""
    linear = backbone.patch_embed
    with torch.no_grad():  # columns (patch cell, channel), channel fastest
        weight = linear.weight.view(linear.out_features, -1, order.numel())
        weight.copy_(weight[:, :, order.to(weight.device)])  # indexing copies


def fold_conv_batchnorms(module: nn.Module) -> int:
    """Fold every BatchNorm that follows a convolution in an ``nn.Sequential``
    (directly, or after a ``PixelShuffle``) into the convolution; the
    BatchNorm becomes ``nn.Identity``. Returns how many were folded."""
    folded = 0
    for seq in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        layers = list(seq)
        for i, bn in enumerate(layers):
            if not (isinstance(bn, nn.BatchNorm2d) and i > 0):
                continue
            prev = layers[i - 1]
            if isinstance(prev, nn.Conv2d):
                seq[i - 1] = fuse_conv_bn_eval(prev.eval(), bn.eval())
            elif (isinstance(prev, nn.PixelShuffle) and i > 1
                  and isinstance(layers[i - 2], nn.Conv2d)):
                seq[i -
                    2] = _fold_through_pixel_shuffle(layers[i - 2], bn,
                                                     prev.upscale_factor)
            else:
                continue
            seq[i] = nn.Identity()
            folded += 1
    return folded


def _fold_through_pixel_shuffle(conv: nn.Conv2d, bn: nn.BatchNorm2d,
                                factor: int) -> nn.Conv2d:
    """conv -> PixelShuffle(factor) -> bn as one convolution before the
    shuffle: output channel c of the shuffle comes from convolution channels
    c * factor**2 ... (c + 1) * factor**2 - 1."""
    scale, shift = _bn_affine(bn)
    n = factor * factor
    return _scaled_conv(conv, scale.repeat_interleave(n),
                        shift.repeat_interleave(n))


def _bn_affine(bn: nn.BatchNorm2d):
    """(scale, shift) of an eval-mode BatchNorm: y = x * scale + shift."""
    scale = bn.weight * (bn.running_var + bn.eps).rsqrt()
    return scale.detach(), (bn.bias - bn.running_mean * scale).detach()


def _scaled_conv(conv: nn.Conv2d, scale: Tensor, shift: Tensor) -> nn.Conv2d:
    """A copy of ``conv`` whose output is multiplied by ``scale`` and then
    shifted by ``shift`` per channel."""
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        bias=True)
    with torch.no_grad():
        fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(shift)
        fused.bias.copy_(bias * scale + shift)
    return fused.to(conv.weight.device)


def fold_patch_norm(backbone: nn.Module) -> None:
    """Fold GTPT's ``patch_norm`` (BatchNorm over the stem's channels) into
    ``patch_embed``: a patch vector is ordered (row, column, channel) with
    the channel fastest (spec §1.5), so channel k's scale and shift apply to
    every column ``p * ch + k`` of the linear layer."""
    scale, shift = _bn_affine(backbone.patch_norm)
    linear = backbone.patch_embed
    cells = linear.in_features // scale.numel()
    with torch.no_grad():
        weight = linear.weight.view(linear.out_features, cells, -1)
        linear.bias += (weight * shift).sum(dim=(1, 2))
        weight *= scale
    backbone.patch_norm = nn.Identity()
