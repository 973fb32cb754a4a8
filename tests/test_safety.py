"""Hostile checkpoints (issues 2 and 5): every loading path refuses a pickle
that would run code, and the payload never runs."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from conftest import REPO, config_file, python_env

from gtpt_mmpose.compat import restricted_getattr
from gtpt_mmpose.utils.safe_checkpoint import (UnsafeCheckpointError,
                                               load_checkpoint_file)


class _Payload:
    """Unpickling this would create the marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


class _GetattrEscape:
    """A pickle that asks the allowed getattr for something other than a
    statistics method."""

    def __reduce__(self):
        from mmengine.logging.history_buffer import HistoryBuffer
        return getattr, (HistoryBuffer, '__init__')


@pytest.fixture
def hostile(tmp_path, converted):
    """A real converted checkpoint with a payload hidden in its meta; returns
    (path, marker)."""
    marker = str(tmp_path / 'PAYLOAD_RAN')
    ckpt = torch.load(converted('gtpt-t_coco-wholebody'), weights_only=True)
    ckpt['meta']['note'] = _Payload(marker)
    path = str(tmp_path / 'hostile.pth')
    torch.save(ckpt, path)
    return path, marker


def test_safe_loader_refuses_code_and_names_the_file(hostile):
    path, marker = hostile
    with pytest.raises(
            UnsafeCheckpointError,
            match='not plain data.*nothing in it was executed'):
        load_checkpoint_file(path)
    assert not osp.exists(marker)


def test_allowed_getattr_reaches_only_history_buffer_statistics(tmp_path):
    from mmengine.logging.history_buffer import HistoryBuffer
    assert restricted_getattr(HistoryBuffer, 'mean') is HistoryBuffer.mean
    for obj, name in ((HistoryBuffer, '__init__'),
                      (HistoryBuffer, '__class__'), (os, 'system')):
        with pytest.raises(UnsafeCheckpointError):
            restricted_getattr(obj, name)
    path = str(tmp_path / 'getattr.pth')
    torch.save({'x': _GetattrEscape()}, path)
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint_file(path)


def test_init_model_refuses_a_hostile_checkpoint(hostile):
    from mmpose.apis import init_model
    path, marker = hostile
    with pytest.raises(
            Exception, match='Weights only load failed|not plain data'):
        init_model(config_file('gtpt-t_coco-wholebody'), path, device='cpu')
    assert not osp.exists(marker)


def test_inferencer_refuses_a_hostile_checkpoint(hostile):
    from mmpose.apis import MMPoseInferencer
    path, marker = hostile
    with pytest.raises(
            Exception, match='Weights only load failed|not plain data'):
        MMPoseInferencer(
            pose2d=config_file('gtpt-t_coco-wholebody'),
            pose2d_weights=path,
            det_model='whole_image',
            device='cpu')
    assert not osp.exists(marker)


def test_stage1_loading_refuses_a_hostile_checkpoint(hostile):
    from mmengine.config import Config
    from mmpose.registry import MODELS

    from gtpt_mmpose.engine.curriculum import load_stage1
    path, marker = hostile
    model = MODELS.build(
        Config.fromfile(config_file('gtpt-t_coco-wholebody')).model)
    with pytest.raises(UnsafeCheckpointError):
        load_stage1(model, path)
    assert not osp.exists(marker)


def test_converter_refuses_a_hostile_authors_checkpoint(tmp_path):
    marker, src, dst = (
        str(tmp_path / n) for n in ('PAYLOAD_RAN', 'authors.pth', 'out.pth'))
    torch.save(
        {
            'ema_features.human_token': torch.zeros(1, 1, 128),
            'evil': _Payload(marker)
        }, src)
    proc = subprocess.run([
        sys.executable,
        osp.join(REPO, 'tools', 'convert_official_checkpoint.py'), src, dst
    ],
                          cwd=REPO,
                          env=python_env(),
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode != 0 and 'not plain data' in proc.stderr
    assert not osp.exists(marker) and not osp.exists(dst)


@pytest.mark.slow
def test_resume_refuses_a_hostile_last_checkpoint(tmp_path, hostile):
    path, marker = hostile
    work = tmp_path / 'work'
    work.mkdir()
    ckpt = str(work / 'epoch_1.pth')
    os.replace(path, ckpt)
    (work / 'last_checkpoint').write_text(ckpt)
    proc = subprocess.run([
        sys.executable, '-m', 'mim', 'train', 'gtpt_mmpose',
        'configs/gtpt-t_coco-wholebody_mini.py', '--work-dir',
        str(work), '--resume', '--cfg-options', 'train_cfg.max_epochs=2'
    ],
                          cwd=REPO,
                          env=python_env(),
                          capture_output=True,
                          text=True,
                          timeout=600)
    assert proc.returncode != 0
    assert 'holds objects that are not plain data' in proc.stdout + proc.stderr
    assert not osp.exists(marker)
