"""GTPT's attention as the 3-D form of the ONNX ``Attention`` op (opset 23).

SDPA's form exports as the 4-D op, (B, heads, N, C / heads), with a
Transpose of the qkv projection before it and one of the output after it:
two per layer, 24 of the 36 Transposes in GTPT-S's graph. The 3-D op takes
q, k and v as (B, N, C), heads in the channels, and its runtime splits the
heads inside the kernel. While :func:`heads_in_channels` is active, every
``Attention`` of a model computes this way, through the operator
``gtpt_mmpose::attention_heads_in_channels``, which :data:`ONNX_TRANSLATION`
writes as that op, and q, k and v come from three products instead of a Split
of one (the runtimes copy a Split's outputs; GTPT-S 1-2 % faster in ONNX
Runtime and OpenVINO, glue 17.8 -> 15.5 % of ONNX Runtime's op time,
docs/design.md §2.5). Same product, same outputs; only the export uses it.
"""
import contextlib
from typing import Iterator, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..models.backbones.transformer import Attention, Block, GroupAttention


@torch.library.custom_op(
    'gtpt_mmpose::attention_heads_in_channels', mutates_args=())
def attention_heads_in_channels(q: Tensor, k: Tensor, v: Tensor,
                                num_heads: int, scale: float) -> Tensor:
    """softmax(q k^T * scale) v per head; q (B, Nq, C), k and v (B, Nk, C),
    head h in channels [h C / heads, (h + 1) C / heads) -> (B, Nq, C)."""
    b, n, c = q.shape
    q, k, v = (
        t.unflatten(-1, (num_heads, -1)).transpose(1, 2) for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v, scale=scale)
    return out.transpose(1, 2).reshape(b, n, c)


@attention_heads_in_channels.register_fake
def _(q: Tensor, k: Tensor, v: Tensor, num_heads: int, scale: float) -> Tensor:
    return torch.empty_like(q)


def _onnx_attention(q, k, v, num_heads: int, scale: float):
    """The ONNX translation: one 3-D ``Attention`` node."""
    from onnxscript.onnx_opset import opset23 as op
    out, _, _, _ = op.Attention(
        q, k, v, q_num_heads=num_heads, kv_num_heads=num_heads, scale=scale)
    return out


#: ``custom_translation_table`` for ``torch.onnx.export(..., dynamo=True)``.
ONNX_TRANSLATION = {
    torch.ops.gtpt_mmpose.attention_heads_in_channels.default: _onnx_attention
}


def _head_logits(q: Tensor, k: Tensor, scale: float, num_heads: int) -> Tensor:
    """(..., Nq, C) queries, (..., Nk, C) keys -> per-head scaled logits
    (..., heads, Nq, Nk)."""
    q = q.unflatten(-1, (num_heads, -1)).transpose(-3, -2)
    k = k.unflatten(-1, (num_heads, -1)).movedim(-3, -1)
    return (q @ k) * scale  # (..., heads, Nq, d) @ (..., heads, d, Nk)


class HeadsInChannelsAttention(nn.Module):
    """An :class:`Attention` computed with q, k and v kept as (B, N, C).

    q, k and v come from three products with the thirds of the qkv weight,
    transposed once here (copies: edit no weight while this module is in
    use), not from a Split of one wide product (a copy in the runtimes).

    Args:
        attn (Attention): The attention it computes; its ``proj`` is used
            as it is.
    """

    def __init__(self, attn: Attention) -> None:
        super().__init__()
        self.attn = attn
        self.qkv_weights_t = tuple(w.detach().t().contiguous()
                                   for w in attn.qkv.weight.chunk(3))

    def project(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """(..., N, C) -> q, k, v, each (..., N, C)."""
        return tuple(x @ w for w in self.qkv_weights_t)

    def forward(self,
                x: Tensor,
                score_rows: int = 0) -> Tuple[Tensor, Optional[Tensor]]:
        attn = self.attn
        q, k, v = self.project(x)  # (B, N, C) each
        out = attention_heads_in_channels(q, k, v, attn.num_heads, attn.scale)
        logits = _head_logits(q[:, :score_rows], k[:, score_rows:], attn.scale,
                              attn.num_heads) if score_rows else None
        return attn.proj(out), logits


class HeadsInChannelsGroupAttention(HeadsInChannelsAttention):
    """A :class:`GroupAttention` computed with q, k and v kept as (B, G, L,
    C)."""

    def forward(self,
                x: Tensor,
                score_rows: int = 0) -> Tuple[Tensor, Optional[Tensor]]:
        attn = self.attn
        b, g, n, c = x.shape
        s = attn.num_slots
        q, k, v = self.project(x)  # (B, G, L, C) each
        out = attention_heads_in_channels(
            q.flatten(0, 1),
            attn.with_shared_slots(k).flatten(0, 1),
            attn.with_shared_slots(v).flatten(0, 1), attn.num_heads,
            attn.scale)
        logits = _head_logits(q[:, :, :score_rows], k[:, :, s:], attn.scale,
                              attn.num_heads) if score_rows else None
        return attn.proj(out.view(b, g, n, c)), logits


def _heads_in_channels(attn: nn.Module) -> Optional[nn.Module]:
    """The heads-in-channels form of a GTPT attention, or None."""
    if isinstance(attn, GroupAttention):
        return HeadsInChannelsGroupAttention(attn)
    if isinstance(attn, Attention):
        return HeadsInChannelsAttention(attn)
    return None


@contextlib.contextmanager
def heads_in_channels(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block, the ``attn`` of every GTPT block in ``model``
    keeps its heads in the channels (same parameters and outputs; edit no
    weight inside the block); on exit each ``attn`` is the original
    again."""
    swapped = []
    for block in [m for m in model.modules() if isinstance(m, Block)]:
        new = _heads_in_channels(block.attn)
        if new is not None:
            swapped.append((block, block.attn))
            block.attn = new
    try:
        yield model
    finally:
        for block, attn in swapped:
            block.attn = attn
