"""The data-set configs end to end (slow): a short GTPT-T run learns MPII's
and OneHand10K's test images, `mim train` and `mim test` run a config on its
test data, every T, S and B config trains and tests, GTPT-B exports at
256x256."""
import math
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO, config_file, python_env
from layout_runs import (DATASETS, LAYOUT_CONFIGS, data_root, dataset_of,
                         last_checkpoint, load_config, short_run)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures('one_torch_thread')]

# data set -> the metric key its PCK is under, and that metric's full scale
# (MpiiPCKAccuracy reports percent)
PCK = {'mpii': ('PCK', 100.0), 'onehand10k': ('PCK', 1.0)}
# people in each test set: one batch holds them all
PEOPLE = {'mpii': 5, 'onehand10k': 4}


def learning_config(dataset: str, work_dir, epochs: int):
    """gtpt-t_<data set> with the short schedule of gtpt-t_coco_mini.py
    (``make demo``), trained and tested on the same images:

    * no augmentation (flip, half-body, scale, rotation off), so no flip
      test; ground-truth boxes;
    * lr 2e-3 for the whole schedule; EMA decay 0.9 on a cosine stretched
      over 10k iterations (the authors' would freeze the average of a run
      this short);
    * one batch holds the whole set; no worker processes.
    """
    cfg = load_config(f'gtpt-t_{dataset}')
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'learn_{dataset}'
    cfg.train_cfg = dict(by_epoch=True, max_epochs=epochs, val_interval=10**9)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.param_scheduler = []
    cfg.optim_wrapper.optimizer.lr = 2e-3
    cfg.model.test_cfg.flip_test = False
    cfg.train_dataloader.dataset.pipeline = [
        dict(type='LoadImageAsBGR', color_type='color_ignore_orientation'),
        dict(type='GetBBoxCenterScale', padding=1.25),
        dict(type='TopdownAffine', input_size=cfg.codec.input_size),
        dict(type='GenerateTarget', encoder=cfg.codec),
        dict(type='PackPoseInputs'),
    ]
    for loader in (cfg.train_dataloader, cfg.test_dataloader):
        loader.update(
            batch_size=PEOPLE[dataset],
            num_workers=0,
            persistent_workers=False)
    ema, = [h for h in cfg.custom_hooks if h.type == 'GTPTEMAHook']
    ema.update(momentum_start=0.9, total_iters=10000)
    cfg.default_hooks.checkpoint.update(
        interval=epochs, save_best=None, max_keep_ckpts=1)
    cfg.default_hooks.logger.interval = 20
    return cfg


# OneHand10K's EMA reaches the trained weights later: PCK 0.62 at epoch 200,
# 1.0 at 250 and 300 (validated every 50 epochs)
@pytest.mark.parametrize('dataset, epochs', [('mpii', 200),
                                             ('onehand10k', 300)])
def test_a_short_run_learns_the_images_it_trains_on(dataset, epochs, tmp_path,
                                                    capsys):
    """PCK on the training images (PCKh@0.5 for MPII, PCK@0.2 of the box
    for OneHand10K) goes from a fresh model's to at least 0.8; the
    inferencer then draws keypoints on the image."""
    import mmcv
    from mmengine.runner import Runner
    from mmpose.apis import MMPoseInferencer
    key, scale = PCK[dataset]
    fresh = Runner.from_cfg(learning_config(dataset, tmp_path / 'fresh', 1))
    before = fresh.test()[key] / scale
    runner = Runner.from_cfg(
        learning_config(dataset, tmp_path / 'trained', epochs))
    runner.train()
    after = runner.test()[key] / scale
    with capsys.disabled():
        print(f'\n{dataset}: PCK {before:.3f} (fresh) -> {after:.3f} after '
              f'{epochs} epochs')
    assert before < 0.8 <= after, (before, after)

    # the trained model's keypoints, drawn by MMPose's inferencer
    inferencer = MMPoseInferencer(
        pose2d=config_file(f'gtpt-t_{dataset}'),
        pose2d_weights=last_checkpoint(tmp_path / 'trained'),
        det_model='whole_image',
        device='cpu')
    images = {
        'mpii': 'images/052475643.jpg',  # one person fills the image
        'onehand10k': '9.jpg'
    }
    path = osp.join(data_root(dataset), images[dataset])
    result = next(inferencer(path, return_vis=True))
    drawn = result['visualization'][0]
    assert (drawn != mmcv.imread(path, channel_order='rgb')).any()


def mim(*args, cwd, env: dict) -> subprocess.CompletedProcess:
    """``python -m mim ARGS``; stdout and stderr together."""
    return subprocess.run([sys.executable, '-m', 'mim', *args],
                          cwd=str(cwd),
                          env=dict(python_env(), OMP_NUM_THREADS='1', **env),
                          stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT,
                          text=True,
                          timeout=900)


def test_mim_train_and_test_run_a_config_on_its_test_data(tmp_path):
    """`mim train gtpt_mmpose gtpt-t_mpii.py` (one epoch) and `mim test`,
    which prints MPII's PCKh; the data root from GTPT_DATA_ROOT."""
    env = dict(GTPT_DATA_ROOT=data_root('mpii'))
    loaders = [
        f'{loader}.{key}'
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
        for key in ('num_workers=0', 'persistent_workers=False')
    ]
    train = mim(
        'train',
        'gtpt_mmpose',
        'gtpt-t_mpii.py',
        '--work-dir',
        'work',
        '--cfg-options',
        'train_cfg.max_epochs=1',
        'train_dataloader.batch_size=3',
        *loaders,
        cwd=tmp_path,
        env=env)
    assert train.returncode == 0, train.stdout[-3000:]
    assert osp.isfile(tmp_path / 'work' / 'epoch_1.pth')
    test = mim(
        'test',
        'gtpt_mmpose',
        'gtpt-t_mpii.py',
        '--checkpoint',
        'work/epoch_1.pth',
        '--cfg-options',
        *loaders[-2:],
        cwd=tmp_path,
        env=env)
    assert test.returncode == 0, test.stdout[-3000:]
    assert 'Evaluating MpiiPCKAccuracy' in test.stdout
    for key in ('Head PCK', 'PCK', 'PCK@0.1'):
        assert f'{key}: ' in test.stdout, test.stdout[-2000:]


@pytest.mark.parametrize(
    'config', [c for c in LAYOUT_CONFIGS if not c.startswith('gtpt-t_')])
def test_s_and_b_configs_train_and_test_with_their_metric(config, tmp_path):
    """Two iterations of the config's own model through MMPose's data set
    class, then its metric (GTPT-T: tests/test_layouts.py)."""
    from mmengine.runner import Runner
    runner = Runner.from_cfg(
        short_run(
            load_config(config),
            tmp_path,
            options=dict(experiment_name=config)))
    runner.train()
    metrics = runner.test()
    for key in DATASETS[dataset_of(config)][1]:
        assert math.isfinite(metrics[key]), (key, metrics)


def test_gtpt_b_exports_at_256x256(tmp_path):
    """GTPT-B's U-shaped stem on the padded 264-pixel width, in ONNX
    Runtime and OpenVINO."""
    import importlib.util

    from mmpose.registry import MODELS
    torch.manual_seed(0)
    cfg = load_config('gtpt-b_mpii')
    model = MODELS.build(cfg.model)
    from mmpose.registry import DATASETS as MMPOSE_DATASETS
    meta = MMPOSE_DATASETS.build(cfg.train_dataloader.dataset).metainfo
    checkpoint = str(tmp_path / 'gtpt-b_mpii.pth')
    torch.save(
        dict(state_dict=model.state_dict(), meta=dict(dataset_meta=meta)),
        checkpoint)
    path = osp.join(REPO, 'tools', 'deploy', 'export_onnx.py')
    spec = importlib.util.spec_from_file_location('export_onnx', path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    diffs = tool.export(
        config_file('gtpt-b_mpii'),
        checkpoint,
        str(tmp_path / 'b.onnx'),
        image=osp.join(data_root('mpii'), 'images', '005808361.jpg'))
    assert set(diffs) == {'onnxruntime', 'openvino'}
    assert max(diffs.values()) < 1e-3, diffs
    assert np.isfinite(list(diffs.values())).all()
