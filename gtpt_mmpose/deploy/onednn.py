"""Linear layers through oneDNN's inner product in eager PyTorch on CPUs.

PyTorch runs a float32 ``nn.Linear`` on a CPU through the BLAS it was built
with (MKL on x86). oneDNN's inner product, which PyTorch also ships, picks
its kernel for the CPU it runs on: on this project's AMD EPYC (AVX-512) it
reaches 210-245 GMAC/s on 2 threads at GTPT's shapes, MKL about 100
(docs/history.md). The result is the same float32 product; GTPT's GELU runs
in the same call.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..models.backbones.patch_embed import PatchEmbed, patch_vectors
from ..models.backbones.transformer import FeedForward

#: Activations the inner product applies to its output in the same call.
ACTIVATIONS = ('none', 'gelu')


@torch.library.custom_op('gtpt_mmpose::onednn_linear', mutates_args=())
def onednn_linear(x: Tensor, weight: Tensor, bias: Optional[Tensor],
                  activation: str) -> Tensor:
    """oneDNN's linear layer as an opaque operator for ``torch.compile``,
    whose oneDNN fusion passes assert that the weight is a frozen constant
    (torch 2.13) and so fail on a module compiled without freezing."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, activation, [],
                                              'none')


@onednn_linear.register_fake
def _(x: Tensor, weight: Tensor, bias: Optional[Tensor],
      activation: str) -> Tensor:
    return x.new_empty(*x.shape[:-1], weight.shape[0])


def onednn_linear_available() -> bool:
    """Whether this PyTorch has oneDNN and its fused linear operator."""
    return torch.backends.mkldnn.is_available() and hasattr(
        torch.ops.mkldnn, '_linear_pointwise')


class OneDNNLinear(nn.Linear):
    """``nn.Linear`` (optionally followed by exact GELU) run by oneDNN on
    float32 CPU tensors; anything else (autocast, other dtypes, GPUs) takes
    PyTorch's own path. Same parameters as the layer it replaces.

    Args:
        linear (nn.Linear): The layer to take the weights of.
        activation (str): One of :data:`ACTIVATIONS`.

    Shapes: (..., in_features) -> (..., out_features).
    """

    def __init__(self, linear: nn.Linear, activation: str = 'none') -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(f'activation must be one of {ACTIVATIONS}, got '
                             f'{activation!r}')
        super().__init__(
            linear.in_features,
            linear.out_features,
            linear.bias is not None,
            device='meta')
        self.weight, self.bias = linear.weight, linear.bias
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        if (x.is_cpu and x.dtype == torch.float32
                and self.weight.dtype == torch.float32
                and not torch.is_autocast_enabled('cpu')):
            if torch.compiler.is_compiling():
                return onednn_linear(x, self.weight, self.bias,
                                     self.activation)
            return torch.ops.mkldnn._linear_pointwise(x, self.weight,
                                                      self.bias,
                                                      self.activation, [],
                                                      'none')
        y = F.linear(x, self.weight, self.bias)
        return F.gelu(y) if self.activation == 'gelu' else y


class OneDNNPatchEmbed(OneDNNLinear):
    """GTPT's ``PatchEmbed`` with its linear layer run by oneDNN.

    Shapes: (B, ch, H, W) -> (B, N, embed_dims).
    """

    def __init__(self, patch_embed: PatchEmbed) -> None:
        super().__init__(patch_embed)
        self.patch_size: Tuple[int, int] = patch_embed.patch_size

    def forward(self, f: Tensor) -> Tensor:
        return super().forward(patch_vectors(f, self.patch_size))


def use_onednn_linears(module: nn.Module) -> int:
    """Replace every linear layer under ``module`` with its oneDNN form, in
    place; an FFN's first layer takes its GELU along. Returns how many were
    replaced."""
    replaced = 0
    for ffn in [m for m in module.modules() if isinstance(m, FeedForward)]:
        if isinstance(ffn.act, nn.GELU) and ffn.act.approximate == 'none':
            ffn.fc1, ffn.act = OneDNNLinear(ffn.fc1, 'gelu'), nn.Identity()
            replaced += 1
    for parent in list(module.modules()):
        for name, child in parent.named_children():
            if isinstance(child, OneDNNLinear):
                continue
            if isinstance(child, PatchEmbed):
                setattr(parent, name, OneDNNPatchEmbed(child))
            elif type(child) is nn.Linear:
                setattr(parent, name, OneDNNLinear(child))
            else:
                continue
            replaced += 1
    return replaced
