"""Static token layout of GTPT: keypoint groups, slots, dense tokens and pruning index tables.

Everything here is computed once when the model is built (spec §3–§4): which sparse token fills
each group slot, which part token seeds each dense keypoint token, which queries score which
group, and where every kept token goes. ``forward`` only indexes with these tables.
"""
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn as nn

NUM_BODY = 17
# COCO-WholeBody parts that get dense keypoint tokens, in the order of the authors' part tokens
# (`extra_token`) and dense token table (`fine_keypoint_token`).
WHOLEBODY_PARTS: Tuple[Tuple[str, range], ...] = (
    ('face', range(23, 91)),
    ('left_hand', range(91, 112)),
    ('right_hand', range(112, 133)),
    ('left_foot', range(17, 20)),
    ('right_foot', range(20, 23)),
)
DEFAULT_GROUPS: Dict[int, Tuple[Tuple[int, ...], ...]] = {
    17: (tuple(range(0, 5)), tuple(range(5, 11)), tuple(range(11, 17))),
    133: (
        tuple(range(0, 5)) +
        tuple(range(23, 91)),  # head: nose, eyes, ears, face
        tuple(range(5, 11)) + tuple(range(91, 133)),  # upper: arms, hands
        tuple(range(11, 17)) + tuple(range(17, 23))),  # lower: legs, feet
}


def keep_count(num_tokens: int, ratio: float) -> int:
    """Tokens kept at a keep ratio; Python truncation as in the authors' code (quirk Q5)."""
    return int(num_tokens * ratio)


class GroupLayout:
    """Path-independent tables derived from the keypoint groups.

    Sparse tokens after Human-2-Keypoint are ``[part tokens..., body 0..16]``; each group gets
    ``num_slots`` slots holding its body tokens, front-padded with hidden copies of its first body
    token (the authors' duplicate-nose "dummy", spec §3.1), then its dense tokens (ascending
    keypoint id), then its visual tokens.

    Args:
        num_keypoints (int): 17 (COCO) or 133 (COCO-WholeBody).
        groups (Sequence[Sequence[int]]): keypoint ids of every group; must cover every keypoint
            exactly once. Defaults to the paper's head / upper body / lower body split.
    """

    def __init__(self,
                 num_keypoints: int,
                 groups: Sequence[Sequence[int]] = None) -> None:
        if num_keypoints not in DEFAULT_GROUPS:
            raise ValueError(
                f'num_keypoints must be 17 (COCO) or 133 (COCO-WholeBody), got {num_keypoints}'
            )
        self.num_keypoints = num_keypoints
        groups = [
            list(g) for g in
            (groups if groups is not None else DEFAULT_GROUPS[num_keypoints])
        ]
        self._check_groups(groups)
        self.groups = groups
        self.num_groups = len(groups)
        self.parts = [(n, r) for n, r in WHOLEBODY_PARTS
                      ] if num_keypoints > NUM_BODY else []
        self.num_parts = len(self.parts)
        self.num_sparse = self.num_parts + NUM_BODY

        body = [[k for k in g if k < NUM_BODY] for g in groups]
        self.num_slots = max(len(b) for b in body)
        self.slot_dummy = [[True] * (self.num_slots - len(b)) +
                           [False] * len(b) for b in body]
        self.slot_keypoint = [[b[0]] * (self.num_slots - len(b)) + b
                              for b in body]
        self.dense = [sorted(k for k in g if k >= NUM_BODY) for g in groups]
        self.num_dense = [len(d) for d in self.dense]
        # position of each dense keypoint in the dense token table (part order, then id)
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
        # queries that score a group's visual tokens at the transition: its parts and body tokens
        self.transition_queries = [
            gp + [self.num_parts + k for k in b]
            for gp, b in zip(group_parts, body)
        ]

    def _check_groups(self, groups: List[List[int]]) -> None:
        k = self.num_keypoints
        flat = [i for g in groups for i in g]
        bad = sorted({i for i in flat if not 0 <= i < k})
        if bad:
            raise ValueError(
                f'groups: keypoint ids {bad} are outside 0..{k - 1}')
        repeated = sorted({i for i in flat if flat.count(i) > 1})
        if repeated:
            raise ValueError(
                f'groups: keypoints {repeated} appear more than once')
        missing = sorted(set(range(k)) - set(flat))
        if missing:
            raise ValueError(f'groups: keypoints {missing} are in no group')
        for gi, g in enumerate(groups):
            if not any(i < NUM_BODY for i in g):
                raise ValueError(
                    f'groups[{gi}] has no body keypoint (ids 0..16) to hold its slots'
                )
        if k > NUM_BODY:
            owner = {i: gi for gi, g in enumerate(groups) for i in g}
            for name, ids in WHOLEBODY_PARTS:
                if len({owner[i] for i in ids}) > 1:
                    raise ValueError(
                        f'groups: the {name} keypoints {ids.start}..{ids.stop - 1} '
                        'must all be in one group (one part token seeds them)')

    # ---- tensors -----------------------------------------------------------------------------
    def slot_index(self) -> torch.Tensor:
        """(G, S) long: sparse token that fills each slot."""
        return torch.tensor([[self.num_parts + k for k in s]
                             for s in self.slot_keypoint])

    def slot_visible(self) -> torch.Tensor:
        """(G * S,) bool: slot keys others may attend to (the dummies are hidden)."""
        return ~torch.tensor(self.slot_dummy).flatten()

    def dense_token_index(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """(D,) part token and (D,) table row of every dense token, in table order."""
        order = sorted(self.dense_table_index, key=self.dense_table_index.get)
        return (torch.tensor([self.dense_part[k] for k in order],
                             dtype=torch.long), torch.arange(len(order)))

    def query_bias(self, rows: List[List[int]], width: int) -> torch.Tensor:
        """(G, 1, width, 1) float: 0 for a group's scoring query rows, -inf elsewhere."""
        bias = torch.full((self.num_groups, width), float('-inf'))
        for g, r in enumerate(rows):
            bias[g, r] = 0.0
        return bias[:, None, :, None]

    def transition_query_bias(self) -> torch.Tensor:
        return self.query_bias(self.transition_queries, self.num_sparse)

    def group_query_rows(self) -> List[List[int]]:
        """Rows scoring the second pruning: a group's real slots and its dense tokens (§4.3)."""
        return [
            [s for s in range(self.num_slots) if not self.slot_dummy[g][s]] +
            list(range(self.num_slots, self.num_slots + self.num_dense[g]))
            for g in range(self.num_groups)
        ]

    def readout_index(self, length: int) -> torch.Tensor:
        """(K,) long: position of keypoint k in the flattened (G * length) group tokens."""
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
    """(G, L') long table assembling each group's own tokens ``[dense..., top visual...]``.

    It indexes ``cat([candidates (num_candidates), visual ranked best-first])``: group g takes
    its dense tokens from candidate rows ``dense_rows[g]``, then visual ranks 0..keep_visual[g]-1.
    All groups have the same length L' = len(dense_rows[g]) + keep_visual[g].
    """
    rows = [
        list(d) + [num_candidates + r for r in range(v)]
        for d, v in zip(dense_rows, keep_visual)
    ]
    if len({len(r) for r in rows}) != 1:
        raise ValueError(
            f'groups would have different lengths: dense {[len(d) for d in dense_rows]}, '
            f'visual {list(keep_visual)}')
    return torch.tensor(rows)


class PruningPlan(nn.Module):
    """Token counts and index tables of one path through the network (pruned or unpruned).

    Args:
        layout (GroupLayout): The group layout.
        keep_ratios (Sequence[float]): Four keep ratios: coarse layers 0–2, 3–5, group layers
            0–2 (the transition), group layers 3–5.
        num_visual (int): Visual tokens from the tokenizer (256).
    """

    def __init__(self, layout: GroupLayout, keep_ratios: Sequence[float],
                 num_visual: int) -> None:
        super().__init__()
        k0, k1, t1, t2 = (keep_count(num_visual, r) for r in keep_ratios)
        nd, s = layout.num_dense, layout.num_slots
        # visual tokens kept by the coarse layers that open a stage (0 and 3): None = no pruning
        self.coarse_keep = {
            0: k0 if k0 < num_visual else None,
            3: k1 if k1 < k0 else None
        }  # by layer
        self.num_coarse_visual = k1
        # transition: every group keeps t1 - N_d(g) of the k1 visual tokens (spec §3.4, quirk Q7)
        self.transition_keep = [t1 - d for d in nd]
        self.transition_is_identity = all(k == k1
                                          for k in self.transition_keep)
        self._check_counts(k0, k1, t1, t2, nd, num_visual)
        own1 = own_token_index([[layout.dense_table_index[k] for k in d]
                                for d in layout.dense], self.transition_keep,
                               len(layout.dense_table_index))
        self.group_length = s + own1.shape[1]
        # second pruning: applies when the own-token count differs from t2 (spec §4.3)
        self.group_keep = [t2 - d for d in nd] if t2 != own1.shape[1] else None
        final_own = own1.shape[1]
        if self.group_keep is not None:
            own2 = own_token_index([range(d) for d in nd], self.group_keep,
                                   own1.shape[1])
            final_own = own2.shape[1]
            cand = torch.zeros(layout.num_groups, own1.shape[1])
            for g, d in enumerate(nd):
                cand[g, :d] = float(
                    '-inf')  # dense tokens are kept in place, never ranked
            self.register_buffer(
                'group_candidate_bias', cand, persistent=False)
            self.register_buffer(
                'group_own_positions',
                torch.arange(own1.shape[1]),
                persistent=False)
            self.register_buffer('group_own_index', own2, persistent=False)
            self.register_buffer(
                'key_mask_late',
                self._key_mask(layout, own2.shape[1]),
                persistent=False)
        self.final_length = s + final_own
        self.register_buffer('transition_own_index', own1, persistent=False)
        self.register_buffer(
            'key_mask_early',
            self._key_mask(layout, own1.shape[1]),
            persistent=False)
        self.register_buffer(
            'readout_index',
            layout.readout_index(self.final_length),
            persistent=False)

    @staticmethod
    def _check_counts(k0: int, k1: int, t1: int, t2: int, nd: Sequence[int],
                      num_visual: int) -> None:
        counts = [k0, k1, t1, t2]
        if any(b > a for a, b in zip([num_visual] + counts, counts)):
            raise ValueError(
                f'keep_ratios must not increase from stage to stage; they keep {counts} '
                f'of {num_visual} visual tokens')
        if min(t2, t1) - max(nd) < 1:
            raise ValueError(
                f'keep_ratios keep {t1} and {t2} tokens per group in the fine encoder, '
                f'which leaves no visual token for a group with {max(nd)} dense keypoints'
            )
        if k0 < 1 or k1 < 1:
            raise ValueError(
                f'keep_ratios keep no visual token in the coarse encoder ({k0}, {k1})'
            )

    @staticmethod
    def _key_mask(layout: GroupLayout, num_own: int) -> torch.Tensor:
        """(1, keys) additive mask, 0 for visible keys and -inf for hidden slots; additive rather than
        bool because ONNX exports of bool masks add a NaN guard over every attention matrix."""
        visible = torch.cat(
            (layout.slot_visible(), torch.ones(num_own,
                                               dtype=torch.bool)))[None]
        return torch.zeros(visible.shape).masked_fill(~visible, float('-inf'))

    def counts(self) -> Dict[str, object]:
        """Token counts of this path, for logs and tests."""
        return dict(
            coarse_visual=self.num_coarse_visual,
            transition_visual=list(self.transition_keep),
            group_length=self.group_length,
            group_visual=self.group_keep,
            final_length=self.final_length)
