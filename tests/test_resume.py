"""Interrupted training (issues 5 and 6): a run killed with SIGKILL between two
checkpoints resumes with --resume from its last checkpoint and ends with the
weights of an uninterrupted run."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import REPO, python_env

OPTIONS = [
    'train_cfg.max_epochs=6', 'train_cfg.val_interval=100',
    'default_hooks.checkpoint.interval=2',
    'default_hooks.checkpoint.max_keep_ckpts=5',
    'randomness.deterministic=True'
]


def train(work, *extra, wait=True):
    cmd = [
        sys.executable, '-m', 'mim', 'train', 'gtpt_mmpose',
        'configs/gtpt-t_coco_mini.py', '--work-dir',
        str(work), *extra, '--cfg-options', *OPTIONS
    ]
    env = dict(python_env(), OMP_NUM_THREADS='1')
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True)
    if wait:
        out = proc.communicate(timeout=900)[0]
        assert proc.returncode == 0, out[-3000:]
        return out
    return proc


@pytest.mark.slow
def test_killed_run_resumes_and_matches_an_uninterrupted_run(tmp_path):
    full = tmp_path / 'full'
    train(full)

    cut = tmp_path / 'cut'
    proc = train(cut, wait=False)
    deadline = time.time() + 600
    while not (cut / 'epoch_4.pth').exists() and time.time(
    ) < deadline:  # killed between epochs 4 and 6
        time.sleep(0.2)
        assert proc.poll() is None, 'the run ended before it could be killed'
    time.sleep(
        0.5
    )  # let the checkpoint file be complete (MMEngine writes it in one call)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (cut / 'epoch_6.pth').exists()
    saved = torch.load(
        cut / 'epoch_4.pth', map_location='cpu', weights_only=True)

    out = train(cut, '--resume')
    assert 'resumed' in out.lower()
    final, reference = (
        torch.load(d / 'epoch_6.pth', map_location='cpu', weights_only=True)
        for d in (cut, full))
    assert saved['meta']['iter'] == 4 and final['meta']['iter'] == reference[
        'meta']['iter'] == 6
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
