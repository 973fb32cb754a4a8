"""Fine-tuning across keypoint layouts (COCO into CrowdPose and MPII,
COCO-WholeBody into Halpe) carries over exactly what means the same; a
config, data set or checkpoint of the wrong layout is refused with one
clear error."""
import pytest
import torch
from conftest import config_file
from layout_runs import load_config, short_run

from gtpt_mmpose.engine.curriculum import load_stage1
from gtpt_mmpose.models.checkpoint_fit import CheckpointMismatchError


def build(config: str, **backbone):
    from mmpose.registry import MODELS
    cfg = load_config(config)
    cfg.model.backbone.update(backbone)
    return MODELS.build(cfg.model)


def table_rows(backbone) -> dict:
    """Keypoint table -> the keypoint (or part) name of each of its rows,
    as the model indexes them."""
    keypoints, layout = backbone.keypoints, backbone.layout
    names = keypoints.names
    sparse = {
        layout.sparse_token[k] - layout.num_parts: names[k]
        for k in keypoints.sparse
    }
    dense = {row: names[k] for k, row in layout.dense_table_index.items()}
    rows = dict(keypoint_token=[sparse[i] for i in range(len(sparse))])
    if layout.num_parts:
        rows['part_token'] = [name for name, _ in keypoints.parts]
        rows['dense_keypoint_token'] = [dense[i] for i in range(len(dense))]
    return rows


@pytest.mark.parametrize('target, source, shared', [
    ('gtpt-t_crowdpose', 'gtpt-t_coco', 12),
    ('gtpt-t_mpii', 'gtpt-t_coco', 12),
    ('gtpt-t_halpe', 'gtpt-t_coco-wholebody', 17 + 5 + 116),
])
def test_transferred_weights_are_the_sources_and_the_rest_untouched(
        target, source, shared, converted):
    """Whole tensors equal the source's; keypoint, part and dense keypoint
    token rows equal the source's row of the same name; every other tensor
    and row keeps its initial value."""
    torch.manual_seed(0)
    model = build(target)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = load_stage1(model, converted(source))
    after = model.state_dict()
    checkpoint = torch.load(converted(source), weights_only=True)
    theirs = checkpoint['state_dict']
    their_rows = table_rows(build(source).backbone)
    our_rows = table_rows(model.backbone)
    tables = {'backbone.' + t for t in our_rows}
    new = {entry.split(' ')[0] for entry in report.new}  # "KEY (N rows)"
    assert set(report.transferred) | tables | new == set(after)
    assert not set(report.transferred) & (new | tables)
    for key in report.transferred:
        assert torch.equal(after[key], theirs[key]), key
    for key in new - tables:
        assert torch.equal(after[key], before[key]), key
    taken = 0
    for table, names in our_rows.items():
        key = 'backbone.' + table
        where = {n: j for j, n in enumerate(their_rows[table])}
        for i, name in enumerate(names):
            if name in where:
                taken += 1
                assert torch.equal(after[key][0, i],
                                   theirs[key][0, where[name]]), (key, name)
            else:
                assert torch.equal(after[key][0, i], before[key][0, i])
    assert taken == shared
    # what carries over is most of the model: stem, encoders, classifiers
    assert 'backbone.stem.conv1.0.weight' in report.transferred
    assert 'head.y_fc.weight' in report.transferred
    wide = load_config(target).codec.input_size[0] != 192
    assert ('head.x_fc.weight' in new) == wide  # 2 bins per pixel of width


def test_a_checkpoint_of_another_layout_under_load_from_is_refused(
        converted, tmp_path):
    """COCO's 17 keypoints into CrowdPose's 14: the error names the
    fine-tuning option."""
    from mmengine.runner import Runner
    cfg = short_run(load_config('gtpt-t_crowdpose'), tmp_path)
    cfg.load_from = converted('gtpt-t_coco')
    runner = Runner.from_cfg(cfg)
    with pytest.raises(
            CheckpointMismatchError,
            match=r"does not fit GTPT\(arch='t', num_keypoints=14\).*"
            r'checkpoint: 17 keypoints.*pass it as --cfg-options '
            r'stage1_checkpoint=PATH'):
        runner.train()


def test_a_config_whose_keypoint_count_is_not_its_metainfos_fails_to_build():
    with pytest.raises(
            ValueError,
            match="num_keypoints is 17, but its metainfo 'configs/_base_/"
            "datasets/crowdpose.py' has 14 keypoints: set num_keypoints to "
            "the data set's count"):
        build('gtpt-t_crowdpose', num_keypoints=17)


@pytest.mark.parametrize('model_config, message', [
    ('gtpt-t_mpii', 'model.backbone.num_keypoints is 16, but the training '
     'data set CrowdPoseDataset has 14 keypoints'),
    ('gtpt-t_aic', "the model's keypoint 0 is 'right_shoulder', the "
     "training data set CrowdPoseDataset calls it 'left_shoulder'"),
])
def test_a_model_of_another_layout_than_its_data_is_refused_at_run_start(
        model_config, message, tmp_path):
    """MPII's 16 keypoints, or AIC's 14 in another order, on CrowdPose's
    data: one error before the first iteration, nothing saved."""
    import os

    from mmengine.runner import Runner
    cfg = short_run(load_config('gtpt-t_crowdpose'), tmp_path)
    cfg.model = load_config(model_config).model
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match=message):
        runner.train()
    assert not [f for f in os.listdir(tmp_path) if f.endswith('.pth')]


@pytest.mark.parametrize('change, message', [
    (lambda g: [g[0][1:], g[1], g[2]],
     "keypoint_groups: keypoints 'wrist' are in no group"),
    (lambda g: [g[0], g[1] + ['thumb1'], g[2]],
     "keypoint_groups: keypoints 'thumb1' appear more than once"),
    (lambda g: [g[0], g[1], g[2] + ['little_finger4']],
     "keypoint_groups\\[2\\]: no keypoint is named 'little_finger4'"),
])
def test_hand_groups_that_miss_or_repeat_a_keypoint_are_refused(
        change, message):
    groups = load_config('gtpt-t_onehand10k').keypoint_groups
    build('gtpt-t_onehand10k')  # the config's own groups build
    with pytest.raises(ValueError, match=message):
        build('gtpt-t_onehand10k', keypoint_groups=change(groups))


def test_a_hand_config_without_groups_names_the_key_to_set():
    with pytest.raises(
            ValueError,
            match="'wrist', 'thumb1', 'thumb2', 'thumb3' and 17 more have no "
            r".*Set model.backbone.keypoint_groups.*e.g. keypoint_groups="):
        build('gtpt-t_onehand10k', keypoint_groups=None)


def test_the_fine_tuned_model_is_tested_with_its_own_config(converted):
    """init_model takes the fine-tuning source only as stage1_checkpoint:
    a COCO-WholeBody checkpoint into a Halpe model is refused."""
    from mmpose.apis import init_model
    with pytest.raises(CheckpointMismatchError, match='stage1_checkpoint'):
        init_model(
            config_file('gtpt-t_halpe'),
            converted('gtpt-t_coco-wholebody'),
            device='cpu')
