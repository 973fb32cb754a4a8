"""The GTPT backbone: tokenizer, coarse encoder, coarse-to-fine module and
fine encoder (docs/spec.md §1–§4).

The backbone returns keypoint tokens; the SimCC head (``GTPTHead``) reads
them. One class serves T, S and B on any keypoint layout: COCO and
COCO-WholeBody exactly as the authors built them, other data sets by the
rule of ``keypoint_layout.py`` (docs/layouts.md).
"""
from functools import partial
from typing import Dict, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpose.registry import MODELS
from torch import Tensor

from .keypoint_layout import KeypointRef, resolve_layout
from .patch_embed import PatchEmbed
from .shufflenet_stem import ShuffleStem, UShapedShuffleStem
from .token_layout import STAGE_LAYERS, GroupLayout, PruningPlan
from .token_ops import pooled_scores, sine_position_table, take_tokens
from .transformer import Block

# the stem (a module factory) and the token width of each variant (spec §0)
ARCH_SETTINGS: Dict[str, dict] = {
    't': dict(stem=partial(ShuffleStem, 128), embed_dims=128),
    's': dict(stem=partial(ShuffleStem, 256), embed_dims=192),
    'b': dict(stem=UShapedShuffleStem, embed_dims=192),
}
STEM_STRIDE = 4
PATCH_SIZE = (4, 3)  # rows x cols of the stride-4 feature map per token
#: pixels (rows, cols) of the input image per visual token
TOKEN_CELL = (STEM_STRIDE * PATCH_SIZE[0], STEM_STRIDE * PATCH_SIZE[1])


def image_padding(input_size: Tuple[int, int]) -> Tuple[int, int, int, int]:
    """``F.pad`` widths (left, right, top, bottom) that centre a (w, h)
    input in the smallest whole number of token cells: none for sizes that
    are multiples of the 12 x 16 cell (192 x 256, 288 x 384); 4 columns on
    each side for 256 x 256."""
    w, h = input_size
    pad_w, pad_h = -w % TOKEN_CELL[1], -h % TOKEN_CELL[0]
    return (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)


class EncodedTokens(NamedTuple):
    """What one path through the transformer gives.

    ``tokens`` (B, K, C) are the keypoint tokens in the data set's keypoint
    order. The indices are those the pruning steps chose, each relative to
    the tokens before it: ``coarse`` (B, kept) per coarse step; ``transition``
    (B, G, kept) the visual tokens each group takes, best first (None when
    the transition keeps all); ``group`` (B, G, L') the positions among each
    group's own tokens that the second pruning keeps (None without it).
    """
    tokens: Tensor
    coarse: Tuple[Tensor, ...]
    transition: Optional[Tensor]
    group: Optional[Tensor]


class CoarseState(NamedTuple):
    """The coarse encoder between two steps: tokens ``x`` (B, front + N,
    C), the positional rows ``pos`` (B, N, C) of the N visual tokens, the
    number ``front`` of sparse tokens before them, and the ``logits`` of the
    front tokens against the visual ones in the last attention (B, heads,
    front, N), or None."""
    x: Tensor
    pos: Tensor
    front: int
    logits: Optional[Tensor]


@MODELS.register_module()
class GTPT(BaseModule):
    """Group-based Token Pruning Transformer backbone (Wang et al., ECCV
    2024).

    Args:
        arch (str): ``'t'``, ``'s'`` or ``'b'``.
        num_keypoints (int): Keypoints of the data set.
        keep_ratios (Sequence[float]): Keep ratios of the four stages (coarse
            layers 0–2, 3–5, fine layers 0–2, 3–5). The authors use (1.0,
            0.7, 0.3, 0.1) on COCO and (1.0, 0.7, 0.5, 0.3) on
            COCO-WholeBody.
        metainfo (dict | str, optional): The data set's MMPose metainfo,
            e.g. ``dict(from_file='configs/_base_/datasets/crowdpose.py')``;
            defaults to COCO's for 17 keypoints, COCO-WholeBody's for 133.
        keypoint_groups (Sequence[Sequence[int | str]], optional): The MHGA
            groups (keypoint ids or names); by default head, upper and lower
            body by the metainfo's keypoint types (docs/layouts.md).
        dense_parts (Dict[str, Sequence[int | str]], optional): Keypoints
            seeded from a part token at the coarse-to-fine step; by default
            face, hands and feet by MMPose's whole-body names.
        input_size (Tuple[int, int]): (w, h) of the input crop. A size that
            is not a multiple of the 12 x 16 pixel token cell is padded
            (centred, zeros after normalisation) to the next one, e.g.
            256 x 256 to 264 x 256 (16 x 22 visual tokens).
        num_heads (int): Attention heads.
        mlp_ratio (int): FFN width ratio.
        depth (Tuple[int, int]): Coarse and fine layers.
        unpruned_pass (bool): In training mode also run the unpruned path
            (for the Global Perceived loss). Eval mode runs the pruned path.
        init_cfg (dict, optional): MMEngine initialisation config.

    Returns from ``forward``:
        tuple: ``(tokens,)`` in eval mode, ``(tokens, unpruned_tokens)`` in
        training mode with ``unpruned_pass``; each (B, num_keypoints,
        embed_dims), in the data set's keypoint order.

    Inference rewrites (``gtpt_mmpose.deploy``) may replace these submodules
    by any module with the same contract, and nothing else:

    * ``stem``, ``patch_norm``, ``patch_embed``, applied in that order:
      (B, 3, H, W) images -> (B, N, C) visual tokens together;
    * each block's ``attn``: ``(x, score_rows) -> (out, logits)`` as
      :class:`~.transformer.Attention` and
      :class:`~.transformer.GroupAttention`; or only its ``qkv`` and
      ``proj`` layers, by modules computing the same function of the same
      ``weight`` and ``bias``;
    * each block's ``ffn``: (..., C) -> (..., C).
    """

    def __init__(self,
                 arch: str = 't',
                 num_keypoints: int = 133,
                 keep_ratios: Sequence[float] = (1.0, 0.7, 0.5, 0.3),
                 metainfo: Optional[Union[dict, str]] = None,
                 keypoint_groups: Optional[Sequence[
                     Sequence[KeypointRef]]] = None,
                 dense_parts: Optional[Dict[str,
                                            Sequence[KeypointRef]]] = None,
                 input_size: Tuple[int, int] = (192, 256),
                 num_heads: int = 8,
                 mlp_ratio: int = 3,
                 depth: Tuple[int, int] = (6, 6),
                 unpruned_pass: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if arch not in ARCH_SETTINGS:
            raise ValueError(f'arch must be one of {sorted(ARCH_SETTINGS)}, '
                             f'got {arch!r}')
        keep_ratios = tuple(float(r) for r in keep_ratios)
        if len(keep_ratios) != 4 or not all(0.0 < r <= 1.0
                                            for r in keep_ratios):
            raise ValueError('keep_ratios must be four values in (0, 1], '
                             f'got {keep_ratios}')
        if min(depth) <= STAGE_LAYERS:
            raise ValueError(f'depth must be at least ({STAGE_LAYERS + 1}, '
                             f'{STAGE_LAYERS + 1}), got {depth}')
        cfg = ARCH_SETTINGS[arch]
        dims = cfg['embed_dims']
        self.embed_dims, self.keep_ratios = dims, keep_ratios
        self.unpruned_pass = unpruned_pass
        self.keypoints = resolve_layout(num_keypoints, metainfo,
                                        keypoint_groups, dense_parts)
        self.layout = layout = GroupLayout(self.keypoints)
        self.num_keypoints = num_keypoints
        self.input_size = tuple(input_size)
        self.image_padding = image_padding(input_size)
        left, right, top, bottom = self.image_padding
        # visual tokens: rows, cols
        self.grid = ((input_size[1] + top + bottom) // TOKEN_CELL[0],
                     (input_size[0] + left + right) // TOKEN_CELL[1])

        # tokenizer (spec §1)
        # channels-last: the convolutions in NHWC kernels (design.md §1.6)
        self.stem = cfg['stem']().to(memory_format=torch.channels_last)
        ch = self.stem.out_channels
        self.patch_norm = nn.BatchNorm2d(ch)
        self.patch_embed = PatchEmbed(ch, dims, PATCH_SIZE)
        self.register_buffer(
            'pos_embed',
            sine_position_table(*self.grid, dims)[None],
            persistent=False)
        self.human_token = nn.Parameter(torch.zeros(1, 1, dims))
        self.keypoint_token = nn.Parameter(
            torch.zeros(1, layout.num_sparse_keypoints, dims))
        if layout.num_parts:
            self.part_token = nn.Parameter(
                torch.zeros(1, layout.num_parts, dims))
            self.dense_keypoint_token = nn.Parameter(
                torch.zeros(1, len(layout.dense_table_index), dims))
        # encoders (spec §2, §4)
        self.coarse_blocks = nn.ModuleList(
            Block(dims, num_heads, mlp_ratio) for _ in range(depth[0]))
        self.group_blocks = nn.ModuleList(
            Block(dims, num_heads, mlp_ratio, layout.num_slots,
                  layout.shared_slots()) for _ in range(depth[1]))
        # coarse-to-fine (spec §3.2): a sigmoid channel mask per group
        self.group_mask = nn.Sequential(
            nn.Linear(dims, dims // 2), nn.ReLU(inplace=True),
            nn.Linear(dims // 2, dims * layout.num_groups), nn.Sigmoid())

        # static tables
        self.register_buffer(
            'slot_index', layout.slot_index(), persistent=False)
        self.register_buffer(
            'dense_part_index', layout.dense_part_index(), persistent=False)
        self.register_buffer(
            'transition_query_bias',
            layout.transition_query_bias(),
            persistent=False)
        rows = layout.group_query_rows()
        self.group_score_rows = max(max(r) for r in rows) + 1
        self.register_buffer(
            'group_query_bias',
            layout.query_bias(rows, self.group_score_rows),
            persistent=False)
        num_visual = self.grid[0] * self.grid[1]
        self.plans = nn.ModuleDict(
            dict(
                pruned=PruningPlan(layout, keep_ratios, num_visual),
                unpruned=PruningPlan(layout, (1.0, ) * 4, num_visual)))
        # the first coarse layer whose pruning differs between the paths:
        # everything before its pruning step is computed once for both
        self.split_layer = min(
            set(self.plans['pruned'].coarse_keep)
            ^ set(self.plans['unpruned'].coarse_keep),
            default=depth[0])

    def init_weights(self) -> None:
        """The authors' initialisation from scratch (spec §9.1), unless an
        ``init_cfg`` (e.g. ``Pretrained``) says otherwise: convolution
        weights N(0, 0.001^2) with PyTorch's default biases, BatchNorm
        (1, 0), the token tables truncated-normal with std 0.02; linear and
        norm layers keep PyTorch's defaults."""
        if self.init_cfg is not None:
            super().init_weights()
            return
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for name in ('human_token', 'keypoint_token', 'part_token',
                     'dense_keypoint_token'):
            if hasattr(self, name):
                nn.init.trunc_normal_(getattr(self, name), std=0.02)
        self._is_init = True

    # ---- tokenizer -------------------------------------------------------
    def tokenize(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) normalised image -> (B, N, C) visual tokens with
        their positional code (spec §1.5)."""
        if any(self.image_padding):  # whole token cells (input_size)
            x = F.pad(x, self.image_padding)
        return self.patch_embed(self.patch_norm(self.stem(x))) + self.pos_embed

    # ---- encoders --------------------------------------------------------
    def sparse_embedding(self) -> Tensor:
        """(1, K, C) Human-2-Keypoint offsets (eq. 4): the part tokens
        (e.g. COCO-WholeBody's face, hands, feet), then the sparse keypoint
        tokens (its 17 body keypoints)."""
        if self.layout.num_parts:
            return torch.cat((self.part_token, self.keypoint_token), dim=1)
        return self.keypoint_token

    def encode(self, visual: Tensor, plan: PruningPlan) -> EncodedTokens:
        """One path through the transformer: (B, N, C) visual tokens ->
        keypoint tokens and the pruning steps' choices."""
        return self.encode_from(self.shared_prefix(visual), plan)

    def shared_prefix(self, visual: Tensor) -> 'CoarseState':
        """The coarse layers that every path computes alike: those before
        :attr:`split_layer`, and that layer's attention (the paths part at
        its pruning step). (B, N, C) visual tokens -> the coarse state."""
        b = visual.shape[0]
        x = torch.cat((self.human_token.expand(b, -1, -1), visual), dim=1)
        state = CoarseState(x, self.pos_embed.expand(b, -1, -1), 1, None)
        for i in range(self.split_layer):  # no path prunes here
            state = self.coarse_attention(i, state, False)
            state, _ = self.coarse_finish(i, state, None)
        if self.split_layer < len(self.coarse_blocks):
            state = self.coarse_attention(self.split_layer, state, True)
        return state

    def encode_from(self, state: 'CoarseState',
                    plan: PruningPlan) -> EncodedTokens:
        """Continue one path from :meth:`shared_prefix`'s state."""
        coarse_index = []
        for i in range(self.split_layer, len(self.coarse_blocks)):
            if i > self.split_layer:
                state = self.coarse_attention(i, state, i in plan.coarse_keep)
            state, index = self.coarse_finish(i, state, plan)
            if index is not None:
                coarse_index.append(index)
        x, pos, transition = self.coarse_to_fine(state.x, state.pos,
                                                 state.logits, plan)
        tokens, group_index = self.fine_encode(x, pos, plan)
        return EncodedTokens(tokens, tuple(coarse_index), transition,
                             group_index)

    def coarse_attention(self, i: int, state: 'CoarseState',
                         prunes: bool) -> 'CoarseState':
        """The attention half of coarse layer ``i`` (spec §2.1); it keeps
        the logits of the front tokens when a pruning step, or the
        transition after the last layer, needs them."""
        x, pos, front, _ = state
        if i > 0:  # the positional code re-enters before every layer (Q3)
            x = x + F.pad(pos, (0, 0, front, 0))
        last = i == len(self.coarse_blocks) - 1
        x, logits = self.coarse_blocks[i].attention_residual(
            x, score_rows=front if prunes or last else 0)
        return CoarseState(x, pos, front, logits)

    def coarse_finish(self, i: int, state: 'CoarseState',
                      plan: Optional[PruningPlan]
                      ) -> Tuple['CoarseState', Optional[Tensor]]:
        """The rest of coarse layer ``i``: the plan's pruning step (spec
        §2.3), Human-2-Keypoint at the stage boundary (§2.2, quirk Q6), the
        FFN. Returns the state and the kept indices, or None."""
        x, pos, front, logits = state
        keep = plan.coarse_keep.get(i) if plan is not None else None
        index = None
        if keep:
            index = pooled_scores(logits).topk(keep, dim=-1).indices
            x, pos = take_tokens(x, index, front), take_tokens(pos, index)
        if i == STAGE_LAYERS:  # the human token becomes the keypoint tokens
            x = torch.cat((x[:, :1] + self.sparse_embedding(), x[:, 1:]),
                          dim=1)
            front = self.layout.num_sparse
        x = self.coarse_blocks[i].ffn_residual(x)
        return CoarseState(x, pos, front, logits), index

    def coarse_to_fine(self, x: Tensor, pos: Tensor, logits: Tensor,
                       plan: PruningPlan
                       ) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
        """Split into groups (spec §3).

        Args:
            x (Tensor): (B, K + N1, C) sparse then visual tokens.
            pos (Tensor): (B, N1, C) positional rows of the visual tokens.
            logits (Tensor): (B, heads, K, N1) sparse-to-visual logits of the
                last coarse layer.
            plan (PruningPlan): The path.

        Returns:
            tuple: (B, G, S + L', C) group tokens, (B, G, L', C) positional
            rows of the own tokens, and the transition's choice (B, G, k)
            or None.
        """
        b, _, c = x.shape
        k, g = self.layout.num_sparse, self.layout.num_groups
        sparse, visual = x[:, :k], x[:, k:]
        masks = self.group_mask(visual).view(b, -1, g, c).transpose(1, 2)
        visual, pos = visual[:, None] * masks, pos[:, None] * masks
        index = None
        if not plan.transition_is_identity:  # group-wise top-k (spec §3.4)
            scores = pooled_scores(logits[:, None],
                                   self.transition_query_bias)  # B, G, N1
            index = scores.topk(max(plan.transition_keep), dim=-1).indices
            visual, pos = take_tokens(visual, index), take_tokens(pos, index)
        dense = sparse[:, self.dense_part_index]  # B, D, C (spec §3.5)
        if self.layout.num_parts:
            dense = dense + self.dense_keypoint_token
        dense = dense[:, None].expand(b, g, -1, -1)
        own = plan.transition_own_index.expand(b, -1, -1)
        visual = take_tokens(torch.cat((dense, visual), dim=2), own)
        pos = take_tokens(
            torch.cat((torch.zeros_like(dense), pos), dim=2), own)
        return torch.cat((sparse[:, self.slot_index], visual),
                         dim=2), pos, index

    def fine_encode(self, x: Tensor, pos: Tensor,
                    plan: PruningPlan) -> Tuple[Tensor, Optional[Tensor]]:
        """Group layers with MHGA and the second pruning (spec §4).

        Returns:
            tuple: (B, K, C) keypoint tokens and the second pruning's choice
            (B, G, L') or None.
        """
        s = self.layout.num_slots
        chosen = None
        for j, blk in enumerate(self.group_blocks):
            x = x + F.pad(pos, (0, 0, s, 0))  # zero rows for dense (Q3)
            prune = j == STAGE_LAYERS and plan.group_keep is not None
            x, logits = blk.attention_residual(
                x, score_rows=self.group_score_rows if prune else 0)
            if prune:  # spec §4.3
                scores = pooled_scores(logits, self.group_query_bias)
                ranked = (scores + plan.group_candidate_bias).topk(
                    max(plan.group_keep), dim=-1).indices  # B, G, k
                chosen = torch.cat(
                    (plan.group_own_positions.expand(*ranked.shape[:2],
                                                     -1), ranked),
                    dim=-1).gather(
                        -1,
                        plan.group_own_index.expand(ranked.shape[0], -1, -1))
                x, pos = take_tokens(x, chosen, s), take_tokens(pos, chosen)
            x = blk.ffn_residual(x)
        return x.flatten(1, 2)[:, plan.readout_index], chosen

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """(B, 3, H, W) -> ``(tokens,)``, or ``(tokens, unpruned_tokens)``
        in training with ``unpruned_pass``."""
        prefix = self.shared_prefix(self.tokenize(x))  # both paths share it
        pruned = self.encode_from(prefix, self.plans['pruned']).tokens
        if self.training and self.unpruned_pass:
            unpruned = self.encode_from(prefix, self.plans['unpruned'])
            return pruned, unpruned.tokens
        return (pruned, )

    @torch.no_grad()
    def kept_tokens(self, x: Tensor) -> Dict[str, Tensor]:
        """Which visual tokens each pruning step of the pruned path kept.

        Args:
            x (Tensor): (B, 3, H, W) normalised images.

        Returns:
            dict: ``coarse_layer{i}`` (B, kept) per coarse pruning layer,
            ``transition`` (B, G, L') and ``group_layer{j}`` (B, G, L'') per
            group pruning layer: original indices (row-major over
            :attr:`grid`) of the kept visual tokens, -1 for dense keypoint
            tokens; and ``tokens``, the keypoint tokens of the same pass,
            identical to ``forward``'s.
        """
        plan = self.plans['pruned']
        out = self.encode(self.tokenize(x), plan)
        b = x.shape[0]
        origin = torch.arange(
            self.grid[0] * self.grid[1], device=x.device).expand(b, -1)
        kept = {}
        for layer, index in zip(sorted(plan.coarse_keep), out.coarse):
            origin = kept[f'coarse_layer{layer}'] = origin.gather(-1, index)
        g = self.layout.num_groups
        origin = origin[:, None].expand(b, g, -1)
        if out.transition is not None:
            origin = origin.gather(-1, out.transition)
        dense = origin.new_full((b, g, len(self.layout.dense_table_index)), -1)
        origin = kept['transition'] = torch.cat(
            (dense, origin),
            dim=2).gather(-1, plan.transition_own_index.expand(b, -1, -1))
        if out.group is not None:
            kept[f'group_layer{STAGE_LAYERS}'] = origin.gather(-1, out.group)
        kept['tokens'] = out.tokens
        return kept
