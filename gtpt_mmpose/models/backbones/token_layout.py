"""Static token layout of GTPT: keypoint groups, slots, dense tokens and the
index tables of each pruning path.

Everything here is computed once when the model is built (docs/spec.md
§3–§4): which sparse token fills each group slot, which part token seeds each
dense keypoint token, which queries score which group, and where every kept
token goes. ``forward`` only indexes with these tables.
"""
from typing import Dict, List, Sequence

import torch
import torch.nn as nn

from .keypoint_layout import KeypointLayout

#: Each encoder has two keep-ratio stages of this many layers. The second
#: stage opens at this layer, where the coarse encoder also turns the human
#: token into keypoint tokens (spec §2.2, §2.3, §4.3).
STAGE_LAYERS = 3


def keep_count(num_tokens: int, ratio: float) -> int:
    """Tokens kept at a keep ratio: Python truncation, as the authors' code
    does it (quirk Q5)."""
    return int(num_tokens * ratio)


class GroupLayout:
    """Path-independent tables derived from a :class:`KeypointLayout`.

    Sparse tokens after Human-2-Keypoint are ``[part tokens..., sparse
    keypoints in id order]``. Each group gets ``num_slots`` slots holding
    its sparse keypoints, front-padded with hidden copies of its first one
    (the authors' duplicate-nose "dummy", spec §3.1, quirk Q4), then its
    dense tokens (ascending keypoint id), then its visual tokens.

    Args:
        keypoints (KeypointLayout): Parts and groups of the keypoints.
    """

    def __init__(self, keypoints: KeypointLayout) -> None:
        self.num_keypoints = len(keypoints.names)
        self.groups = [list(g) for g in keypoints.groups]
        self.num_groups = len(self.groups)
        self.parts = [(name, list(ids)) for name, ids in keypoints.parts]
        self.num_parts = len(self.parts)
        sparse = keypoints.sparse
        self.num_sparse_keypoints = len(sparse)
        self.num_sparse = self.num_parts + len(sparse)
        # where each sparse keypoint's token is among the sparse tokens
        self.sparse_token = {
            k: self.num_parts + i
            for i, k in enumerate(sparse)
        }

        body = [[k for k in g if k in self.sparse_token] for g in self.groups]
        self.num_slots = max(len(b) for b in body)
        pad = [self.num_slots - len(b) for b in body]
        self.slot_dummy = [[True] * p + [False] * len(b)
                           for p, b in zip(pad, body)]
        self.slot_keypoint = [[b[0]] * p + b for p, b in zip(pad, body)]
        self.dense = [
            sorted(k for k in g if k not in self.sparse_token)
            for g in self.groups
        ]
        self.num_dense = [len(d) for d in self.dense]
        # row of each dense keypoint in the dense token table: part order,
        # then keypoint id
        table_order = [k for _, ids in self.parts for k in ids]
        self.dense_table_index = {k: i for i, k in enumerate(table_order)}
        self.dense_part = {
            k: p
            for p, (_, ids) in enumerate(self.parts)
            for k in ids
        }
        group_parts = [
            sorted({self.dense_part[k]
                    for k in d}) for d in self.dense
        ]
        # queries that score a group's visual tokens at the transition (spec
        # §3.3): its part tokens and its sparse keypoint tokens
        self.transition_queries = [
            gp + [self.sparse_token[k] for k in b]
            for gp, b in zip(group_parts, body)
        ]

    # ---- tables ----------------------------------------------------------
    def slot_index(self) -> torch.Tensor:
        """(G, S) long: the sparse token that fills each slot."""
        return torch.tensor([[self.sparse_token[k] for k in s]
                             for s in self.slot_keypoint])

    def shared_slots(self) -> List[int]:
        """Flat ids, among the G * S slots in group order, of the slots every
        group attends to: all but the dummies (spec §4.2)."""
        flat = [d for row in self.slot_dummy for d in row]
        return [i for i, dummy in enumerate(flat) if not dummy]

    def dense_part_index(self) -> torch.Tensor:
        """(D,) long: the part token that seeds each row of the dense token
        table (spec §3.5)."""
        order = sorted(self.dense_table_index, key=self.dense_table_index.get)
        return torch.tensor([self.dense_part[k] for k in order],
                            dtype=torch.long)

    def query_bias(self, rows: List[List[int]], width: int) -> torch.Tensor:
        """(G, 1, width, 1): 0 on a group's scoring query rows, -inf
        elsewhere; added to logits before pooling them."""
        bias = torch.full((self.num_groups, width), float('-inf'))
        for g, r in enumerate(rows):
            bias[g, r] = 0.0
        return bias[:, None, :, None]

    def transition_query_bias(self) -> torch.Tensor:
        """Query bias of the transition scores over the sparse tokens."""
        return self.query_bias(self.transition_queries, self.num_sparse)

    def group_query_rows(self) -> List[List[int]]:
        """Rows that score the second pruning: a group's real slots and its
        dense tokens (spec §4.3)."""
        return [
            [s for s in range(self.num_slots) if not self.slot_dummy[g][s]] +
            list(range(self.num_slots, self.num_slots + self.num_dense[g]))
            for g in range(self.num_groups)
        ]

    def readout_index(self, length: int) -> torch.Tensor:
        """(K,) long: where keypoint k is in the flattened (G * length)
        group tokens (spec §4.4)."""
        where = {}
        for g in range(self.num_groups):
            for s, (k, dummy) in enumerate(
                    zip(self.slot_keypoint[g], self.slot_dummy[g])):
                if not dummy:
                    where[k] = g * length + s
            for j, k in enumerate(self.dense[g]):
                where[k] = g * length + self.num_slots + j
        return torch.tensor([where[k] for k in range(self.num_keypoints)])


def own_token_index(dense_rows: Sequence[Sequence[int]],
                    keep_visual: Sequence[int],
                    num_candidates: int) -> torch.Tensor:
    """(G, L') long table that assembles each group's own tokens ``[dense...,
    best visual...]``.

    It indexes ``cat([candidates (num_candidates), visual ranked
    best-first])``: group g takes its dense tokens from the candidate rows
    ``dense_rows[g]``, then the visual ranks 0..keep_visual[g]-1. All groups
    must come out with the same length L'.
    """
    rows = [
        list(d) + [num_candidates + r for r in range(v)]
        for d, v in zip(dense_rows, keep_visual)
    ]
    if len({len(r) for r in rows}) != 1:
        raise ValueError('groups would have different lengths: dense '
                         f'{[len(d) for d in dense_rows]}, visual '
                         f'{list(keep_visual)}')
    return torch.tensor(rows)


class PruningPlan(nn.Module):
    """Token counts and index tables of one path through the network, the
    pruned or the unpruned one.

    Args:
        layout (GroupLayout): The group layout.
        keep_ratios (Sequence[float]): Keep ratios of the four stages: coarse
            layers 0–2, 3–5, group layers 0–2 (the transition), 3–5.
        num_visual (int): Visual tokens from the tokenizer (256).
    """

    def __init__(self, layout: GroupLayout, keep_ratios: Sequence[float],
                 num_visual: int) -> None:
        super().__init__()
        k0, k1, t1, t2 = (keep_count(num_visual, r) for r in keep_ratios)
        nd, s = layout.num_dense, layout.num_slots
        self._check_counts(k0, k1, t1, t2, nd, num_visual)
        # visual tokens kept by the coarse layer that opens each stage (0 and
        # STAGE_LAYERS); a layer that keeps them all is absent
        self.coarse_keep = {
            layer: keep
            for layer, keep, before in ((0, k0, num_visual), (STAGE_LAYERS, k1,
                                                              k0))
            if keep < before
        }
        self.num_coarse_visual = k1
        # the transition: group g keeps t1 - N_d(g) of the k1 visual tokens
        # (spec §3.4; quirk Q7 on the unpruned path)
        self.transition_keep = [t1 - d for d in nd]
        self.transition_is_identity = all(k == k1
                                          for k in self.transition_keep)
        own1 = own_token_index([[layout.dense_table_index[k] for k in d]
                                for d in layout.dense], self.transition_keep,
                               len(layout.dense_table_index))
        self.register_buffer('transition_own_index', own1, persistent=False)
        self.group_length = s + own1.shape[1]
        # the second pruning applies when the own-token count differs from
        # t2 (spec §4.3); dense tokens stay in place, only visual ones rank
        self.group_keep = [t2 - d for d in nd] \
            if t2 != own1.shape[1] else None
        final_own = own1.shape[1]
        if self.group_keep is not None:
            own2 = own_token_index([range(d) for d in nd], self.group_keep,
                                   own1.shape[1])
            final_own = own2.shape[1]
            dense = torch.arange(own1.shape[1]) < torch.tensor(nd)[:, None]
            self.register_buffer(
                'group_candidate_bias',
                torch.zeros(dense.shape).masked_fill(dense, float('-inf')),
                persistent=False)
            self.register_buffer(
                'group_own_positions',
                torch.arange(own1.shape[1]),
                persistent=False)
            self.register_buffer('group_own_index', own2, persistent=False)
        self.final_length = s + final_own
        self.register_buffer(
            'readout_index',
            layout.readout_index(self.final_length),
            persistent=False)

    @staticmethod
    def _check_counts(k0: int, k1: int, t1: int, t2: int, nd: Sequence[int],
                      num_visual: int) -> None:
        counts = [k0, k1, t1, t2]
        if any(b > a for a, b in zip([num_visual] + counts, counts)):
            raise ValueError('keep_ratios must not increase from stage to '
                             f'stage; they keep {counts} of {num_visual} '
                             'visual tokens')
        if min(t2, t1) - max(nd) < 1:
            raise ValueError(
                f'keep_ratios keep {t1} and {t2} tokens per group in the '
                'fine encoder, which leaves no visual token for a group '
                f'with {max(nd)} dense keypoints')
        if k0 < 1 or k1 < 1:
            raise ValueError('keep_ratios keep no visual token in the '
                             f'coarse encoder ({k0}, {k1})')

    def counts(self) -> Dict[str, object]:
        """Token counts of this path, for logs and tests."""
        return dict(
            coarse_visual=self.num_coarse_visual,
            transition_visual=list(self.transition_keep),
            group_length=self.group_length,
            group_visual=self.group_keep,
            final_length=self.final_length)
