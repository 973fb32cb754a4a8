"""Linear layers through oneDNN's inner product, for inference on CPUs whose
BLAS is slow.

PyTorch runs a float32 ``nn.Linear`` on a CPU through the BLAS it was built
with (MKL on x86). MKL picks its kernels by CPU vendor: on Intel CPUs it runs
GTPT's linear layers at 160-220 GMAC/s on 2 threads, on an AMD EPYC with the
same AVX-512 at about 100; oneDNN, which PyTorch also ships, picks its
kernels by instruction set and reaches 165-210 on both (docs/design.md
§2.3). :func:`use_onednn_linears` is what ``prepare_for_inference`` applies
where :func:`mkl_is_slow`. Same float32 product, another summation order.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..models.backbones.patch_embed import PatchEmbed, patch_vectors
from ..models.backbones.transformer import FeedForward
from .cpu_info import cpuinfo_field


def onednn_linear_available() -> bool:
    """Whether this PyTorch has oneDNN and its linear operator."""
    return torch.backends.mkldnn.is_available() and hasattr(
        torch.ops.mkldnn, '_linear_pointwise')


def mkl_is_slow() -> bool:
    """Whether oneDNN's linear layers beat PyTorch's on this CPU: PyTorch has
    oneDNN, and its BLAS is not MKL on an Intel CPU."""
    mkl_fast = torch.backends.mkl.is_available() and cpuinfo_field(
        'vendor_id') == 'GenuineIntel'
    return onednn_linear_available() and not mkl_fast


class OneDNNLinear(nn.Linear):
    """``nn.Linear``, optionally followed by exact GELU, run by oneDNN for
    float32 inference on CPUs. Anywhere else (gradients, autocast, other
    dtypes or devices, ``torch.compile``, which lowers ``F.linear`` to its
    own kernels) it is ``F.linear``. It shares the parameters of the layer it
    replaces, under the same names.

    Args:
        linear (nn.Linear): The layer to take the parameters of.
        gelu (bool): Apply exact GELU to the output in the same call.

    Shapes: (..., in_features) -> (..., out_features).
    """

    def __init__(self, linear: nn.Linear, gelu: bool = False) -> None:
        super().__init__(
            linear.in_features,
            linear.out_features,
            linear.bias is not None,
            device='meta')
        self.weight, self.bias = linear.weight, linear.bias
        self.activation = 'gelu' if gelu else 'none'

    def forward(self, x: Tensor) -> Tensor:
        if (x.is_cpu and x.dtype == torch.float32
                and self.weight.dtype == torch.float32
                and not torch.is_grad_enabled()
                and not torch.is_autocast_enabled('cpu')
                and not torch.compiler.is_compiling()):
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
        self.patch_size = patch_embed.patch_size

    def forward(self, f: Tensor) -> Tensor:
        return super().forward(patch_vectors(f, self.patch_size))


class OneDNNFeedForward(nn.Module):
    """An FFN whose GELU runs in its first layer's oneDNN call.

    Args:
        ffn (FeedForward): The FFN to take the layers of.
    """

    def __init__(self, ffn: FeedForward) -> None:
        super().__init__()
        self.fc1 = OneDNNLinear(ffn.fc1, gelu=True)
        self.fc2 = OneDNNLinear(ffn.fc2)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.fc1(x))


def use_onednn_linears(backbone: nn.Module) -> int:
    """Run every linear layer of a GTPT backbone through oneDNN, in place,
    through the submodules the backbone lets inference replace: the patch
    embedding, each FFN, and the attention's ``qkv`` and ``proj``. Returns
    how many linear layers changed."""
    changed = 0
    if isinstance(backbone.patch_embed, PatchEmbed):
        backbone.patch_embed = OneDNNPatchEmbed(backbone.patch_embed)
        changed += 1
    for block in [*backbone.coarse_blocks, *backbone.group_blocks]:
        block.ffn = OneDNNFeedForward(block.ffn)
        block.attn.qkv = OneDNNLinear(block.attn.qkv)
        block.attn.proj = OneDNNLinear(block.attn.proj)
        changed += 4
    return changed
