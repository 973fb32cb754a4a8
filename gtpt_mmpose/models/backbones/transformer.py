"""Transformer blocks of GTPT: attention, Multi-Head Group Attention (MHGA)
and the pre-norm layer that holds them (docs/spec.md §2.1, §4.1, §4.2).

Both attentions scale the logits by ``C ** -0.5``, the full embedding width
and not the head width (quirk Q1). Pruning reads some attention logits; the
blocks return exactly the rows it asks for.
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


class FeedForward(nn.Module):
    """Linear -> exact GELU -> Linear, hidden width ``hidden_dim``."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    """Multi-head self-attention over one token sequence (spec §2.1).

    Head h uses channels ``[h * C / heads, (h + 1) * C / heads)`` of q, k, v.

    Args:
        dim (int): Embedding width C.
        num_heads (int): Number of heads.
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'embed_dims ({dim}) must be divisible by '
                             f'num_heads ({num_heads})')
        self.num_heads = num_heads
        self.scale = dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.proj = nn.Linear(dim, dim)

    def split_heads(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """(B, ..., N, C) -> q, k, v, each (B, heads, ..., N, C / heads).

        The heads go right after the batch axis: one transpose of the
        projection, then three contiguous chunks.
        """
        *lead, n, c = x.shape
        qkv = self.qkv(x).view(*lead, n, 3 * self.num_heads,
                               c // self.num_heads)
        d = x.dim()  # qkv: (B, ..., n, 3 heads, c / heads), d + 1 axes
        qkv = qkv.permute(0, d - 1, *range(1, d - 1), d)
        return qkv.chunk(3, dim=1)

    def merge_heads(self, out: Tensor) -> Tensor:
        """(B, heads, ..., N, C / heads) -> output projection (B, ..., N,
        C)."""
        d = out.dim()
        out = out.permute(0, *range(2, d - 1), 1, d - 1)
        return self.proj(out.flatten(-2))

    def attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """softmax(q k^T * scale) v by SDPA, (B, heads, ..., N, d) each; its
        fast kernels take 4-D tensors only."""
        out = F.scaled_dot_product_attention(
            q.flatten(0, -4),
            k.flatten(0, -4),
            v.flatten(0, -4),
            scale=self.scale)
        return out.view(q.shape[:-1] + v.shape[-1:])

    def score_logits(self, q: Tensor, k: Tensor) -> Tensor:
        """The scaled logits (..., Nq, Nk) that pruning reads: a few query
        rows against the keys they score, apart from the attention."""
        return (q @ k.transpose(-2, -1)) * self.scale

    def forward(self,
                x: Tensor,
                score_rows: int = 0) -> Tuple[Tensor, Optional[Tensor]]:
        """Attend over x (B, N, C).

        Args:
            x (Tensor): (B, N, C) normalised tokens.
            score_rows (int): Also return the logits of the first
                ``score_rows`` queries against the keys after them.

        Returns:
            tuple: (B, N, C), and the logits (B, heads, score_rows,
            N - score_rows), or None when ``score_rows`` is 0.
        """
        q, k, v = self.split_heads(x)
        out = self.merge_heads(self.attend(q, k, v))
        if not score_rows:
            return out, None
        return out, self.score_logits(q[..., :score_rows, :],
                                      k[..., score_rows:, :])


class GroupAttention(Attention):
    """Multi-Head Group Attention (spec §4.2, eq. 7–9), all groups batched.

    Every group's queries attend to the keypoint slots of *all* groups, then
    to the group's own dense and visual tokens. The slots nobody may see (the
    padding dummies, quirk Q4) are left out of the keys rather than masked:
    the same result, without a mask.

    Args:
        dim (int): Embedding width C.
        num_heads (int): Number of heads.
        num_slots (int): Slots S at the front of every group's sequence.
        shared_slots (Sequence[int]): Ids, among the G * S slots in group
            order, of the slots every group attends to.
    """

    def __init__(self, dim: int, num_heads: int, num_slots: int,
                 shared_slots: Sequence[int]) -> None:
        super().__init__(dim, num_heads)
        self.num_slots = num_slots
        shared = list(shared_slots)
        self.shared_range = (shared[0], shared[-1] + 1) \
            if shared == list(range(shared[0], shared[-1] + 1)) else None
        self.register_buffer(
            'shared_index', torch.tensor(shared), persistent=False)

    def forward(self,
                x: Tensor,
                score_rows: int = 0) -> Tuple[Tensor, Optional[Tensor]]:
        """Attend within groups.

        Args:
            x (Tensor): (B, G, L, C); each group starts with its slots.
            score_rows (int): Also return the logits of each group's first
                ``score_rows`` queries against its own non-slot keys.

        Returns:
            tuple: (B, G, L, C), and the logits (B, G, heads, score_rows,
            L - S), or None when ``score_rows`` is 0.
        """
        s = self.num_slots
        q, k, v = self.split_heads(x)  # B, heads, G, L, C/heads
        out = self.merge_heads(
            self.attend(q, self.with_shared_slots(k),
                        self.with_shared_slots(v)))
        if not score_rows:
            return out, None
        logits = self.score_logits(q[..., :score_rows, :], k[..., s:, :])
        return out, logits.transpose(1, 2)  # B, G, heads, rows, L - S

    def with_shared_slots(self, t: Tensor) -> Tensor:
        """(..., G, L, d) -> (..., G, P + L - S, d): the P shared slots of
        all groups, then the group's own tokens."""
        *lead, g, _, d = t.shape
        s = self.num_slots
        slots = t[..., :s, :].flatten(-3, -2)  # (..., G * S, d)
        if self.shared_range is not None:
            slots = slots[..., self.shared_range[0]:self.shared_range[1], :]
        else:
            slots = slots.index_select(-2, self.shared_index)
        slots = slots.unsqueeze(-3).expand(*lead, g, slots.shape[-2], d)
        return torch.cat((slots, t[..., s:, :]), dim=-2)


class Block(nn.Module):
    """Pre-norm transformer layer (spec §2.1). Its two residual halves are
    separate because GTPT prunes between them.

    Args:
        dim (int): Embedding width C.
        num_heads (int): Number of heads.
        mlp_ratio (int): FFN width ratio.
        num_slots (int): With slots, the layer is a group layer (MHGA).
        shared_slots (Sequence[int]): See :class:`GroupAttention`.
    """

    def __init__(self,
                 dim: int,
                 num_heads: int,
                 mlp_ratio: int,
                 num_slots: int = 0,
                 shared_slots: Sequence[int] = ()) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = (
            GroupAttention(dim, num_heads, num_slots, shared_slots)
            if num_slots else Attention(dim, num_heads))
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, dim * mlp_ratio)

    def attention_residual(self, x: Tensor, *args,
                           **kwargs) -> Tuple[Tensor, Optional[Tensor]]:
        """x + attention(norm(x)), and the logits the attention returns."""
        out, logits = self.attn(self.norm1(x), *args, **kwargs)
        return x + out, logits

    def ffn_residual(self, x: Tensor) -> Tensor:
        """x + FFN(norm(x))."""
        return x + self.ffn(self.norm2(x))
