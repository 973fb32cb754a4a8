"""The first run as users type it (issue 16): `mim train gtpt_mmpose
configs/gtpt-b_coco-wholebody.py`. Missing data is one line naming the path
before MMEngine prints anything; stage 2 finds the best checkpoint of stage
1's default run, says which it took, and without one stops in one line that
gives the command to run first."""
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest
import torch
from conftest import MINI_DATA, config_file, python_env

from gtpt_mmpose.engine.run_checks import RunSetupError
from gtpt_mmpose.launcher import preflight


def mim(*args, cwd, env=None, timeout=900) -> subprocess.CompletedProcess:
    """``python -m mim ARGS`` in ``cwd``; stdout and stderr together."""
    return subprocess.run([sys.executable, '-m', 'mim', *args],
                          cwd=str(cwd),
                          env=dict(
                              python_env(), OMP_NUM_THREADS='1', **(env
                                                                    or {})),
                          stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT,
                          text=True,
                          timeout=timeout)


def our_lines(out: str) -> list:
    return [
        line for line in out.splitlines() if line.startswith('gtpt_mmpose')
    ]


def test_without_data_the_first_command_says_where_the_data_goes(tmp_path):
    out = mim(
        'train',
        'gtpt_mmpose',
        'configs/gtpt-b_coco-wholebody.py',
        cwd=tmp_path).stdout
    assert our_lines(out) == [
        'gtpt_mmpose: data root data/coco/ does not exist (train_dataloader); '
        'put the data there as in the README\'s data layout ("Training on '
        'COCO-WholeBody"), or set GTPT_DATA_ROOT=/path/to/coco'
    ]
    # before MMEngine's environment dump, i.e. before the Runner is built
    assert 'System environment' not in out and 'Config:' not in out


@pytest.mark.parametrize('missing, where', [
    ('annotations/coco_wholebody_train_v1.0.json', 'train_dataloader'),
    ('train2017', 'train_dataloader'),
    ('annotations/coco_wholebody_val_v1.0.json', 'val_dataloader'),
    ('person_detection_results/COCO_val2017_detections_AP_H_56_person.json',
     'val_dataloader'),
])
def test_each_missing_data_file_is_named(missing, where, tmp_path,
                                         monkeypatch):
    root = tmp_path / 'coco'
    shutil.copytree(MINI_DATA, root)
    path = root / missing
    shutil.rmtree(path) if path.is_dir() else path.unlink()
    monkeypatch.setenv('GTPT_DATA_ROOT', str(root))  # without the slash
    with pytest.raises(RunSetupError) as info:
        preflight('train.py', [config_file('gtpt-s_coco-wholebody')])
    what = 'image folder' if missing == 'train2017' else (
        'detection file' if 'detection' in missing else 'annotation file')
    assert str(info.value).startswith(f'{what} {path} does not exist '
                                      f'({where}); put the data there')


def test_test_runs_check_the_test_data(tmp_path, monkeypatch):
    monkeypatch.setenv('GTPT_DATA_ROOT', str(tmp_path / 'nowhere'))
    with pytest.raises(RunSetupError, match=r'\(test_dataloader\)'):
        preflight('test.py', [config_file('gtpt-t_coco'), 'model.pth'])
    monkeypatch.setenv('GTPT_DATA_ROOT', MINI_DATA)
    preflight('test.py', [config_file('gtpt-t_coco'), 'model.pth'])


def test_stage2_without_a_stage1_run_gives_the_command_to_run_first(
        tmp_path, monkeypatch):
    monkeypatch.setenv('GTPT_DATA_ROOT', MINI_DATA)
    monkeypatch.chdir(tmp_path)
    config = config_file('gtpt-b_coco-wholebody')
    with pytest.raises(RunSetupError) as info:
        preflight('train.py', [config])
    assert str(info.value) == (
        'stage 2 (whole body) starts from a stage-1 body model, and there is '
        'no best_coco_AP_epoch_*.pth in work_dirs/gtpt-b_coco/: run `mim '
        'train gtpt_mmpose configs/gtpt-b_coco.py` first (from this folder), '
        'or pass --cfg-options stage1_checkpoint=PATH, or from_scratch=True '
        'to train without it')
    for allowed in (['--cfg-options', 'from_scratch=True'
                     ], ['--cfg-options', 'stage1_checkpoint=body.pth'],
                    ['--resume'], ['--cfg-options', 'load_from=x.pth']):
        preflight('train.py', [config, *allowed])  # no error
    os.makedirs('work_dirs/gtpt-b_coco')
    for epoch in (40, 120, 95):
        open(f'work_dirs/gtpt-b_coco/best_coco_AP_epoch_{epoch}.pth',
             'w').close()
    from mmengine.config import Config

    from gtpt_mmpose.engine.curriculum import stage1_checkpoint_for
    assert stage1_checkpoint_for(Config.fromfile(config)) == (
        'work_dirs/gtpt-b_coco/best_coco_AP_epoch_120.pth')


@pytest.mark.slow
def test_the_whole_curriculum_is_two_commands(tmp_path):
    """Stage 2 refused with the command to run first; that command (shortened
    to 5 epochs); then stage 2 takes stage 1's best checkpoint."""
    env = dict(GTPT_DATA_ROOT=MINI_DATA)  # no trailing slash
    # one iteration per epoch; fewer data-loader processes on 2 cores
    short = [
        '--cfg-options', 'train_dataloader.num_workers=1',
        'val_dataloader.num_workers=1'
    ]
    first = mim(
        'train',
        'gtpt_mmpose',
        'configs/gtpt-t_coco-wholebody.py',
        *short,
        cwd=tmp_path,
        env=env)
    assert first.returncode != 0
    line, = our_lines(first.stdout)
    command = line.split('`')[1]
    assert command == 'mim train gtpt_mmpose configs/gtpt-t_coco.py'
    stage1 = mim(
        *command.split()[1:],
        *short,
        'train_cfg.max_epochs=5',
        cwd=tmp_path,
        env=env)
    assert stage1.returncode == 0, stage1.stdout[-3000:]
    best = 'work_dirs/gtpt-t_coco/best_coco_AP_epoch_5.pth'
    assert osp.isfile(tmp_path / best)
    stage2 = mim(
        'train',
        'gtpt_mmpose',
        'configs/gtpt-t_coco-wholebody.py',
        *short,
        'train_cfg.max_epochs=1',
        cwd=tmp_path,
        env=env)
    assert stage2.returncode == 0, stage2.stdout[-3000:]
    assert f'CurriculumInitHook: stage-1 weights from {best}' in stage2.stdout
    stage2_weights = torch.load(
        tmp_path / 'work_dirs/gtpt-t_coco-wholebody/epoch_1.pth',
        weights_only=True)['state_dict']
    assert stage2_weights['backbone.part_token'].shape[1] == 5


@pytest.mark.parametrize('slash', ['', '/'])
def test_every_config_finds_its_data_with_or_without_the_slash(
        slash, monkeypatch):
    """GTPT_DATA_ROOT=/path/to/coco as the README writes it: the configs used
    to give /path/to/cocoannotations/..."""
    import glob

    from mmengine.config import Config

    from gtpt_mmpose.engine.run_checks import data_paths
    monkeypatch.setenv('GTPT_DATA_ROOT', MINI_DATA + slash)
    paths = glob.glob(config_file('gtpt-*_coco*'))  # the mini set is COCO's
    assert len(paths) == 8
    for path in paths:
        found = list(data_paths(Config.fromfile(path), ['train', 'val']))
        # train and val: root, annotations, images; val boxes (not in the
        # mini configs); the metric's annotations
        assert len(found) == (7 if 'mini' in path else 8), path
        for what, data, where in found:
            assert osp.exists(data), (path, what, data, where)
            assert data.startswith(MINI_DATA), (path, data)
