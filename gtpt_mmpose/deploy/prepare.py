"""``prepare_for_inference``: rewrite a trained GTPT model once for the
device and runtime it will run on.

The model classes compute GTPT and nothing else; what only makes inference
faster lives here, applied through the submodules that the ``GTPT``
backbone lets inference replace (its docstring lists them).
"""
from typing import NamedTuple, Optional, Union

import torch
import torch.nn as nn
from torch import Tensor

from .fuse import cut_stem_shuffles, fold_conv_batchnorms, fold_patch_norm
from .onednn_linear import mkl_is_slow, use_onednn_linears

#: Images per tokenizer call in eager PyTorch on a CPU: a whole large batch's
#: stride-2 and stride-4 feature maps fall out of the CPU caches (GTPT-S,
#: batch 32, 2 cores: 44.6 ms per image in one call, 33.8 in chunks of 4,
#: docs/design.md §2.2). A GPU wants the whole batch at once.
TOKENIZER_CHUNK = 4

BACKENDS = ('eager', 'export')


class InferencePlan(NamedTuple):
    """What :func:`prepare_for_inference` does besides folding BatchNorms
    and cutting the stem's last shuffles.

    ``tokenizer_chunk``: images per tokenizer call (None: the whole batch);
    ``onednn_linears``: linear layers through oneDNN
    (``onednn_linear.py``); ``channels_last_stem``: keep the stem
    channels-last as the model has it (NHWC convolution kernels: GTPT-S, 2
    Intel cores, batch 1 32.8 against 47.2 ms per image in NCHW,
    docs/design.md §1.6), or make it NCHW, which an exported graph needs
    to trace without layout transposes.
    """
    tokenizer_chunk: Optional[int] = None
    onednn_linears: bool = False
    channels_last_stem: bool = False


def inference_plan(device: Union[str, torch.device],
                   backend: str = 'eager') -> InferencePlan:
    """What pays on ``device``: the tokenizer in chunks and oneDNN's
    linear layers (where MKL is slow) only in eager PyTorch on a CPU; the
    model's channels-last stem in eager PyTorch; an exported graph (whose
    runtime picks its own kernels and layouts) gets none of them.

    Args:
        device (str | torch.device): Where the model runs.
        backend (str): ``'eager'`` (also for ``torch.compile``) or
            ``'export'`` (ONNX Runtime, OpenVINO).

    Returns:
        InferencePlan: The plan.
    """
    if backend not in BACKENDS:
        raise ValueError(f'backend must be one of {BACKENDS}, got '
                         f'{backend!r}')
    if backend == 'export':
        return InferencePlan()
    if torch.device(device).type != 'cpu':
        return InferencePlan(channels_last_stem=True)
    return InferencePlan(TOKENIZER_CHUNK, mkl_is_slow(), True)


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


@torch.no_grad()
def prepare_for_inference(pose_model: nn.Module,
                          backend: str = 'eager',
                          plan: Optional[InferencePlan] = None) -> nn.Module:
    """Rewrite a GTPT pose model for inference, in place, once.

    Always: every BatchNorm of the backbone folded into the layer before it,
    and the stem's last stage run without channel shuffles or splits, its
    output order absorbed by the patch embedding's weights. Then
    :func:`inference_plan` for the model's device (or ``plan``): on a CPU in
    eager PyTorch the tokenizer runs in chunks of a few images, and the
    linear layers through oneDNN where MKL is slow; an export gets an NCHW
    stem. For ``'export'``
    nothing more: ``write_onnx`` writes attention as the fused ONNX
    ``Attention`` op. The rewritten model gives the same outputs (to float
    rounding) and can no longer be trained or load checkpoints.

    Args:
        pose_model (nn.Module): A ``TopdownPoseEstimator`` with a ``GTPT``
            backbone, with its weights loaded, on the device it will run on.
        backend (str): ``'eager'`` (also for ``torch.compile``) or
            ``'export'`` (ONNX Runtime, OpenVINO).
        plan (InferencePlan, optional): Overrides the device's plan.

    Returns:
        nn.Module: ``pose_model``, in eval mode.
    """
    backbone = pose_model.eval().backbone
    if not hasattr(backbone, 'patch_embed'):
        raise TypeError('prepare_for_inference needs a GTPT backbone, got '
                        f'{type(backbone).__name__}')
    if not isinstance(backbone.patch_norm, nn.BatchNorm2d):
        raise ValueError('the model is already prepared for inference')
    if plan is None:
        plan = inference_plan(backbone.pos_embed.device, backend)
    elif backend == 'export' and plan != InferencePlan():
        raise ValueError('an exported graph runs its runtime\'s kernels on '
                         f'whole batches; got {plan}')
    fold_conv_batchnorms(backbone.stem)
    fold_patch_norm(backbone)
    cut_stem_shuffles(backbone)
    if plan.onednn_linears:
        use_onednn_linears(backbone)
    backbone.stem.to(memory_format=torch.channels_last if plan.
                     channels_last_stem else torch.contiguous_format)
    if plan.tokenizer_chunk:  # stem, patch_norm and patch_embed as one
        backbone.stem = BatchChunks(
            nn.Sequential(backbone.stem, backbone.patch_embed),
            plan.tokenizer_chunk)
        backbone.patch_embed = nn.Identity()
    return pose_model
