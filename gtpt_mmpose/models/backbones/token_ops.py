"""Tensor operations on token sequences that GTPT's modules share."""
import math
from typing import Optional

import torch
from torch import Tensor


def sine_position_table(rows: int,
                        cols: int,
                        dims: int,
                        temperature: float = 10000.) -> Tensor:
    """(rows * cols, dims) fixed 2-D sine code: the first half codes the row,
    the second half the column (spec §1.6)."""
    half, eps = dims // 2, 1e-6
    y = torch.arange(1, rows + 1, dtype=torch.float32) / (rows + eps) * 2 \
        * math.pi
    x = torch.arange(1, cols + 1, dtype=torch.float32) / (cols + eps) * 2 \
        * math.pi
    k = torch.arange(half, dtype=torch.float32)
    tau = temperature**(2 * torch.div(k, 2, rounding_mode='floor') / half)

    def encode(v: Tensor) -> Tensor:  # (n,) -> (n, half): sin even, cos odd
        a = v[:, None] / tau
        return torch.stack((a[:, 0::2].sin(), a[:, 1::2].cos()),
                           dim=2).flatten(1)

    ey, ex = encode(y), encode(x)
    return torch.cat((ey[:, None].expand(rows, cols, half), ex[None].expand(
        rows, cols, half)),
                     dim=2).flatten(0, 1)


def pooled_scores(logits: Tensor,
                  query_bias: Optional[Tensor] = None) -> Tensor:
    """Softmax pooling of attention logits over (head, query) pairs, per key
    (eq. 10 as coded, quirk Q2).

    Args:
        logits (Tensor): (..., heads, queries, keys) scaled logits.
        query_bias (Tensor, optional): Broadcastable to ``logits``; -inf
            leaves a query row out.

    Returns:
        Tensor: (..., keys) float32 scores ``sum softmax(a) * a``.
    """
    a = logits.float()
    w = a if query_bias is None else a + query_bias
    w = w.flatten(-3, -2).softmax(dim=-2).view(w.shape)
    return (w * a).sum(dim=(-3, -2))


def take_tokens(x: Tensor, index: Tensor, front: int = 0) -> Tensor:
    """Pick tokens of every sequence: its first ``front`` tokens, then the
    tokens ``front + index``.

    One gather of whole rows (contiguous copies, which runtimes do far faster
    than an element-wise gather with a broadcast index).

    Args:
        x (Tensor): (..., N, C) token sequences.
        index (Tensor): (..., k) long, positions after the first ``front``.
        front (int): Tokens kept in front of every sequence.

    Returns:
        Tensor: (..., front + k, C).
    """
    n, c = x.shape[-2:]
    rows = index + front
    if front:
        head = torch.arange(front, device=index.device)
        rows = torch.cat((head.expand(*index.shape[:-1], front), rows), -1)
    # row r of sequence s is row s * n + r of the flattened batch
    seq = torch.arange(rows.shape[:-1].numel(), device=index.device)
    rows = rows + (seq * n).view(*rows.shape[:-1], 1)
    return x.reshape(-1, c).index_select(0,
                                         rows.flatten()).view(*rows.shape, c)
