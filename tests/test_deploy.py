"""The deploy path (issue 14): inference-time rewrites applied once, apart
from the model, that leave its outputs as they are."""
import copy

import pytest
import torch
import torch.nn as nn
from conftest import config_file

from gtpt_mmpose.deploy import (BatchChunks, ImageToSimCC, InferencePlan,
                                inference_plan, prepare_for_inference)
from gtpt_mmpose.deploy.fuse import fold_conv_batchnorms
from gtpt_mmpose.deploy.onednn_linear import OneDNNLinear
from gtpt_mmpose.deploy.onnx_attention import (HeadsInChannelsAttention,
                                               HeadsInChannelsGroupAttention,
                                               heads_in_channels)
from gtpt_mmpose.deploy.shuffle_free_stage import ShuffleFreeStage, plan_pieces
from gtpt_mmpose.models.backbones.shufflenet_stem import (ShuffleStem,
                                                          UShapedShuffleStem)
from gtpt_mmpose.models.backbones.transformer import (Attention, Block,
                                                      GroupAttention)


def build(name: str):
    from mmengine.config import Config
    from mmpose.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(config_file(name)).model).eval()
    for bn in model.modules():  # statistics far from the identity, so that a
        if isinstance(bn, nn.BatchNorm2d):  # skipped or misplaced BN shows
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 2.0)
            nn.init.normal_(bn.weight)
            nn.init.normal_(bn.bias)
    return model


@pytest.mark.parametrize('arch', ['t', 'b'])  # B: a BN after PixelShuffle
@pytest.mark.parametrize('plan', [
    InferencePlan(4, True, True),
    InferencePlan(),
])
def test_prepared_model_folds_every_batchnorm_and_keeps_its_outputs(
        arch, plan):
    model = build(f'gtpt-{arch}_coco-wholebody')
    x = torch.randn(5, 3, 256, 192)
    with torch.no_grad():
        ref = ImageToSimCC(model)(x)
        prepared = prepare_for_inference(copy.deepcopy(model), plan=plan)
        got = ImageToSimCC(prepared)(x)
    assert not any(
        isinstance(m, nn.BatchNorm2d) for m in prepared.backbone.modules())
    # the last stage's shuffles go into weights, the patch embedding reading
    # the new order
    kinds = [type(m) for m in prepared.backbone.modules()]
    assert kinds.count(ShuffleFreeStage) == 1
    stem = prepared.backbone.stem
    linears = [
        m for m in prepared.backbone.modules() if isinstance(m, nn.Linear)
    ]
    onednn = [m for m in linears if isinstance(m, OneDNNLinear)]
    if plan.tokenizer_chunk:  # the tokenizer as one module, in chunks
        assert isinstance(stem, BatchChunks) and stem.size == 4
        assert isinstance(prepared.backbone.patch_embed, nn.Identity)
    else:
        assert not isinstance(stem, BatchChunks)
    # oneDNN: every layer of the blocks and the patch embedding (12 blocks,
    # 4 linear layers each), none else
    assert len(onednn) == (49 if plan.onednn_linears else 0)
    # channels-last: every stem convolution whose layout is not ambiguous
    # (more than one input channel per group, a kernel over 1x1)
    convs = [
        m for m in prepared.backbone.modules() if isinstance(m, nn.Conv2d)
        and m.weight.shape[1] > 1 and m.weight.shape[2] > 1
    ]
    assert convs and all(
        c.weight.is_contiguous(
            memory_format=torch.channels_last) == plan.channels_last_stem
        for c in convs)
    with pytest.raises(ValueError, match='already prepared'):
        prepare_for_inference(prepared)
    for g, r in zip(got, ref):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-4)
    assert model.backbone.patch_norm.training is False  # original untouched
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.backbone.modules())


def test_the_plan_follows_the_device_the_model_is_on(monkeypatch):
    """Chunks and oneDNN are CPU tricks: a model on a GPU (read from its
    weights, not from the host) and an exported graph get neither."""
    import gtpt_mmpose.deploy.prepare as prepare
    monkeypatch.setattr(prepare, 'mkl_is_slow', lambda: True)
    assert inference_plan('cpu') == InferencePlan(4, True, True)
    assert inference_plan(torch.device('cuda',
                                       1)) == InferencePlan(None, False, True)
    assert inference_plan('cpu', 'export') == InferencePlan()
    monkeypatch.setattr(prepare, 'mkl_is_slow', lambda: False)
    assert inference_plan('cpu') == InferencePlan(4, False, True)
    seen = []
    real_plan = prepare.inference_plan
    monkeypatch.setattr(
        prepare, 'inference_plan',
        lambda d, b: seen.append(torch.device(d)) or real_plan('cuda', b))
    model = prepare_for_inference(build('gtpt-t_coco'))
    assert seen == [torch.device('cpu')]  # asked with the weights' device
    assert not isinstance(model.backbone.stem, BatchChunks)  # and obeyed
    with pytest.raises(ValueError, match='whole batches'):
        prepare_for_inference(
            build('gtpt-t_coco'), 'export', InferencePlan(4, False))


@pytest.mark.parametrize('widths, shuffled, units', [([64, 64], True, 3),
                                                     ([128, 128], True, 3),
                                                     ([256], False, 2)])
def test_piece_plan_reads_every_channel_exactly_once(widths, shuffled, units):
    plan = plan_pieces(widths, shuffled, units)
    width = sum(widths) if shuffled else widths[0]
    sources = list(widths) + [width // 2] * units
    for cuts, n in zip(plan.cuts, sources):  # each source cut, no overlap
        assert sorted(c for cut in cuts for c in cut) == list(range(n))
    pieces = [c for cuts in plan.cuts for c in cuts]
    reads = [i for r in plan.reads for i in r] + plan.out_reads
    assert sorted(reads) == list(range(len(pieces)))  # each piece read once
    for k, (r, order) in enumerate(zip(plan.reads, plan.read_order)):
        assert sorted(order) == list(range(width // 2))
        # a unit reads only what the steps before it made
        assert all(i < sum(map(len, plan.cuts[:len(widths) + k])) for i in r)
    assert sorted(plan.out_order) == list(range(width))


def _random_bn_stage(stage: nn.Module) -> nn.Module:
    for bn in stage.modules():
        if isinstance(bn, nn.BatchNorm2d):
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 2.0)
            nn.init.normal_(bn.weight)
            nn.init.normal_(bn.bias)
    fold_conv_batchnorms(stage.eval())
    return stage


@pytest.mark.parametrize('stem', ['shuffle-stem', 'u-shaped-up-stage'])
def test_shuffle_free_stage_is_the_stage_with_its_channels_reordered(stem):
    torch.manual_seed(0)
    if stem == 'shuffle-stem':  # stride-2 unit, three stride-1 units
        stage, x = ShuffleStem(256).layer, torch.randn(2, 64, 32, 24)
    else:  # a 1x1 convolution, two stride-1 units (GTPT-B's last)
        stage, x = UShapedShuffleStem().up_layer2, torch.randn(2, 512, 16, 12)
    stage = _random_bn_stage(stage)
    with torch.no_grad():
        ref = stage(x)
        free = ShuffleFreeStage(stage[0], copy.deepcopy(stage[1:]))
        got = free(x)
    assert got.shape == ref.shape
    torch.testing.assert_close(got, ref[:, free.out_order])
    assert len(free.out_order) == ref.shape[1]


def test_batch_chunks_run_a_module_on_parts_of_the_batch():
    calls = []
    inner = nn.Identity()
    inner.register_forward_hook(lambda m, a, o: calls.append(a[0].shape[0]))
    x = torch.randn(9, 3)
    assert torch.equal(BatchChunks(inner, 4)(x), x)
    assert calls == [4, 4, 1]


def test_prepare_refuses_a_model_that_is_not_gtpt():
    from mmpose.models import TopdownPoseEstimator
    model = TopdownPoseEstimator(
        backbone=dict(type='ResNet', depth=18),
        head=dict(type='HeatmapHead', in_channels=512, out_channels=17))
    with pytest.raises(TypeError, match='needs a GTPT backbone'):
        prepare_for_inference(model)
    with pytest.raises(ValueError, match='backend must be one of'):
        prepare_for_inference(build('gtpt-t_coco'), 'tensorrt')


def test_the_prepared_model_compiles_without_graph_breaks():
    """torch.compile traces the whole inference path as one graph, so it can
    optimise (and, with freezing, prepack) all of it."""
    model = ImageToSimCC(prepare_for_inference(build('gtpt-t_coco-wholebody')))
    torch._dynamo.reset()
    with torch.no_grad():
        explained = torch._dynamo.explain(model)(torch.randn(1, 3, 256, 192))
    assert explained.graph_break_count == 0, explained.break_reasons
    assert explained.graph_count == 1


@pytest.mark.parametrize('shared_slots', [(2, 3, 4, 5), (0, 5, 6, 11)])
def test_heads_in_channels_attention_gives_the_same_outputs_and_logits(
        shared_slots):
    """The export's 3-D attention (heads kept in the channels) is the same
    product as the model's, for plain and group attention, the pruning logits
    included; the modules are as they were afterwards."""
    torch.manual_seed(0)
    plain = Attention(48, 4).eval()
    group = GroupAttention(48, 4, 4, shared_slots).eval()  # 3 groups, 4 slots
    x, xg = torch.randn(2, 9, 48), torch.randn(2, 3, 10, 48)
    blocks = nn.ModuleList([Block(48, 4, 3), Block(48, 4, 3, 4, shared_slots)])
    blocks[0].attn, blocks[1].attn = plain, group
    with torch.no_grad():
        expected = [plain(x, 3), group(xg, 2), plain(x), group(xg)]
        with heads_in_channels(blocks):
            assert type(blocks[0].attn) is HeadsInChannelsAttention
            assert type(blocks[1].attn) is HeadsInChannelsGroupAttention
            attn = [b.attn for b in blocks]
            got = [attn[0](x, 3), attn[1](xg, 2), attn[0](x), attn[1](xg)]
    assert blocks[0].attn is plain and blocks[1].attn is group
    for (out, logits), (ref_out, ref_logits) in zip(got, expected):
        torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-6)
        if ref_logits is None:
            assert logits is None
        else:  # (B, heads, 3, 6) and (B, G, heads, 2, 6)
            torch.testing.assert_close(logits, ref_logits)


def test_heads_in_channels_restores_the_modules_after_an_error():
    model = Block(48, 4, 3)
    with pytest.raises(RuntimeError, match='inside'):
        with heads_in_channels(model):
            raise RuntimeError('inside')
    assert type(model.attn) is Attention
