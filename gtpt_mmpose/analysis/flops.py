"""Parameters and multiply-accumulates (MACs, reported as "FLOPs") of one
forward pass.

Two conventions:

* ``authors``: what thop's ``profile`` reports (Lyken17/pytorch-OpCounter,
  ``thop/profile.py``, ``thop/vision/basic_hooks.py``, ``calc_func.py``),
  the tool behind the GTPT paper's figures. Only modules are counted:
  convolutions and linear layers as MACs without bias, norm layers as 2 per
  input element (4 when affine), plus thop's pooling, upsampling and
  ``nn.Softmax`` rules. Functional ops are free: attention matrix products,
  activations, ``F.softmax``, additions, gathers.
* ``full``: ``authors`` plus the two matrix products of every attention
  call, ``q @ k^T`` and ``attn @ v``, read from the shapes that reach
  ``F.scaled_dot_product_attention`` (so GTPT's group attention counts the
  shared slot keys of all groups) and from MMPose's ``RTMCCBlock``.

Two deliberate differences from thop, neither of which changes GTPT's
counts: rules match subclasses too (thop looks up the exact type, so it
misses mmcv's ``Conv2d``/``Linear`` wrappers that RTMPose is built from),
and ``params`` is every ``nn.Parameter`` of the model (thop counts only
those of the modules it has a rule for, missing e.g. learned tokens). Fixed
tables that are buffers, such as GTPT's positional code and index tables,
are not parameters.
"""
import math
from collections import defaultdict
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpose.models.utils.rtmcc_block import RTMCCBlock
from torch.overrides import TorchFunctionMode

Rule = Callable[[nn.Module, torch.Tensor, torch.Tensor], int]

# thop's per-output-element cost of each interpolation mode
# (calc_func.calculate_upsample); thop warns on any other mode and counts
# it as zero
UPSAMPLE_OPS = dict(nearest=1, linear=5, bilinear=11, bicubic=259)


def _conv(m: nn.modules.conv._ConvNd, x: torch.Tensor, y: torch.Tensor) -> int:
    """y.numel() * (C_in / groups) * kernel area.

    As thop's ``calculate_conv2d_flops``, bias free.
    """
    return y.numel() * (x.shape[1] // m.groups) * math.prod(m.kernel_size)


def _linear(m: nn.Linear, x: torch.Tensor, y: torch.Tensor) -> int:
    """y.numel() * in_features (thop ``count_linear``, bias free)."""
    return y.numel() * m.in_features


def _norm(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """2 per input element, doubled with an affine transform.

    As thop's ``count_normalization``.
    """
    affine = getattr(m, 'affine', False) or getattr(m, 'elementwise_affine',
                                                    False)
    return 2 * x.numel() * (2 if affine else 1)


def _softmax(m: nn.Softmax, x: torch.Tensor, y: torch.Tensor) -> int:
    """exp, add and divide per element, one add fewer per row.

    As thop's ``calculate_softmax``.
    """
    n = x.shape[m.dim]
    return x.numel() // n * (3 * n - 1)


def _avgpool(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """One op per output element (thop ``count_avgpool``)."""
    return y.numel()


def _adaptive_avgpool(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """(input / output spatial ratio + 1) per output element.

    As thop's ``count_adap_avgpool``.
    """
    window = math.prod(i / o for i, o in zip(x.shape[2:], y.shape[2:]))
    return int((window + 1) * y.numel())


def _upsample(m: nn.Upsample, x: torch.Tensor, y: torch.Tensor) -> int:
    """A fixed cost per output element and interpolation mode.

    As thop's ``count_upsample``.
    """
    return UPSAMPLE_OPS.get(m.mode, 0) * y.numel()


def _prelu(m: nn.PReLU, x: torch.Tensor, y: torch.Tensor) -> int:
    """One op per element; thop counts it in eval mode only.

    As thop's ``count_prelu``.
    """
    return 0 if m.training else x.numel()


# thop's ``register_hooks`` rules that cost something; every other module
# (ReLU, GELU, MaxPool, Dropout, PixelShuffle, GroupNorm, RNNs, custom
# modules) is free for this counter
AUTHORS_RULES: Tuple[Tuple[type, Rule], ...] = (
    (nn.modules.conv._ConvNd, _conv),
    (nn.Linear, _linear),
    (nn.modules.batchnorm._BatchNorm, _norm),
    (nn.LayerNorm, _norm),
    (nn.modules.instancenorm._InstanceNorm, _norm),
    (nn.Softmax, _softmax),
    (nn.modules.pooling._AvgPoolNd, _avgpool),
    (nn.modules.pooling._AdaptiveAvgPoolNd, _adaptive_avgpool),
    (nn.Upsample, _upsample),
    (nn.PReLU, _prelu),
)


def authors_rule(m: nn.Module) -> Optional[Rule]:
    """The thop rule for module ``m``, or None when thop counts it as free."""
    return next((rule for cls, rule in AUTHORS_RULES if isinstance(m, cls)),
                None)


def sdpa_macs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> int:
    """MACs of q @ k^T and attn @ v.

    For q (..., Lq, E), k (..., Lk, E) and v (..., Lk, Ev).
    """
    return q.shape[:-1].numel() * k.shape[-2] * (q.shape[-1] + v.shape[-1])


def rtmcc_macs(m: RTMCCBlock, inputs: Any) -> int:
    """MACs of RTMCCBlock's gated attention: q @ k^T over ``s`` channels,
    kernel @ v over ``e``.

    ``inputs`` is (B, Lq, C) for self-attention, (x, k, v) with k
    (B, Lk, C) for cross-attention.
    """
    x, keys = (inputs, inputs) if m.attn_type == 'self-attn' else (inputs[0],
                                                                   inputs[1])
    return x.shape[0] * x.shape[1] * keys.shape[1] * (m.s + m.e)


class _SDPACounter(TorchFunctionMode):
    """Adds the MACs of every ``F.scaled_dot_product_attention`` call to
    ``counts['attention']``."""

    def __init__(self, counts: Dict[str, int]) -> None:
        super().__init__()
        self.counts = counts

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            names = ('query', 'key', 'value')
            q, k, v = (args[i] if i < len(args) else kwargs[n]
                       for i, n in enumerate(names))
            self.counts['attention'] += sdpa_macs(q, k, v)
        return func(*args, **kwargs)


@torch.no_grad()
def count_flops(model: nn.Module, inputs: Sequence[Any]) -> Dict[str, Any]:
    """Count one forward pass ``model(*inputs)`` in both conventions.

    Args:
        model (nn.Module): Any model; it is run as it is (put it in eval
            mode first for inference counts, e.g. GTPT's pruned path only).
        inputs (Sequence): Positional arguments of ``model``, e.g.
            ``(img, None, 'tensor')`` for an MMPose estimator with ``img``
            (1, 3, H, W).

    Returns:
        dict: ``authors`` and ``full`` MACs (int), ``params`` (int, all
        ``nn.Parameter`` elements) and ``by_type``, the MACs per module type
        name plus ``'attention'`` (int each).
    """
    counts: Dict[str, int] = defaultdict(int)

    def authors_hook(rule: Rule) -> Callable:

        def hook(m: nn.Module, args: Tuple, out: torch.Tensor) -> None:
            counts[type(m).__name__] += int(rule(m, args[0], out))

        return hook

    def rtmcc_hook(m: RTMCCBlock, args: Tuple, out: torch.Tensor) -> None:
        counts['attention'] += rtmcc_macs(m, args[0])

    handles = []
    for m in model.modules():
        rule = authors_rule(m)
        if rule is not None:
            handles.append(m.register_forward_hook(authors_hook(rule)))
        if isinstance(m, RTMCCBlock):
            handles.append(m.register_forward_hook(rtmcc_hook))
    try:
        with _SDPACounter(counts):
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
    authors = sum(v for k, v in counts.items() if k != 'attention')
    return dict(
        authors=authors,
        full=authors + counts['attention'],
        params=sum(p.numel() for p in model.parameters()),
        by_type=dict(counts))
