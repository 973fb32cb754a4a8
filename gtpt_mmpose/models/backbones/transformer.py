"""Transformer blocks of GTPT: pre-norm attention, the FFN, and Multi-Head Group Attention (MHGA).

Both attentions use ``scaled_dot_product_attention`` with the authors' scale ``C ** -0.5`` (the
full embedding width, not the head width; spec quirk Q1). Pruning needs some attention logits;
the blocks return exactly the rows it asks for, computed beside the fused attention.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


class FeedForward(nn.Module):
    """Linear -> exact GELU -> Linear, hidden width ``mlp_ratio * dim``."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    """Multi-head self-attention over one token sequence.

    Args:
        dim (int): Embedding width C.
        num_heads (int): Heads; head h uses channels ``[h * C / heads, (h + 1) * C / heads)``.
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(
                f'embed_dims ({dim}) must be divisible by num_heads ({num_heads})'
            )
        self.num_heads = num_heads
        self.scale = dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self,
                x: torch.Tensor,
                score_rows: int = 0
                ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(B, N, C) -> (B, N, C), plus the logits of the first ``score_rows`` queries against the
        keys after them, (B, heads, score_rows, N - score_rows), or None when ``score_rows`` is 0."""
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.num_heads,
                                   c // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(
            q, k, v, scale=self.scale)  # B, heads, N, C/heads
        logits = None
        if score_rows:
            logits = (q[:, :, :score_rows] @ k[:, :, score_rows:].transpose(
                -2, -1)) * self.scale
        return self.proj(out.transpose(1, 2).reshape(b, n, c)), logits


class GroupAttention(nn.Module):
    """Multi-Head Group Attention (spec §4.2, eq. 7–9) for all groups as one batched tensor.

    Every group's queries attend to the sparse keypoint slots of *all* groups plus the group's own
    dense and visual tokens. Slot keys flagged in ``key_mask`` (the padding dummies) are hidden.

    Args:
        dim (int): Embedding width C.
        num_heads (int): Heads.
        num_slots (int): Sparse slots at the front of every group's sequence.
    """

    def __init__(self, dim: int, num_heads: int, num_slots: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(
                f'embed_dims ({dim}) must be divisible by num_heads ({num_heads})'
            )
        self.num_heads = num_heads
        self.num_slots = num_slots
        self.scale = dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self,
                x: torch.Tensor,
                key_mask: torch.Tensor,
                score_rows: int = 0
                ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """
        Args:
            x (Tensor): (B, G, L, C), the first ``num_slots`` tokens of each group are its slots.
            key_mask (Tensor): (1, G * num_slots + L - num_slots), bool (True where a key is
                visible) or additive float (0 visible, -inf hidden).
            score_rows (int): also return the logits of each group's first ``score_rows`` queries
                against its own non-slot keys.

        Returns:
            (B, G, L, C), and the logits (B, G, heads, score_rows, L - num_slots) or None.
        """
        b, g, n, c = x.shape
        s = self.num_slots
        q, k, v = self.qkv(x).view(b, g, n, 3, self.num_heads, c //
                                   self.num_heads).permute(3, 0, 1, 4, 2, 5)
        k_all = self._with_shared_slots(k)  # B, G, heads, G*S + L - S, C/heads
        v_all = self._with_shared_slots(v)
        out = F.scaled_dot_product_attention(
            q.flatten(0, 1),
            k_all.flatten(0, 1),
            v_all.flatten(0, 1),
            attn_mask=key_mask,
            scale=self.scale)
        out = self.proj(
            out.view(b, g, self.num_heads, n,
                     -1).transpose(2, 3).reshape(b, g, n, c))
        logits = None
        if score_rows:
            logits = (q[..., :score_rows, :] @ k[..., s:, :].transpose(
                -2, -1)) * self.scale
        return out, logits

    def _with_shared_slots(self, t: torch.Tensor) -> torch.Tensor:
        """(B, G, heads, L, d) -> (B, G, heads, G*S + L - S, d): all groups' slots, then own tokens."""
        b, g, h, _, d = t.shape
        slots = t[..., :self.num_slots, :].transpose(1, 2).reshape(
            b, 1, h, g * self.num_slots, d)
        return torch.cat(
            (slots.expand(b, g, h, -1, d), t[..., self.num_slots:, :]), dim=3)


class Block(nn.Module):
    """Pre-norm transformer layer; the two residual halves are separate because GTPT prunes
    between them (spec §2.1)."""

    def __init__(self,
                 dim: int,
                 num_heads: int,
                 mlp_ratio: int,
                 num_slots: int = 0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = GroupAttention(dim, num_heads,
                                   num_slots) if num_slots else Attention(
                                       dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, dim * mlp_ratio)

    def attention_residual(self,
                           x: torch.Tensor,
                           score_rows: int = 0,
                           **kwargs
                           ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        out, logits = self.attn(self.norm1(x), score_rows=score_rows, **kwargs)
        return x + out, logits

    def ffn_residual(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.ffn(self.norm2(x))
