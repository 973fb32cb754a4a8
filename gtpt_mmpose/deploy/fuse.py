"""Inference-time rewrites of a GTPT model, applied once at deploy time.

The model classes compute GTPT and nothing else; what only makes inference
faster lives here: BatchNorms folded into the layer before them, the stem's
channel shuffles moved into weights (the last one, or for an export all of
the last stage's, ``shuffle_free_stage.py``), its memory layout, and the
tokenizer run in chunks of a large batch.
"""
from typing import Optional

import torch
import torch.nn as nn
from torch import Tensor
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..models.backbones.onednn_linear import (onednn_linear_available,
                                              resolve_linear_kernel,
                                              use_onednn_linears,
                                              use_torch_linears)
from ..models.backbones.shufflenet_stem import (InvertedResidual, ShuffleStem,
                                                UShapedShuffleStem)
from ..models.backbones.transformer import Attention
from .shuffle_free_stage import ShuffleFreeStage

#: Images per tokenizer call at inference in eager PyTorch: a whole large
#: batch's stride-2 and stride-4 feature maps fall out of the CPU caches
#: (GTPT-S, batch 32, 2 cores: 43.0 ms per image in one call, 33.5 with the
#: stem in chunks of 4, 31.5 with the whole tokenizer in chunks of 4).
TOKENIZER_CHUNK = 4


class BatchChunks(nn.Module):
    """Run ``module`` on chunks of at most ``size`` images and concatenate.

    Args:
        module (nn.Module): A module that treats images independently.
        size (int): Images per call.
    """

    def __init__(self, module: nn.Module, size: int) -> None:
        super().__init__()
        self.module = module
        self.size = size

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[0] <= self.size:
            return self.module(x)
        return torch.cat([self.module(c) for c in x.split(self.size)])


class ConvPatchEmbed(nn.Module):
    """GTPT's ``PatchEmbed`` as the equivalent strided convolution (same
    weights, permuted): no patch gather, whose transposes some runtimes run
    slowly. (B, ch, H, W) -> (B, N, C).

    Args:
        patch_embed (nn.Module): The ``PatchEmbed`` to replace.
    """

    def __init__(self, patch_embed: nn.Module) -> None:
        super().__init__()
        ph, pw = patch_embed.patch_size
        dims = patch_embed.out_features
        ch = patch_embed.in_features // (ph * pw)
        self.conv = nn.Conv2d(ch, dims, (ph, pw),
                              (ph, pw)).to(patch_embed.weight.device)
        with torch.no_grad():  # linear columns are (row, column, channel)
            self.conv.weight.copy_(
                patch_embed.weight.view(dims, ph, pw, ch).permute(0, 3, 1, 2))
            self.conv.bias.copy_(patch_embed.bias)

    def forward(self, f: Tensor) -> Tensor:
        return self.conv(f).flatten(2).transpose(1, 2)


class UnshuffledUnit(nn.Module):
    """A ShuffleNetV2 unit whose output channels stay in concatenation order
    (both halves one after the other), without the final channel shuffle.

    Only for the stem's last unit: the patch embedding takes its channels
    in any order once its columns are permuted (:func:`drop_final_shuffle`).

    Args:
        unit (InvertedResidual): The unit to run.
    """

    def __init__(self, unit: InvertedResidual) -> None:
        super().__init__()
        self.unit = unit

    def forward(self, x: Tensor) -> Tensor:
        unit = self.unit
        if unit.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            return torch.cat((x1, unit.branch2(x2)), dim=1)
        return torch.cat((unit.branch1(x), unit.branch2(x)), dim=1)


def drop_final_shuffle(backbone: nn.Module) -> None:
    """Run the stem's last unit without its channel shuffle and permute the
    patch embedding's columns to match: the same tokens, one copy fewer, and
    no shuffled layout for the runtimes to reorder before the patch gather.

    The shuffle puts channel ``j`` of half ``g`` at ``2j + g``; unshuffled it
    is at ``g C + j``. Needs ``patch_norm`` folded first.
    """
    stem = backbone.stem
    if isinstance(stem, ShuffleStem):
        units = stem.layer
    elif isinstance(stem, UShapedShuffleStem):
        units = stem.up_layer2
    else:
        raise TypeError(f'no final shuffle known in a {type(stem).__name__}')
    units[-1] = UnshuffledUnit(units[-1])
    ch = stem.out_channels
    half = torch.arange(ch)
    _permute_patch_channels(backbone,
                            2 * (half % (ch // 2)) + half // (ch // 2))


def cut_stem_shuffles(backbone: nn.Module) -> None:
    """Run the stem's last stage (GTPT-B: its last up stage) as a
    :class:`~.shuffle_free_stage.ShuffleFreeStage`, without channel shuffles
    or splits, and permute the patch embedding's columns to the order it
    leaves the channels in. For exported graphs; needs the stem's
    BatchNorms and ``patch_norm`` folded first."""
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


@torch.no_grad()
def prepare_for_inference(pose_model: nn.Module,
                          backend: str = 'eager',
                          chunk: Optional[int] = TOKENIZER_CHUNK,
                          patch_conv: Optional[bool] = None,
                          onednn: Optional[bool] = None) -> nn.Module:
    """Rewrite a GTPT pose model for inference, in place, once.

    Folds every BatchNorm of the backbone into the layer before it and lays
    the model out for the runtime. For eager PyTorch (and ``torch.compile``):
    the stem's last channel shuffle dropped (:func:`drop_final_shuffle`),
    linear layers through oneDNN with the FFN's GELU in the same call
    (compiled for inference, inductor's own linear kernels where MKL is
    fast: ``OneDNNLinear``), channels-last stem weights and chunks of
    ``chunk`` images (the stem, the patch embedding's BatchNorm and linear
    layer then run as one module in ``backbone.stem``). For an exported
    graph: the stem's last stage without shuffles or splits
    (:func:`cut_stem_shuffles`), plain NCHW in one call, as its runtime
    picks its own layout, plain linear layers, and attention in SDPA's form
    (``write_onnx`` writes it as the fused ONNX ``Attention`` op,
    ``onnx_attention.py``; the TorchScript exporter writes it out). The
    rewritten model gives the same outputs (to float rounding) and can no
    longer be trained or load checkpoints.

    Args:
        pose_model (nn.Module): A ``TopdownPoseEstimator`` with a ``GTPT``
            backbone, with its weights loaded.
        backend (str): ``'eager'`` (also for ``torch.compile``) or
            ``'export'`` (ONNX, OpenVINO).
        chunk (int, optional): Images per tokenizer call in eager PyTorch;
            None runs the whole batch at once.
        patch_conv (bool, optional): Embed patches with the equivalent
            strided convolution instead of a gather and a linear layer.
        onednn (bool, optional): Run the linear layers through oneDNN
            (``models/backbones/onednn_linear.py``). Defaults to yes for
            ``'eager'`` where PyTorch has oneDNN; an exported graph has its
            runtime's own kernels.

    Returns:
        nn.Module: ``pose_model``, in eval mode.
    """
    if backend not in ('eager', 'export'):
        raise ValueError(f"backend must be 'eager' or 'export', got "
                         f'{backend!r}')
    backbone = pose_model.eval().backbone
    if not hasattr(backbone, 'patch_embed'):
        raise TypeError('prepare_for_inference needs a GTPT backbone, got '
                        f'{type(backbone).__name__}')
    if not isinstance(backbone.patch_norm, nn.BatchNorm2d):
        raise ValueError('the model is already prepared for inference')
    fold_conv_batchnorms(backbone.stem)
    fold_patch_norm(backbone)
    if backend == 'export':
        cut_stem_shuffles(backbone)
    else:
        drop_final_shuffle(backbone)
    if patch_conv:
        backbone.patch_embed = ConvPatchEmbed(backbone.patch_embed)
    if onednn is None:
        onednn = backend == 'eager' and onednn_linear_available()
    elif onednn and backend == 'export':
        raise ValueError('oneDNN linear layers are for eager PyTorch; an '
                         'exported graph runs its runtime\'s kernels')
    if onednn:  # compiled, inductor's own linear kernels where MKL is fast
        use_onednn_linears(
            pose_model,
            fuse_gelu=True,
            compiled_inference=resolve_linear_kernel('auto'))
    else:  # the model's own choice undone: plain layers for an export
        use_torch_linears(pose_model)
    if backend == 'export':  # the runtimes fuse SDPA's form (ONNX Attention)
        for attention in pose_model.modules():
            if isinstance(attention, Attention):
                attention.impl = 'sdpa'
    layout = torch.channels_last if backend == 'eager' \
        else torch.contiguous_format
    backbone.stem.to(memory_format=layout)
    if backend == 'eager' and chunk:  # the tokenizer as one module, chunked
        backbone.stem = BatchChunks(
            nn.Sequential(backbone.stem, backbone.patch_embed), chunk)
        backbone.patch_embed = nn.Identity()
    return pose_model
