"""A checkpoint of another variant or keypoint count is refused where it is
loaded (issue 5): MMEngine's non-strict loading would only log a warning and
run with random weights."""
import pytest
import torch
from conftest import config_file

from gtpt_mmpose.models.checkpoint_fit import CheckpointMismatchError


def init(config: str, checkpoint: str):
    from mmpose.apis import init_model
    return init_model(config_file(config), checkpoint, device='cpu')


def test_a_checkpoint_of_another_variant_is_refused(converted):
    with pytest.raises(
            CheckpointMismatchError,
            match=r"does not fit GTPT\(arch='t', num_keypoints=133\)"
            r'.*has shape .*192.*expects .*128.*'
            r'checkpoint: 133 keypoints, 192 channels, U-shaped stem'
            r'.*another variant'):
        init('gtpt-t_coco-wholebody', converted('gtpt-b_coco-wholebody'))


def test_a_body_checkpoint_is_refused_by_a_wholebody_model(converted):
    with pytest.raises(
            CheckpointMismatchError,
            match=r'lacks backbone.part_token, backbone.dense_keypoint_token '
            r'\(checkpoint: 17 keypoints.*stage1_checkpoint'):
        init('gtpt-t_coco-wholebody', converted('gtpt-t_coco'))


def test_a_wholebody_checkpoint_is_refused_by_a_body_model(converted):
    with pytest.raises(
            CheckpointMismatchError,
            match=r'num_keypoints=17\): it has backbone.part_token, '
            r'backbone.dense_keypoint_token, which the model lacks'):
        init('gtpt-t_coco', converted('gtpt-t_coco-wholebody'))


def test_a_checkpoint_without_head_weights_is_refused(converted, tmp_path):
    ckpt = torch.load(converted('gtpt-t_coco'), weights_only=True)
    ckpt['state_dict'] = {
        k: v
        for k, v in ckpt['state_dict'].items() if not k.startswith('head.')
    }
    path = str(tmp_path / 'no_head.pth')
    torch.save(ckpt, path)
    with pytest.raises(
            CheckpointMismatchError,
            match=r'does not fit GTPTHead.*lacks head\.x_norm\.weight'):
        init('gtpt-t_coco', path)


def test_the_matching_checkpoint_loads_every_weight(converted):
    model = init('gtpt-t_coco-wholebody', converted('gtpt-t_coco-wholebody'))
    saved = torch.load(
        converted('gtpt-t_coco-wholebody'), weights_only=True)['state_dict']
    for name, value in model.state_dict().items():
        assert torch.equal(value, saved[name]), name
