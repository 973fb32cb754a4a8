"""The GTPT model as the spec describes it: MHGA, pruning, groups, flip
test (issue 8)."""
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import config_file, fixture_input

from gtpt_mmpose.models.backbones.keypoint_layout import resolve_layout
from gtpt_mmpose.models.backbones.token_layout import GroupLayout
from gtpt_mmpose.models.backbones.token_ops import pooled_scores
from gtpt_mmpose.models.backbones.transformer import GroupAttention


def build(name: str, **backbone):
    from mmengine.config import Config
    from mmpose.registry import MODELS
    cfg = Config.fromfile(config_file(name))
    cfg.model.backbone.update(backbone)
    torch.manual_seed(0)
    return MODELS.build(cfg.model).eval()


def test_mhga_equals_full_attention_with_the_equivalent_mask():
    """Each group's queries see every group's real slots plus their own
    group's other tokens; nobody sees the dummy slot."""
    torch.manual_seed(0)
    b, g, s, n, c, heads = 2, 3, 6, 15, 32, 8
    hidden = torch.zeros(g, s, dtype=torch.bool)
    hidden[0, 0] = True  # the dummy slot of group 0
    shared = [i for i, h in enumerate(hidden.flatten().tolist()) if not h]
    attn = GroupAttention(c, heads, num_slots=s, shared_slots=shared)
    x = torch.randn(b, g, n, c)
    out, _ = attn(x)

    # reference: one sequence of all G*n tokens, an explicit visibility mask
    flat = x.reshape(b, g * n, c)
    q, k, v = attn.qkv(flat).chunk(3, dim=-1)

    def split(t):
        return t.view(b, g * n, heads, c // heads).transpose(1, 2)

    logits = split(q) @ split(k).transpose(-2, -1) * c**-0.5
    visible = torch.zeros(g * n, g * n, dtype=torch.bool)
    for qg in range(g):
        for kg in range(g):
            for j in range(n):
                is_slot = j < s
                if (is_slot and not hidden[kg, j]) or (not is_slot
                                                       and kg == qg):
                    visible[qg * n:(qg + 1) * n, kg * n + j] = True
    ref = logits.masked_fill(~visible, float('-inf')).softmax(-1) @ split(v)
    ref = attn.proj(ref.transpose(1, 2).reshape(b, g * n, c)).view(b, g, n, c)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


# spec §3.1: the authors' groups, parts and dense keypoints
SPEC_GROUPS = {
    17: (tuple(range(0, 5)), tuple(range(5, 11)), tuple(range(11, 17))),
    133: (tuple(range(0, 5)) + tuple(range(23, 91)),
          tuple(range(5, 11)) + tuple(range(91, 133)), tuple(range(11, 23))),
}
SPEC_PARTS = {
    17: (),
    133: (('face', tuple(range(23, 91))), ('left_hand', tuple(range(91, 112))),
          ('right_hand', tuple(range(112, 133))),
          ('left_foot', tuple(range(17,
                                    20))), ('right_foot', tuple(range(20,
                                                                      23)))),
}


@pytest.mark.parametrize('num_keypoints', [17, 133])
def test_the_layout_rule_gives_the_authors_layout_on_coco(num_keypoints):
    """MMPose's COCO and COCO-WholeBody metainfo, through the rule, give
    exactly the paper's sparse body keypoints, parts and groups."""
    keypoints = resolve_layout(num_keypoints)
    assert keypoints.groups == SPEC_GROUPS[num_keypoints]
    assert keypoints.parts == SPEC_PARTS[num_keypoints]
    assert keypoints.sparse == tuple(range(17))
    layout = GroupLayout(keypoints)
    readout = layout.readout_index(length=100).tolist()
    assert len(set(
        readout)) == num_keypoints  # every keypoint read from its own token
    assert layout.num_dense == ([0, 0, 0]
                                if num_keypoints == 17 else [68, 42, 6])
    assert layout.num_slots == 6  # group 0 has the duplicate-nose dummy
    assert [row.count(True) for row in layout.slot_dummy] == [1, 0, 0]


@pytest.mark.parametrize('metainfo, groups, parts', [
    ('crowdpose', [['top_head', 'neck'],
                   [
                       'left_shoulder', 'right_shoulder', 'left_elbow',
                       'right_elbow', 'left_wrist', 'right_wrist'
                   ],
                   [
                       'left_hip', 'right_hip', 'left_knee', 'right_knee',
                       'left_ankle', 'right_ankle'
                   ]], []),
    ('mpii', [['upper_neck', 'head_top'],
              [
                  'thorax', 'right_wrist', 'right_elbow', 'right_shoulder',
                  'left_shoulder', 'left_elbow', 'left_wrist'
              ],
              [
                  'right_ankle', 'right_knee', 'right_hip', 'left_hip',
                  'left_knee', 'left_ankle', 'pelvis'
              ]], []),
    ('halpe', None,
     ['face', 'left_hand', 'right_hand', 'left_foot', 'right_foot']),
])
def test_the_layout_rule_on_other_data_sets(metainfo, groups, parts):
    """Head words, MMPose's upper/lower types and whole-body names, as
    docs/layouts.md states the rule."""
    from gtpt_mmpose.models.backbones.keypoint_layout import load_metainfo
    path = f'configs/_base_/datasets/{metainfo}.py'
    meta = load_metainfo(path)
    keypoints = resolve_layout(meta['num_keypoints'], path)
    named = [[keypoints.names[k] for k in g] for g in keypoints.groups]
    if groups is not None:
        assert [sorted(g) for g in named] == [sorted(g) for g in groups]
    assert [p for p, _ in keypoints.parts] == parts
    if metainfo == 'halpe':  # body 20 sparse, feet / face / hands dense
        assert len(keypoints.sparse) == 20
        assert sorted(named[0])[:3] == ['face-0', 'face-1', 'face-10']
        assert 'head' in named[0] and 'neck' in named[0]
        assert 'hip' in named[2] and 'left_heel' in named[2]


@pytest.mark.parametrize('name, pruned, unpruned', [
    ('gtpt-t_coco',
     dict(
         coarse_visual=179, transition_visual=[76] * 3, group_visual=[25] * 3),
     dict(coarse_visual=256, transition_visual=[256] * 3, group_visual=None)),
    ('gtpt-t_coco-wholebody',
     dict(
         coarse_visual=179,
         transition_visual=[60, 86, 122],
         group_visual=[8, 34, 70]),
     dict(
         coarse_visual=256,
         transition_visual=[188, 214, 250],
         group_visual=None)),
])
def test_token_counts_follow_the_spec(name, pruned, unpruned):
    plans = build(name).backbone.plans
    for plan, want in ((plans['pruned'], pruned), (plans['unpruned'],
                                                   unpruned)):
        counts = plan.counts()
        assert {k: counts[k] for k in want} == want


def _attention_inputs(model, x):
    """The normalised inputs of coarse layers 3, 5 and group layer 3 on the
    pruned path."""
    seen = {}
    blocks = {
        'c3': model.backbone.coarse_blocks[3],
        'c5': model.backbone.coarse_blocks[5],
        'g3': model.backbone.group_blocks[3]
    }
    hooks = [
        blk.attn.register_forward_hook(
            lambda m, a, kw, o, key=key: seen.__setitem__(key, a[0]),
            with_kwargs=True) for key, blk in blocks.items()
    ]
    with torch.no_grad():
        record = model.backbone.kept_tokens(x)
    for h in hooks:
        h.remove()
    return seen, record, blocks


def _logits(attn, xn, heads=8):
    """(B, heads, N, N) scaled logits of a plain attention over xn (B, N,
    C), computed naively."""
    b, n, c = xn.shape
    q, k, _ = attn.qkv(xn).chunk(3, dim=-1)
    q = q.view(b, n, heads, c // heads).transpose(1, 2)
    k = k.view(b, n, heads, c // heads).transpose(1, 2)
    return q @ k.transpose(-2, -1) * c**-0.5


def _pool(a):
    """eq. 10 as coded: softmax over all (head, query) pairs of a key column,
    weighting the logits."""
    flat = a.reshape(-1, a.shape[-1])
    return (flat.softmax(0) * flat).sum(0)


def test_each_pruning_step_keeps_exactly_the_highest_scoring_tokens():
    name = 'gtpt-t_coco-wholebody'
    model = build(name)
    x = fixture_input(name)
    seen, record, blocks = _attention_inputs(model, x)
    layout = model.backbone.layout
    with torch.no_grad():
        for i in range(x.shape[0]):
            # prune #1: the human token's logits against the 256 visual tokens
            a3 = _logits(blocks['c3'].attn, seen['c3'][i:i + 1])[0, :, :1, 1:]
            top = set(_pool(a3).topk(179).indices.tolist())
            assert set(record['coarse_layer3'][i].tolist()) == top
            # transition: each group's part and body queries against the
            # kept visual tokens
            a5 = _logits(blocks['c5'].attn, seen['c5'][i:i + 1])[0]
            kept1 = record['coarse_layer3'][i]
            for g, queries in enumerate(layout.transition_queries):
                scores = _pool(a5[:, queries, layout.num_sparse:])
                want = set(
                    kept1[scores.topk(128 -
                                      layout.num_dense[g]).indices].tolist())
                got = set(t for t in record['transition'][i, g].tolist()
                          if t >= 0)
                assert got == want
            # prune #2: each group's real slots and dense tokens against its
            # own visual tokens
            xg = seen['g3'][i:i + 1]  # (1, G, L, C)
            for g, rows in enumerate(layout.group_query_rows()):
                own = xg[0, g]
                q, k, _ = blocks['g3'].attn.qkv(own).chunk(3, dim=-1)
                c = own.shape[-1]
                q = q.view(-1, 8, c // 8).transpose(0, 1)
                k = k.view(-1, 8, c // 8).transpose(0, 1)
                a = q[:, rows] @ k[:, layout.num_slots +
                                   layout.num_dense[g]:].transpose(
                                       -2, -1) * c**-0.5
                before = record['transition'][i, g][layout.num_dense[g]:]
                want = set(before[_pool(a).topk(
                    76 - layout.num_dense[g]).indices].tolist())
                got = set(t for t in record['group_layer3'][i, g].tolist()
                          if t >= 0)
                assert got == want


def test_pooled_scores_is_a_softmax_over_heads_and_queries():
    torch.manual_seed(0)
    logits = torch.randn(2, 8, 3, 10)
    got = pooled_scores(logits)
    for b in range(2):
        torch.testing.assert_close(got[b], _pool(logits[b]))


def test_training_forward_gives_both_paths_from_one_tokenizer_pass():
    model = build('gtpt-t_coco-wholebody').train()
    calls = []
    model.backbone.stem.register_forward_hook(lambda *a: calls.append(1))
    pruned, unpruned = model.backbone(torch.randn(2, 3, 256, 192))
    assert pruned.shape == unpruned.shape == (2, 133, 128)
    assert len(calls) == 1
    model.eval()
    with torch.no_grad():
        assert len(model.backbone(torch.randn(1, 3, 256, 192))) == 1


def test_flip_test_gives_mirrored_keypoints_for_a_mirrored_input():
    """Swapping the roles of an image and its mirror mirrors the averaged
    logits (one-bin shift included, the last bin aside) and so the decoded
    keypoints (x -> W - 1 - x, left and right swapped) wherever the maximum
    is not an exact tie (spec §10)."""
    from mmpose.datasets.datasets.utils import parse_pose_metainfo
    from mmpose.structures import PoseDataSample

    from gtpt_mmpose.models.heads.gtpt_head import unflip_simcc

    name = 'gtpt-t_coco-wholebody'
    model = build(name)
    meta = parse_pose_metainfo(
        dict(from_file='configs/_base_/datasets/coco_wholebody.py'))
    flip = meta['flip_indices']
    sample = PoseDataSample(metainfo=dict(flip_indices=flip))
    x = fixture_input(name)[:1]
    with torch.no_grad():
        feats, feats_flip = model.extract_feat(x), model.extract_feat(
            x.flip(-1))
        (ax,
         ay), (bx,
               by) = model.head.forward(feats), model.head.forward(feats_flip)
        avg_a = [(p + q) / 2
                 for p, q in zip((ax, ay), unflip_simcc(bx, by, flip))]
        avg_b = [(p + q) / 2
                 for p, q in zip((bx, by), unflip_simcc(ax, ay, flip))]
        mirrored = unflip_simcc(*avg_b, flip)
        torch.testing.assert_close(mirrored[0][..., :-1], avg_a[0][..., :-1])
        torch.testing.assert_close(mirrored[1], avg_a[1])
        a = model.head.predict([feats, feats_flip], [sample],
                               dict(flip_test=True))[0]
        b = model.head.predict([feats_flip, feats], [sample],
                               dict(flip_test=True))[0]
    top2 = avg_a[0][0].topk(2, dim=-1).values
    clear = ((top2[:, 0] - top2[:, 1]) > 1e-4).numpy() & (
        a.keypoints[0, :, 0] < 191.5)
    assert clear.sum(
    ) > 100  # random weights give flat logits with some exact ties
    torch.testing.assert_close(
        torch.tensor(b.keypoints[0, flip, 0][clear]),
        torch.tensor(191.0 - a.keypoints[0, clear, 0]))
    torch.testing.assert_close(
        torch.tensor(b.keypoints[0, flip, 1]),
        torch.tensor(a.keypoints[0, :, 1]))


def test_sine_table_matches_the_formula():
    from gtpt_mmpose.models.backbones.token_ops import sine_position_table
    table = sine_position_table(16, 16, 128)
    # row code in the first half, column code in the second, sin/cos
    # alternating
    r, c, k = 3, 7, 10
    tau = 10000**(2 * (k // 2) / 64)
    assert math.isclose(
        table[r * 16 + c, k].item(),
        math.sin((r + 1) / (16 + 1e-6) * 2 * math.pi / tau),
        abs_tol=1e-6)
    assert math.isclose(
        table[r * 16 + c, 64 + k + 1].item(),
        math.cos((c + 1) / (16 + 1e-6) * 2 * math.pi / tau),
        abs_tol=1e-6)


@pytest.mark.parametrize('memory_format',
                         [torch.contiguous_format, torch.channels_last])
def test_concat_shuffle_is_channel_shuffle_of_the_concatenation(memory_format):
    """Values, memory format and gradients, against PyTorch's own
    channel_shuffle of the concatenation."""
    from gtpt_mmpose.models.backbones.shufflenet_stem import concat_shuffle
    a, b = (
        torch.randn(2, 6, 5, 4).contiguous(
            memory_format=memory_format).requires_grad_() for _ in range(2))
    out = concat_shuffle(a, b)
    ref = F.channel_shuffle(torch.cat((a, b), dim=1), 2)
    assert torch.equal(out, ref)
    assert out.is_contiguous(memory_format=memory_format)
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, (a, b), grad)
    want = torch.autograd.grad(ref, (a, b), grad)
    for g, w in zip(got, want):
        assert torch.equal(g, w)
    if memory_format == torch.channels_last:  # what the BatchNorms read
        assert all(g.is_contiguous(memory_format=memory_format) for g in got)


def test_pruning_logits_are_those_of_the_attention_itself():
    """The logits a block hands to pruning are the scaled q k^T rows of the
    attention it computed: softmax of the full logits, times v, is its
    output."""
    from gtpt_mmpose.models.backbones.transformer import Attention
    torch.manual_seed(0)
    attn = Attention(32, 8)
    x = torch.randn(2, 20, 32)
    out, logits = attn(x, score_rows=3)
    q, k, v = (
        t.view(2, 20, 8, 4).transpose(1, 2)
        for t in attn.qkv(x).chunk(3, dim=-1))
    full = q @ k.transpose(-2, -1) * 32**-0.5  # scale C^-0.5 (quirk Q1)
    torch.testing.assert_close(logits, full[:, :, :3, 3:])
    ref = attn.proj((full.softmax(-1) @ v).transpose(1, 2).reshape(2, 20, 32))
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
