"""Bad model configs fail when the model is built, with a message naming the
field (issue 8)."""
import pytest
from conftest import config_file


def build(**backbone):
    from mmengine.config import Config
    from mmpose.registry import MODELS
    cfg = Config.fromfile(config_file('gtpt-t_coco-wholebody'))
    cfg.model.backbone.update(backbone)
    return MODELS.build(cfg.model)


@pytest.mark.parametrize('ratios, message', [
    ((1.0, 0.7, 0.5, 0.0), r'keep_ratios must be four values in \(0, 1\]'),
    ((1.0, 1.2, 0.5, 0.3), r'keep_ratios must be four values in \(0, 1\]'),
    ((1.0, 0.7, 0.5), r'keep_ratios must be four values'),
    ((1.0, 0.5, 0.7, 0.3), 'keep_ratios must not increase'),
    ((1.0, 0.7, 0.5, 0.1),
     'keep_ratios keep .* no visual token for a group with 68 dense keypoints'
     ),
])
def test_invalid_keep_ratios_are_refused(ratios, message):
    with pytest.raises(ValueError, match=message):
        build(keep_ratios=ratios)


def test_groups_must_cover_every_keypoint_exactly_once():
    groups = [
        list(range(0, 5)) + list(range(23, 91)),
        list(range(5, 11)) + list(range(91, 133)),
        list(range(11, 17)) + list(range(17, 23))
    ]
    build(keypoint_groups=groups)  # the rule's own groups, given explicitly
    with pytest.raises(
            ValueError,
            match="keypoint_groups: keypoints 'right_heel' are in no group"):
        build(keypoint_groups=[groups[0], groups[1], groups[2][:-1]])
    with pytest.raises(
            ValueError,
            match="keypoint_groups: keypoints 'left_shoulder' appear more "
            'than once'):
        build(keypoint_groups=[groups[0] + [5], groups[1], groups[2]])
    with pytest.raises(
            ValueError,
            match=r'keypoint_groups\[0\]: keypoint id 140 is outside 0..132'):
        build(keypoint_groups=[groups[0] + [140], groups[1], groups[2]])
    with pytest.raises(
            ValueError,
            match="keypoint_groups\\[2\\]: no keypoint is named 'tail'"):
        build(keypoint_groups=[groups[0], groups[1], groups[2] + ['tail']])
    with pytest.raises(
            ValueError, match="the 'face' keypoints must all be in one group"):
        build(keypoint_groups=[groups[0][:-1], groups[1] + [90], groups[2]])
    with pytest.raises(ValueError, match='has only dense keypoints'):
        build(keypoint_groups=[
            groups[0] + groups[1][:6], groups[1][6:], groups[2]
        ])


def test_keypoint_count_must_match_the_metainfo():
    with pytest.raises(
            ValueError,
            match='a GTPT with 21 keypoints needs its data set\'s metainfo: '
            'set model.backbone.metainfo'):
        build(num_keypoints=21)
    with pytest.raises(
            ValueError,
            match="num_keypoints is 14, but its metainfo 'configs/_base_/"
            "datasets/mpii.py' has 16 keypoints"):
        build(num_keypoints=14, metainfo='configs/_base_/datasets/mpii.py')


def test_a_layout_the_rule_cannot_group_names_the_key_to_set():
    """Hands have no upper/lower types: one error naming keypoint_groups,
    with an example that builds."""
    hand = dict(
        num_keypoints=21,
        metainfo='configs/_base_/datasets/'
        'onehand10k.py',
        dense_parts={})
    with pytest.raises(ValueError) as info:
        build(**hand)
    message = str(info.value)
    assert "'wrist', 'thumb1', 'thumb2', 'thumb3' and 17 more have no" in \
        message
    example = message.split('keypoint_groups=')[-1]
    assert example == ('[list(range(0, 7)), list(range(7, 14)), '
                       'list(range(14, 21))]')
    build(**hand, keypoint_groups=eval(example))


def test_unknown_arch_is_refused():
    with pytest.raises(
            ValueError, match="arch must be one of \\['b', 's', 't'\\]"):
        build(arch='xl')


def test_a_model_whose_keypoint_count_differs_from_the_datasets_is_refused():
    from types import SimpleNamespace

    from gtpt_mmpose.engine import KeypointCountCheckHook
    model = build()  # 133 keypoints
    coco = SimpleNamespace(metainfo=dict(num_keypoints=17))
    runner = SimpleNamespace(
        model=model, train_dataloader=SimpleNamespace(dataset=coco))
    with pytest.raises(
            ValueError,
            match='model.backbone.num_keypoints is 133, '
            'but the training data set .* 17'):
        KeypointCountCheckHook().before_train(runner)
    runner.train_dataloader.dataset = SimpleNamespace(
        metainfo=dict(num_keypoints=133))
    KeypointCountCheckHook().before_train(runner)  # matching counts pass
