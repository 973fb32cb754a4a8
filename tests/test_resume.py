"""Interrupted training (issues 5, 6 and 16): a run killed with SIGKILL
between two checkpoints, or while it writes one, resumes with --resume and
ends with the weights of an uninterrupted run."""
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import REPO, python_env

OPTIONS = [
    'train_cfg.max_epochs=6', 'train_cfg.val_interval=100',
    'default_hooks.checkpoint.interval=2', 'randomness.deterministic=True'
]


def train(work,
          *extra,
          config='configs/gtpt-t_coco_mini.py',
          options=(),
          env=None,
          wait=True):
    """``mim train`` of the stage-1 mini config for 6 epochs (one iteration
    each), a checkpoint every 2; returns the output, or the process."""
    cmd = [
        sys.executable, '-m', 'mim', 'train', 'gtpt_mmpose', config,
        '--work-dir',
        str(work), *extra, '--cfg-options', *OPTIONS, *options
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        env=dict(python_env(), OMP_NUM_THREADS='1', **(env or {})),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True)
    if wait:
        out = proc.communicate(timeout=900)[0]
        assert proc.returncode == 0, out[-3000:]
        return out
    return proc


def kill_when(proc, done) -> None:
    """SIGKILL the run (its whole process group) once ``done()`` holds."""
    deadline = time.time() + 600
    while not done() and time.time() < deadline:
        time.sleep(0.2)
        assert proc.poll() is None, 'the run ended before it could be killed'
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def load(path) -> dict:
    return torch.load(path, map_location='cpu', weights_only=True)


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory) -> dict:
    """The final checkpoint of the run, never interrupted."""
    work = tmp_path_factory.mktemp('full')
    train(work, options=['default_hooks.checkpoint.max_keep_ckpts=5'])
    return load(work / 'epoch_6.pth')


def assert_same_run(final: dict, reference: dict) -> None:
    """Same weights, EMA, schedulers and optimizer state at the end."""
    assert final['meta']['iter'] == reference['meta']['iter'] == 6
    assert int(final['ema_state_dict']['steps']) == int(
        reference['ema_state_dict']['steps']) == 6
    assert final['param_schedulers'] == reference['param_schedulers']
    for key in ('state_dict', 'ema_state_dict'):
        for name, value in reference[key].items():
            assert torch.equal(final[key][name], value), f'{key}.{name}'
    ref_opt, opt = reference['optimizer']['state'], final['optimizer']['state']
    assert ref_opt.keys() == opt.keys()
    for i in ref_opt:
        assert all(
            torch.equal(opt[i][k], ref_opt[i][k])
            for k in ('exp_avg', 'exp_avg_sq'))


@pytest.mark.slow
def test_killed_run_resumes_and_matches_an_uninterrupted_run(
        tmp_path, uninterrupted):
    cut = tmp_path / 'cut'
    options = ['default_hooks.checkpoint.max_keep_ckpts=5']
    proc = train(cut, options=options, wait=False)
    # killed between epochs 4 and 6; saves are atomic, so the name appears
    # only once the file is complete
    kill_when(proc, lambda: (cut / 'epoch_4.pth').exists())
    assert not (cut / 'epoch_6.pth').exists()
    assert load(cut / 'epoch_4.pth')['meta']['iter'] == 4

    out = train(cut, '--resume', options=options)
    assert 'resumed epoch: 4, iter: 4' in out
    assert_same_run(load(cut / 'epoch_6.pth'), uninterrupted)


@pytest.mark.slow
def test_a_run_killed_while_it_saves_resumes_from_its_last_checkpoint(
        tmp_path, uninterrupted):
    """max_keep_ckpts=1, as in every full config: with MMEngine's own hook
    epoch_2.pth is removed before epoch_4.pth is written, so a kill during
    that write leaves nothing to resume from."""
    cut, marker = tmp_path / 'cut', tmp_path / 'saving_epoch_4'
    helpers = osp.join(REPO, 'tests', 'helpers')
    stall = dict(
        GTPT_STALL_SAVE='epoch_4.pth',
        GTPT_STALL_MARKER=str(marker),
        PYTHONPATH=helpers + os.pathsep + os.environ.get('PYTHONPATH', ''))
    config = tmp_path / 'stalling_save.py'
    config.write_text(
        f"_base_ = ['{REPO}/configs/gtpt-t_coco_mini.py']\n"
        "custom_imports = dict(imports=['gtpt_mmpose', "
        "'stall_checkpoint_save'], allow_failed_imports=False)\n")
    options = ['default_hooks.checkpoint.max_keep_ckpts=1']
    proc = train(
        cut, config=str(config), options=options, env=stall, wait=False)
    kill_when(proc, marker.exists)  # killed while epoch_4.pth is written
    partial = [p for p in os.listdir(cut) if p.endswith('.partial')]
    assert len(partial) == 1 and partial[0].startswith('epoch_4.pth.')
    assert sorted(p for p in os.listdir(cut)
                  if p.endswith('.pth')) == ['epoch_2.pth']
    assert (cut / 'last_checkpoint').read_text() == str(cut / 'epoch_2.pth')

    out = train(cut, '--resume', options=options)
    assert 'resumed epoch: 2, iter: 2' in out
    assert 'Removed unfinished checkpoint files of an interrupted save' in out
    assert not [p for p in os.listdir(cut) if p.endswith('.partial')]
    assert_same_run(load(cut / 'epoch_6.pth'), uninterrupted)
