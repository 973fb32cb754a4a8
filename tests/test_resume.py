"""Interrupted training (issues 5, 6 and 16): a run killed with SIGKILL
between two checkpoints, or while it writes one, resumes with --resume and
ends with the weights of an uninterrupted run."""
import os
import os.path as osp
import select
import signal
import subprocess
import sys

import pytest
import torch
from conftest import REPO, python_env

OPTIONS = [
    'train_cfg.max_epochs=6', 'train_cfg.val_interval=100',
    'default_hooks.checkpoint.interval=2', 'randomness.deterministic=True'
]


def command(work, *extra, config='configs/gtpt-t_coco_mini.py', options=()):
    """``mim train`` of the stage-1 mini config for 6 epochs (one iteration
    each), a checkpoint every 2."""
    return [
        sys.executable, '-m', 'mim', 'train', 'gtpt_mmpose', config,
        '--work-dir',
        str(work), *extra, '--cfg-options', *OPTIONS, *options
    ]


def train(work, *extra, options=()) -> str:
    """Run the training to its end; returns its output."""
    proc = subprocess.run(
        command(work, *extra, options=options),
        cwd=REPO,
        env=dict(python_env(), OMP_NUM_THREADS='1'),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:]
    return proc.stdout


def train_and_kill(tmp_path,
                   work,
                   options,
                   *,
                   saving: str = None,
                   after_iter: int = None) -> None:
    """Run the training with ``tests/helpers/stall_training.py`` stalling it
    while it saves checkpoint ``saving`` or once iteration ``after_iter`` is
    done, wait for its signal that it is there, then SIGKILL it (its whole
    process group). The run cannot move on while the test waits, so what is
    on disk afterwards does not depend on timing; the timeout only guards
    against a run that never gets there."""
    config, fifo, log = (tmp_path / 'stalling.py', tmp_path / 'stalled',
                         tmp_path / 'stalling.log')
    config.write_text(f"_base_ = ['{REPO}/configs/gtpt-t_coco_mini.py']\n"
                      "custom_imports = dict(imports=['gtpt_mmpose', "
                      "'stall_training'], allow_failed_imports=False)\n")
    if saving:
        stall, expected = dict(GTPT_STALL_SAVE=saving), f'saving {saving}\n'
    else:
        stall = dict(GTPT_STALL_AFTER_ITER=str(after_iter))
        expected = f'after iteration {after_iter}\n'
    os.mkfifo(fifo)
    # read-write: the run's open for writing never waits, and no EOF
    signal_fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
    env = dict(
        python_env(),
        OMP_NUM_THREADS='1',
        GTPT_STALL_SIGNAL=str(fifo),
        PYTHONPATH=osp.join(REPO, 'tests', 'helpers') + os.pathsep +
        os.environ.get('PYTHONPATH', ''),
        **stall)
    with open(log, 'w') as out:
        proc = subprocess.Popen(
            command(work, config=str(config), options=options),
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True)
    ended = os.pidfd_open(proc.pid)  # readable once the run has ended
    try:
        ready = select.select([signal_fd, ended], [], [], 600)[0]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if signal_fd not in ready:
            pytest.fail(('the run ended before it stalled' if ready else
                         'the run did not stall within 10 minutes') + '\n' +
                        log.read_text()[-3000:])
        assert os.read(signal_fd, 4096).decode() == expected
    finally:
        os.close(signal_fd)
        os.close(ended)


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
    # killed in epoch 5, after its update: between the checkpoints of epochs
    # 4 and 6, with work done since the last one
    train_and_kill(tmp_path, cut, options, after_iter=5)
    assert sorted(p for p in os.listdir(cut)
                  if p.endswith('.pth')) == ['epoch_2.pth', 'epoch_4.pth']
    assert not [p for p in os.listdir(cut) if p.endswith('.partial')]
    assert (cut / 'last_checkpoint').read_text() == str(cut / 'epoch_4.pth')
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
    cut = tmp_path / 'cut'
    options = ['default_hooks.checkpoint.max_keep_ckpts=1']
    # killed while epoch_4.pth is written
    train_and_kill(tmp_path, cut, options, saving='epoch_4.pth')
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
