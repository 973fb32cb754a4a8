"""The GTPT backbone: tokenizer, coarse encoder, coarse-to-fine module and fine encoder.

Spec: ../shared/design/gtpt-reference-spec.md §1–§4. The backbone returns keypoint tokens; the
SimCC head (``GTPTHead``) reads them. One class serves T, S and B on COCO and COCO-WholeBody.
"""
import math
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpose.registry import MODELS

from .shufflenet_stem import ShuffleStem, UShapedShuffleStem
from .token_layout import GroupLayout, PruningPlan
from .transformer import Block

ARCH_SETTINGS: Dict[str, dict] = {
    't': dict(stem='shuffle', stem_channels=128, embed_dims=128),
    's': dict(stem='shuffle', stem_channels=256, embed_dims=192),
    'b': dict(stem='ushape', stem_channels=256, embed_dims=192),
}
PATCH_SIZE = (4, 3)  # rows x cols of the stride-4 feature map per visual token
# Each encoder has two keep-ratio stages of three layers; the second opens at its layer 3, where
# the coarse encoder also turns the human token into keypoint tokens.
SECOND_STAGE = 3
# Images per tokenizer call at inference: a whole large batch's stride-2/4 feature maps fall out
# of the CPU caches (measured on 2 cores: batch 32 in one call took 3x the time of chunks of 4).
TOKENIZE_CHUNK = 4


def sine_position_table(rows: int,
                        cols: int,
                        dims: int,
                        temperature: float = 10000.) -> torch.Tensor:
    """(rows * cols, dims) fixed 2-D sine table: first half row code, second half column code (§1.6)."""
    half, eps = dims // 2, 1e-6
    y = torch.arange(
        1, rows + 1, dtype=torch.float32) / (rows + eps) * 2 * math.pi
    x = torch.arange(
        1, cols + 1, dtype=torch.float32) / (cols + eps) * 2 * math.pi
    k = torch.arange(half, dtype=torch.float32)
    tau = temperature**(2 * torch.div(k, 2, rounding_mode='floor') / half)

    def encode(
        v: torch.Tensor
    ) -> torch.Tensor:  # (n,) -> (n, half): sin on even, cos on odd channels
        a = v[:, None] / tau
        return torch.stack((a[:, 0::2].sin(), a[:, 1::2].cos()),
                           dim=2).flatten(1)

    ey, ex = encode(y), encode(x)
    return torch.cat((ey[:, None].expand(rows, cols, half), ex[None].expand(
        rows, cols, half)),
                     dim=2).flatten(0, 1)


def pooled_scores(logits: torch.Tensor,
                  query_bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Softmax pooling of attention logits over (head, query) pairs, per key (eq. 10 as coded, Q2).

    Args:
        logits (Tensor): (..., heads, queries, keys) scaled pre-softmax logits.
        query_bias (Tensor, optional): broadcastable to ``logits``; -inf drops a query row.

    Returns:
        Tensor: (..., keys) scores ``sum softmax(a) * a``.
    """
    a = logits.float()
    w = a if query_bias is None else a + query_bias
    w = w.flatten(-3, -2).softmax(dim=-2).view(w.shape)
    return (w * a).sum(dim=(-3, -2))


def take_tokens(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Gather tokens: x (..., N, C), index (..., k) -> (..., k, C)."""
    return x.gather(-2, index.unsqueeze(-1).expand(*index.shape, x.shape[-1]))


@MODELS.register_module()
class GTPT(BaseModule):
    """Group-based Token Pruning Transformer backbone (Wang et al., ECCV 2024).

    Args:
        arch (str): 't', 's' or 'b'.
        num_keypoints (int): 17 (COCO) or 133 (COCO-WholeBody).
        keep_ratios (Sequence[float]): Keep ratios of the four stages (coarse 0–2, coarse 3–5,
            fine 0–2, fine 3–5). The authors use (1.0, 0.7, 0.3, 0.1) on COCO and
            (1.0, 0.7, 0.5, 0.3) on COCO-WholeBody.
        groups (Sequence[Sequence[int]], optional): Keypoint ids of each group. Defaults to head /
            upper body / lower body.
        input_size (Tuple[int, int]): (w, h) of the input crop.
        num_heads (int): Attention heads.
        mlp_ratio (int): FFN width ratio.
        depth (Tuple[int, int]): Coarse and fine layers.
        unpruned_pass (bool): In training mode also run the unpruned path (for the Global
            Perceived loss); eval mode always runs the pruned path only.
        init_cfg (dict, optional): MMEngine initialisation config.

    Returns from ``forward``:
        tuple: ``(tokens,)`` in eval mode, ``(tokens, unpruned_tokens)`` in training mode when
        ``unpruned_pass``; each (B, num_keypoints, embed_dims), in the data set's keypoint order.
    """

    def __init__(self,
                 arch: str = 't',
                 num_keypoints: int = 133,
                 keep_ratios: Sequence[float] = (1.0, 0.7, 0.5, 0.3),
                 groups: Optional[Sequence[Sequence[int]]] = None,
                 input_size: Tuple[int, int] = (192, 256),
                 num_heads: int = 8,
                 mlp_ratio: int = 3,
                 depth: Tuple[int, int] = (6, 6),
                 unpruned_pass: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if arch not in ARCH_SETTINGS:
            raise ValueError(
                f'arch must be one of {sorted(ARCH_SETTINGS)}, got {arch!r}')
        keep_ratios = tuple(float(r) for r in keep_ratios)
        if len(keep_ratios) != 4 or not all(0.0 < r <= 1.0
                                            for r in keep_ratios):
            raise ValueError(
                f'keep_ratios must be four values in (0, 1], got {keep_ratios}'
            )
        w, h = input_size
        if h % (4 * PATCH_SIZE[0]) or w % (4 * PATCH_SIZE[1]):
            raise ValueError(
                f'input_size (w, h) must be a multiple of (12, 16), got {input_size}'
            )
        if depth[0] <= SECOND_STAGE or depth[1] < 4:
            raise ValueError(f'depth must be at least (4, 4), got {depth}')
        cfg = ARCH_SETTINGS[arch]
        dims = cfg['embed_dims']
        self.arch, self.embed_dims, self.keep_ratios = arch, dims, keep_ratios
        self.unpruned_pass = unpruned_pass
        self.layout = layout = GroupLayout(num_keypoints, groups)
        self.num_keypoints = num_keypoints
        grid = (h // 4 // PATCH_SIZE[0], w // 4 // PATCH_SIZE[1])
        num_visual = grid[0] * grid[1]

        # tokenizer (§1)
        ch = cfg['stem_channels']
        self.stem = ShuffleStem(
            ch) if cfg['stem'] == 'shuffle' else UShapedShuffleStem(ch)
        self.patch_norm = nn.BatchNorm2d(ch)
        self.patch_embed = nn.Linear(PATCH_SIZE[0] * PATCH_SIZE[1] * ch, dims)
        self.register_buffer(
            'pos_embed',
            sine_position_table(*grid, dims)[None],
            persistent=False)
        self.human_token = nn.Parameter(torch.zeros(1, 1, dims))
        self.keypoint_token = nn.Parameter(torch.zeros(1, 17, dims))
        if layout.num_parts:
            self.part_token = nn.Parameter(
                torch.zeros(1, layout.num_parts, dims))
            self.dense_keypoint_token = nn.Parameter(
                torch.zeros(1, len(layout.dense_table_index), dims))
        # encoders (§2, §4)
        self.coarse_blocks = nn.ModuleList(
            Block(dims, num_heads, mlp_ratio) for _ in range(depth[0]))
        self.group_blocks = nn.ModuleList(
            Block(dims, num_heads, mlp_ratio, num_slots=layout.num_slots)
            for _ in range(depth[1]))
        # coarse-to-fine (§3): one sigmoid channel mask per group from every visual token
        self.group_mask = nn.Sequential(
            nn.Linear(dims, dims // 2), nn.ReLU(inplace=True),
            nn.Linear(dims // 2, dims * layout.num_groups), nn.Sigmoid())

        # static tables (never built in forward)
        self.register_buffer(
            'slot_index', layout.slot_index(), persistent=False)
        dense_part, _ = layout.dense_token_index()
        self.register_buffer('dense_part_index', dense_part, persistent=False)
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
        self.plans = nn.ModuleDict(
            dict(
                pruned=PruningPlan(layout, keep_ratios, num_visual),
                unpruned=PruningPlan(layout, (1.0, 1.0, 1.0, 1.0),
                                     num_visual)))
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """The authors' from-scratch initialisation (spec §9.1)."""
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

    # ---- tokenizer -----------------------------------------------------------------------------
    def tokenize(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised image -> (B, N, C) visual tokens, positional code added.

        Eager PyTorch runs the stem channels-last, oneDNN's fast layout for depthwise and 1x1
        convolutions, and at inference on chunks of images; an exported graph stays plain NCHW in
        one call (ONNX Runtime picks its own layout); training needs BN statistics of the batch.
        """
        exporting = torch.onnx.is_in_onnx_export()
        if not (self.training or exporting) and x.shape[0] > TOKENIZE_CHUNK:
            return torch.cat(
                [self.tokenize(chunk) for chunk in x.split(TOKENIZE_CHUNK)])
        if not exporting:
            x = x.contiguous(memory_format=torch.channels_last)
        f = self.patch_norm(self.stem(x))  # B, ch, H/4, W/4
        b, ch, fh, fw = f.shape
        ph, pw = PATCH_SIZE
        # patch vector order (row in patch, col in patch, channel), channel fastest (§1.5): go
        # channels-last, then swap the row-in-patch and patch-column axes (ONNX Runtime moves these
        # blocks of pw * ch contiguous values 4-5x faster than it runs the equivalent 6-D permute)
        f = f.permute(0, 2, 3, 1).reshape(b, fh // ph, ph, fw // pw,
                                          pw * ch).transpose(2, 3)
        return self.patch_embed(f.reshape(b, -1,
                                          ph * pw * ch)) + self.pos_embed

    # ---- encoders ------------------------------------------------------------------------------
    def sparse_embedding(self) -> torch.Tensor:
        """(1, K, C) Human-2-Keypoint offsets: part tokens (WholeBody) then the 17 body tokens."""
        if self.layout.num_parts:
            return torch.cat((self.part_token, self.keypoint_token), dim=1)
        return self.keypoint_token

    def encode(self,
               visual: torch.Tensor,
               plan: PruningPlan,
               record: Optional[Dict[str,
                                     torch.Tensor]] = None) -> torch.Tensor:
        """Run the transformer on one path. (B, N, C) visual tokens -> (B, K, C) keypoint tokens.

        ``record``, when given, receives the original indices of the kept visual tokens.
        """
        b = visual.shape[0]
        pos = self.pos_embed.expand(b, -1, -1)
        origin = torch.arange(
            visual.shape[1], device=visual.device).expand(b, -1)
        x = torch.cat((self.human_token.expand(b, -1, -1), visual), dim=1)
        front, last = 1, len(self.coarse_blocks) - 1
        logits = None
        for i, blk in enumerate(self.coarse_blocks):
            if i > 0:  # the positional code re-enters the residual stream before every layer (Q3)
                x = x + F.pad(pos, (0, 0, front, 0))
            keep = plan.coarse_keep.get(i)
            x, logits = blk.attention_residual(
                x, score_rows=front if (keep or i == last) else 0)
            if keep:
                index = pooled_scores(logits).topk(
                    keep, dim=-1).indices  # B, keep
                x = torch.cat((x[:, :front], take_tokens(x[:, front:], index)),
                              dim=1)
                pos, origin = take_tokens(pos, index), origin.gather(-1, index)
                if record is not None:
                    record[f'coarse_layer{i}'] = origin
            if i == SECOND_STAGE:  # Human-2-Keypoint (eq. 4), between attention and FFN
                x = torch.cat((x[:, :1] + self.sparse_embedding(), x[:, 1:]),
                              dim=1)
                front = self.layout.num_sparse
            x = blk.ffn_residual(x)
        x, pos, origin = self.coarse_to_fine(x, pos, logits, plan, origin)
        if record is not None:
            record['transition'] = origin
        return self.fine_encode(x, pos, plan, origin, record)

    def coarse_to_fine(self, x: torch.Tensor, pos: torch.Tensor,
                       logits: torch.Tensor, plan: PruningPlan,
                       origin: torch.Tensor
                       ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Split into groups (§3). x (B, K + N1, C) -> (B, G, S + L', C) group tokens,
        (B, G, L', C) positional rows of the own tokens, (B, G, L') their origin (-1: dense)."""
        b, _, c = x.shape
        k, g = self.layout.num_sparse, self.layout.num_groups
        sparse, visual = x[:, :k], x[:, k:]
        masks = self.group_mask(visual).view(b, -1, g,
                                             c).transpose(1, 2)  # B, G, N1, C
        visual, pos = visual[:, None] * masks, pos[:, None] * masks
        origin = origin[:, None].expand(b, g, -1)
        if not plan.transition_is_identity:
            scores = pooled_scores(logits[:, None],
                                   self.transition_query_bias)  # B, G, N1
            index = scores.topk(
                max(plan.transition_keep), dim=-1).indices  # best first
            visual, pos, origin = take_tokens(visual, index), take_tokens(
                pos, index), origin.gather(-1, index)
        num_dense = len(self.layout.dense_table_index)
        if num_dense:
            dense = sparse[:, self.
                           dense_part_index] + self.dense_keypoint_token  # B, D, C
            dense = dense[:, None].expand(b, g, -1, -1)
        else:
            dense = visual.new_zeros(b, g, 0, c)
        own = plan.transition_own_index.expand(b, -1, -1)
        visual = take_tokens(torch.cat((dense, visual), dim=2), own)
        pos = take_tokens(
            torch.cat((torch.zeros_like(dense), pos), dim=2), own)
        origin = torch.cat((origin.new_full((b, g, num_dense), -1), origin),
                           dim=2).gather(-1, own)
        return torch.cat((sparse[:, self.slot_index], visual),
                         dim=2), pos, origin

    def fine_encode(self,
                    x: torch.Tensor,
                    pos: torch.Tensor,
                    plan: PruningPlan,
                    origin: torch.Tensor,
                    record: Optional[Dict[str, torch.Tensor]] = None
                    ) -> torch.Tensor:
        """Group layers with MHGA and the second pruning (§4). -> (B, K, C) keypoint tokens."""
        s = self.layout.num_slots
        key_mask = plan.key_mask_early
        for j, blk in enumerate(self.group_blocks):
            x = x + F.pad(pos, (0, 0, s, 0))  # dense rows of pos are zero (Q3)
            prune = j == SECOND_STAGE and plan.group_keep is not None
            x, logits = blk.attention_residual(
                x,
                score_rows=self.group_score_rows if prune else 0,
                key_mask=key_mask)
            if prune:
                scores = pooled_scores(
                    logits, self.group_query_bias) + plan.group_candidate_bias
                ranked = scores.topk(
                    max(plan.group_keep),
                    dim=-1).indices  # B, G, k (best first)
                own = torch.cat((plan.group_own_positions.expand(
                    *ranked.shape[:2], -1), ranked),
                                dim=-1)
                own = own.gather(
                    -1, plan.group_own_index.expand(ranked.shape[0], -1, -1))
                x = torch.cat((x[:, :, :s], take_tokens(x[:, :, s:], own)),
                              dim=2)
                pos, origin = take_tokens(pos, own), origin.gather(-1, own)
                key_mask = plan.key_mask_late
                if record is not None:
                    record[f'group_layer{j}'] = origin
            x = blk.ffn_residual(x)
        return x.flatten(1, 2)[:, plan.readout_index]

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        visual = self.tokenize(x)  # shared by both paths
        pruned = self.encode(visual, self.plans['pruned'])
        if self.training and self.unpruned_pass:
            return pruned, self.encode(visual, self.plans['unpruned'])
        return (pruned, )

    @torch.no_grad()
    def kept_tokens(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Original indices (row-major over the token grid) of the visual tokens each pruning step
        kept on the pruned path; group steps are (B, G, L') with -1 for dense keypoint tokens.
        Also returns the keypoint ``tokens`` of the same pass, identical to ``forward``'s."""
        record: Dict[str, torch.Tensor] = {}
        record['tokens'] = self.encode(
            self.tokenize(x), self.plans['pruned'], record)
        return record
