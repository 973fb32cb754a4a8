"""The public contract (issue 8): converted authors' checkpoints reproduce
the authors' raw logits."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from conftest import FIXTURES, PARITY_FIXTURES, config_file, fixture_input


@pytest.mark.parametrize('name', PARITY_FIXTURES)
def test_converted_checkpoint_reproduces_authors_logits(name, converted):
    from mmpose.apis import init_model

    ckpt = converted(name)
    model = init_model(config_file(name), ckpt, device='cpu')
    model.eval()
    # init_model loads non-strictly; the converted file must fit exactly
    state = torch.load(ckpt, weights_only=True)['state_dict']
    assert set(state) == set(model.state_dict())
    x = fixture_input(name)
    with torch.no_grad():
        pred_x, pred_y = model.head.forward(model.extract_feat(x))
    meta = json.load(open(osp.join(FIXTURES, name, 'meta.json')))
    n, k = meta['output_shapes'][0][:2]
    assert tuple(pred_x.shape) == (n, k, 384) and tuple(
        pred_y.shape) == (n, k, 512)
    expected_x = np.load(osp.join(FIXTURES, name, 'expected_pred_x.npy'))
    expected_y = np.load(osp.join(FIXTURES, name, 'expected_pred_y.npy'))
    assert np.abs(pred_x.numpy() - expected_x).max() < 1e-4
    assert np.abs(pred_y.numpy() - expected_y).max() < 1e-4


def test_trained_branch_is_not_what_gets_converted(converted):
    """The fixtures' two branches differ; converting the non-EMA branch must
    fail parity."""
    import make_checkpoint
    from mmengine.config import Config
    from mmpose.registry import MODELS

    from gtpt_mmpose.converters import convert_official_state_dict

    name = 'gtpt-t_coco'
    sd = {
        k: torch.from_numpy(v)
        for k, v in make_checkpoint.make_state_dict(osp.join(FIXTURES,
                                                             name)).items()
    }
    live_only = {k: v for k, v in sd.items() if not k.startswith('ema_')}
    model = MODELS.build(Config.fromfile(config_file(name)).model).eval()
    model.load_state_dict(convert_official_state_dict(live_only))
    with torch.no_grad():
        pred_x, _ = model.head.forward(model.extract_feat(fixture_input(name)))
    expected_x = np.load(osp.join(FIXTURES, name, 'expected_pred_x.npy'))
    assert np.abs(pred_x.numpy() - expected_x).max() > 1e-2
