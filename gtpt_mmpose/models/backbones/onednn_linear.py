"""Linear layers through oneDNN's inner product on CPUs.

PyTorch runs a float32 ``nn.Linear`` on a CPU through the BLAS it was built
with (MKL on x86). MKL picks its kernels by CPU vendor: on Intel CPUs its
AVX-512 GEMM reaches 160-220 GMAC/s on 2 threads at GTPT's training shapes,
on this project's AMD EPYC (AVX-512 too) about 100. oneDNN, which PyTorch
also ships, picks its kernels by instruction set and reaches 165-210 on both
(docs/history.md). So the backbone's ``linear_kernel='auto'`` keeps
PyTorch's layers on Intel CPUs, where they train faster, and takes these
elsewhere. Same float32 product, another summation order. The forward and
the input gradient run in oneDNN's inner product, the weight gradient in its
1x1 convolution backward.
"""
from typing import Callable, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ...utils.cpu_info import cpuinfo_field
from .patch_embed import PatchEmbed, patch_vectors
from .transformer import FeedForward

#: How GTPT's linear layers run on a CPU: PyTorch's ``nn.Linear`` (its BLAS),
#: :class:`OneDNNLinear`, or ``'auto'``, the faster of the two for training
#: on this CPU (:func:`resolve_linear_kernel`).
LINEAR_KERNELS = ('auto', 'torch', 'onednn')

#: Activations a :class:`OneDNNLinear` applies in the same call: exact GELU
#: before the product (recomputed in backward) or after it (inference only).
ACTIVATIONS = ('none', 'gelu')


def onednn_linear_available() -> bool:
    """Whether this PyTorch has oneDNN and its linear operator."""
    return torch.backends.mkldnn.is_available() and hasattr(
        torch.ops.mkldnn, '_linear_pointwise')


def cpu_vendor() -> str:
    """The CPU's vendor id (``'GenuineIntel'``, ``'AuthenticAMD'``), or ``''``
    where the system does not say (no ``/proc/cpuinfo``)."""
    return cpuinfo_field('vendor_id')


def resolve_linear_kernel(kernel: str) -> str:
    """``'torch'`` or ``'onednn'`` for a :data:`LINEAR_KERNELS` value:
    ``'torch'`` wherever PyTorch has no oneDNN.

    ``'auto'`` is ``'torch'`` where PyTorch's BLAS is MKL on an Intel CPU
    (MKL's own AVX-512 kernels: a GTPT-S training step about 4 % faster than
    with oneDNN's, docs/history.md) and ``'onednn'`` elsewhere (on AMD CPUs MKL
    runs at about half oneDNN's rate).
    """
    if kernel == 'torch' or not onednn_linear_available():
        return 'torch'
    if kernel == 'onednn':
        return kernel
    mkl_fast = torch.backends.mkl.is_available() and \
        cpu_vendor() == 'GenuineIntel'
    return 'torch' if mkl_fast else 'onednn'


@torch.library.custom_op('gtpt_mmpose::onednn_linear', mutates_args=())
def onednn_linear(x: Tensor, weight: Tensor, bias: Optional[Tensor],
                  input_activation: str, activation: str) -> Tensor:
    """``activation(input_activation(x) @ weight.T + bias)`` by oneDNN for a
    2-D ``x``, with its backward.

    An opaque operator for autograd and for ``torch.compile``, whose own
    oneDNN fusion passes assert that the weight is a frozen constant
    (torch 2.13) and fail on a module compiled without freezing. The input
    activation is recomputed in backward rather than kept.
    """
    if input_activation == 'gelu':
        x = F.gelu(x)
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, activation, [],
                                              'none')


@onednn_linear.register_fake
def _(x: Tensor, weight: Tensor, bias: Optional[Tensor], input_activation: str,
      activation: str) -> Tensor:
    return x.new_empty(x.shape[0], weight.shape[0])


def _setup_context(ctx, inputs: tuple, output: Tensor) -> None:
    x, weight, bias, input_activation, activation = inputs
    ctx.save_for_backward(x, weight)
    ctx.has_bias = bias is not None
    ctx.input_activation, ctx.activation = input_activation, activation


def _backward(ctx, grad: Tensor) -> Tuple[Optional[Tensor], ...]:
    if ctx.activation != 'none':
        raise RuntimeError('a oneDNN linear layer with a fused activation is '
                           'for inference only')
    x, weight = ctx.saved_tensors
    gelu_in = ctx.input_activation == 'gelu'
    grad_x = grad_weight = grad_bias = None
    if ctx.needs_input_grad[0]:  # grad @ weight, weight's transpose a view
        grad_x = _inner_product(grad, weight.t())
        if gelu_in:
            grad_x = torch.ops.aten.gelu_backward(grad_x, x)
    if ctx.needs_input_grad[1]:
        grad_weight = _weight_grad(grad, F.gelu(x) if gelu_in else x)
    if ctx.has_bias and ctx.needs_input_grad[2]:
        grad_bias = grad.sum(0)
    return grad_x, grad_weight, grad_bias, None, None


def _weight_grad(grad: Tensor, x: Tensor) -> Tensor:
    """grad^T @ x by oneDNN: (N, out) and (N, in) -> (out, in).

    It is the weight gradient of a 1x1 convolution whose input and output
    gradient are ``x`` and ``grad`` seen as channels-last images of N x 1
    pixels: views, no transposed copies (whose buffers raised the peak
    memory when oneDNN's inner product computed this, docs/history.md).
    """
    out_features, in_features = grad.shape[1], x.shape[1]
    images = grad.t()[None, :, :, None], x.t()[None, :, :, None]
    # a channels-last weight keeps oneDNN on the channels-last views; with a
    # contiguous one it copies both to NCHW
    weight = torch.empty((out_features, in_features, 1, 1),
                         dtype=x.dtype,
                         device=x.device,
                         memory_format=torch.channels_last)
    _, grad_weight, _ = torch.ops.aten.convolution_backward(
        *images, weight, None, (1, 1), (0, 0), (1, 1), False, (0, 0), 1,
        (False, True, False))
    return grad_weight.view(out_features, in_features)


def _inner_product(a: Tensor, b: Tensor) -> Tensor:
    """a @ b^T by oneDNN."""
    return torch.ops.mkldnn._linear_pointwise(a, b, None, 'none', [], 'none')


onednn_linear.register_autograd(_backward, setup_context=_setup_context)


class OneDNNLinear(nn.Linear):
    """``nn.Linear``, optionally with exact GELU before it (recomputed in
    backward instead of kept: an FFN's widest activation) or after it (for
    inference), run by oneDNN on float32 CPU tensors; anything else
    (autocast, other dtypes, GPUs) takes PyTorch's own path. It shares the
    parameters of the layer it replaces, under the same names.

    Args:
        linear (nn.Linear): The layer to take the parameters of.
        activation (str): One of :data:`ACTIVATIONS`, after the layer.
        input_activation (str): One of :data:`ACTIVATIONS`, before it.
        compiled_inference (str): What an inference graph of
            ``torch.compile`` calls: ``'onednn'`` (this layer's operator) or
            ``'torch'`` (``F.linear``, which inductor lowers to its own
            kernels: with freezing, MKL's packed GEMM; GTPT-S 15 % faster
            on an Intel CPU, docs/history.md).

    Shapes: (..., in_features) -> (..., out_features).
    """

    def __init__(self,
                 linear: nn.Linear,
                 activation: str = 'none',
                 input_activation: str = 'none',
                 compiled_inference: str = 'onednn') -> None:
        for value in (activation, input_activation):
            if value not in ACTIVATIONS:
                raise ValueError(f'activations must be in {ACTIVATIONS}, got '
                                 f'{value!r}')
        if compiled_inference not in ('onednn', 'torch'):
            raise ValueError("compiled_inference must be 'onednn' or "
                             f"'torch', got {compiled_inference!r}")
        super().__init__(
            linear.in_features,
            linear.out_features,
            linear.bias is not None,
            device='meta')
        self.weight, self.bias = linear.weight, linear.bias
        self.activation, self.input_activation = activation, input_activation
        self.compiled_inference = compiled_inference

    def forward(self, x: Tensor) -> Tensor:
        if not self._in_onednn(x):
            if self.input_activation == 'gelu':
                x = F.gelu(x)
            y = F.linear(x, self.weight, self.bias)
            return F.gelu(y) if self.activation == 'gelu' else y
        if torch.is_grad_enabled() or torch.compiler.is_compiling():
            # 2-D through the operator: the output is no view then, so that
            # autograd lets in-place layers (ReLU) follow
            y = onednn_linear(
                x.reshape(-1, self.in_features), self.weight, self.bias,
                self.input_activation, self.activation)
            return y.view(*x.shape[:-1], self.out_features)
        # inference: the operator itself, without the custom op's dispatch
        if self.input_activation == 'gelu':
            x = F.gelu(x)
        return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias,
                                                  self.activation, [], 'none')

    def _in_onednn(self, x: Tensor) -> bool:
        if not (x.is_cpu and x.dtype == torch.float32 and self.weight.dtype
                == torch.float32 and not torch.is_autocast_enabled('cpu')):
            return False
        # read once, while torch.compile traces
        return not (self.compiled_inference == 'torch'
                    and torch.compiler.is_compiling()
                    and not torch.is_grad_enabled())


class OneDNNPatchEmbed(OneDNNLinear):
    """GTPT's ``PatchEmbed`` with its linear layer run by oneDNN.

    Shapes: (B, ch, H, W) -> (B, N, embed_dims).
    """

    def __init__(self,
                 patch_embed: PatchEmbed,
                 compiled_inference: str = 'onednn') -> None:
        super().__init__(patch_embed, compiled_inference=compiled_inference)
        self.patch_size: Tuple[int, int] = patch_embed.patch_size

    def forward(self, f: Tensor) -> Tensor:
        return super().forward(patch_vectors(f, self.patch_size))


def _torch_linear(layer: OneDNNLinear) -> nn.Linear:
    """The plain layer with the parameters of ``layer``."""
    if isinstance(layer, OneDNNPatchEmbed):
        ph, pw = layer.patch_size
        plain = PatchEmbed(layer.in_features // (ph * pw), layer.out_features,
                           layer.patch_size).to('meta')
    else:
        plain = nn.Linear(
            layer.in_features,
            layer.out_features,
            layer.bias is not None,
            device='meta')
    plain.weight, plain.bias = layer.weight, layer.bias
    return plain


def _place_ffn_gelu(ffn: FeedForward,
                    where: str,
                    compiled_inference: str = 'onednn') -> None:
    """Put an FFN's GELU in ``where``: ``'act'`` (plain layers around
    ``nn.GELU``), ``'fc1'`` (after the first layer's inner product, for
    inference) or ``'fc2'`` (before the second, recomputed in backward)."""
    fc1, fc2 = ffn.fc1, ffn.fc2
    if where == 'act':
        ffn.fc1, ffn.act = _torch_linear(fc1), nn.GELU()
        ffn.fc2 = _torch_linear(fc2)
    else:
        ffn.act = nn.Identity()
        ffn.fc1 = OneDNNLinear(fc1, 'gelu' if where == 'fc1' else 'none',
                               'none', compiled_inference)
        ffn.fc2 = OneDNNLinear(fc2, 'none',
                               'gelu' if where == 'fc2' else 'none',
                               compiled_inference)


def use_torch_linears(module: nn.Module) -> int:
    """Undo :func:`use_onednn_linears`, in place, e.g. before an export that
    must not see oneDNN's operator. Returns how many layers changed."""
    changed = 0
    for ffn in [m for m in module.modules() if isinstance(m, FeedForward)]:
        if isinstance(ffn.fc1, OneDNNLinear):
            _place_ffn_gelu(ffn, 'act')
            changed += 2
    return changed + _swap_children(
        module, lambda child: _torch_linear(child)
        if isinstance(child, OneDNNLinear) else None)


def use_onednn_linears(module: nn.Module,
                       fuse_gelu: bool = False,
                       compiled_inference: str = 'onednn') -> int:
    """Run every linear layer under ``module`` through oneDNN, in place. An
    FFN's GELU goes into its second layer's call (training: not kept for
    backward) or, with ``fuse_gelu`` (inference only), into its first's.
    ``compiled_inference``: see :class:`OneDNNLinear`. Returns how many
    layers changed."""
    changed = 0
    for ffn in [m for m in module.modules() if isinstance(m, FeedForward)]:
        _place_ffn_gelu(ffn, 'fc1' if fuse_gelu else 'fc2', compiled_inference)
        changed += 2

    def onednn(child: nn.Module) -> Optional[nn.Module]:
        if isinstance(child, PatchEmbed):
            return OneDNNPatchEmbed(child, compiled_inference)
        return OneDNNLinear(child, compiled_inference=compiled_inference) \
            if type(child) is nn.Linear else None

    return changed + _swap_children(module, onednn)


def _swap_children(module: nn.Module,
                   swap: Callable[[nn.Module], Optional[nn.Module]]) -> int:
    """Replace every submodule for which ``swap`` returns a module; returns
    how many were replaced."""
    changed = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            new = swap(child)
            if new is not None:
                setattr(parent, name, new)
                changed += 1
    return changed
