"""Multi-process training on the existing engine: 2 processes with gloo on a
CPU-only machine. Weights and buffers (BatchNorm statistics, the EMA's) agree
across ranks; a NaN/Inf on one rank stops every rank with one message; the
--resume choice is made once."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
from conftest import REPO, config_file, python_env

HELPERS = osp.join(REPO, 'tests', 'helpers')


def torchrun(script: str, *args, port: int, timeout: int = 600):
    """Run ``script`` in 2 gloo processes; return the finished process."""
    env = python_env()
    env['PYTHONPATH'] = HELPERS + os.pathsep + env.get('PYTHONPATH', '')
    env['OMP_NUM_THREADS'] = '1'
    return subprocess.run([
        sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
        '--master_port',
        str(port), script, *map(str, args)
    ],
                          cwd=REPO,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=timeout)


def probed_mini_config(path) -> None:
    """The stage-1 mini config with the mini config's own hooks, and a
    RankProbeHook before and after them."""
    from mmengine.config import Config
    hooks = Config.fromfile(
        config_file('gtpt-t_coco_mini')).to_dict()['custom_hooks']
    hooks = [
        dict(type='RankProbeHook', name='unsynced', priority='HIGHEST'),
        *hooks,
        dict(type='RankProbeHook', name='synced', priority='LOWEST')
    ]
    assert 'SyncBuffersHook' in [h['type'] for h in hooks]
    path.write_text(
        f"_base_ = ['{config_file('gtpt-t_coco_mini')}']\n"
        "custom_imports = dict(imports=['gtpt_mmpose', 'rank_probe'], "
        "allow_failed_imports=False)\n"
        f'custom_hooks = {hooks!r}\n'
        "train_cfg = dict(max_epochs=3, val_interval=100)\n"
        "train_dataloader = dict(batch_size=4)\n"
    )  # 14 people / 2 ranks / 4 = 2 iterations per epoch


@pytest.mark.slow
def test_two_process_gloo_training_keeps_weights_and_buffers_in_step(tmp_path):
    cfg = tmp_path / 'dist_mini.py'
    probed_mini_config(cfg)
    work = tmp_path / 'work'
    proc = torchrun(
        osp.join(REPO, 'tools', 'train.py'),
        cfg,
        '--launcher',
        'pytorch',
        '--work-dir',
        work,
        port=29517)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    synced, unsynced = ([
        json.load(open(work / f'rank{r}_{name}.json')) for r in (0, 1)
    ] for name in ('synced', 'unsynced'))
    assert all(r['world_size'] == 2 and r['backend'] == 'gloo' for r in synced)
    rows0, rows1 = synced[0]['rows'], synced[1]['rows']
    assert len(rows0) == len(rows1) == 7  # before training, 6 iterations
    for a, b in zip(rows0, rows1):
        assert a['iter'] == b['iter']
        assert a['checksum'] == b['checksum']  # DDP kept the weights identical
    # ... though each rank had its own data
    assert all(a['local'] != b['local'] for a, b in zip(rows0[1:], rows1[1:]))
    # ... and the weights did change at every step
    sums = [row['checksum'] for row in rows0]
    assert all(before != after for before, after in zip(sums, sums[1:]))

    # the stem's and patch_norm's BatchNorm statistics, live and in the EMA
    names = synced[0]['epochs'][0]['names']
    assert 'backbone.patch_norm.running_mean' in names
    assert 'backbone.stem.conv1.1.running_var' in names
    for kind in ('live', 'ema'):
        after = [[e[kind] for e in rank['epochs']] for rank in synced]
        before = [[e[kind] for e in rank['epochs']] for rank in unsynced]
        assert len(after[0]) == len(after[1]) == 3
        # each rank's data moved its own statistics during the epoch ...
        assert all(a != b for a, b in zip(*before)), kind
        # ... and they agree once the epoch ends, before checkpoints and
        # validation use them
        assert after[0] == after[1], kind
        assert len(set(after[0])) == 3, kind  # and they did move


def dist_checks(case: str, tmp_path, port: int) -> list:
    """Run one case of helpers/dist_checks.py on 2 ranks; what each rank
    recorded."""
    proc = torchrun(
        osp.join(HELPERS, 'dist_checks.py'), case, tmp_path, port=port)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return [json.load(open(tmp_path / f'rank{r}.json')) for r in (0, 1)]


@pytest.mark.slow
def test_a_nan_on_one_rank_stops_every_rank_with_its_message(tmp_path):
    ranks = dist_checks('stop', tmp_path, port=29518)
    for case in ('loss', 'input', 'statistics'):
        messages = [r[case] for r in ranks]
        assert messages[0] == messages[1], case  # the same on every rank
    loss, image, stats = (ranks[0][c] for c in ('loss', 'input', 'statistics'))
    assert loss.startswith('iteration 5 (epoch 2): loss term loss_distill '
                           'is NaN/Inf on rank 1 (loss=inf, loss_kpt=0.5, '
                           'loss_distill=inf); training stopped')
    assert image.startswith('iteration 5 (epoch 2): input image #1 of the '
                            'batch (b.jpg) has NaN/Inf pixel values on rank '
                            '0; training stopped on every rank')
    assert stats.startswith('iteration 5 (epoch 2): the loss scaler skipped '
                            'this step, but its forward pass left NaN/Inf in '
                            'bn.running_mean on rank 1')
    # a finite step under the scaler and one skipped step on both ranks
    assert ranks[0]['skip'] == ranks[1]['skip'] == 'went on'


@pytest.mark.slow
def test_resume_reads_the_checkpoints_on_rank_0_only(tmp_path):
    ranks = dist_checks('resume', tmp_path, port=29519)
    intact = str(tmp_path / 'epoch_1.pth')
    # the damaged epoch_2.pth that last_checkpoint names, then epoch_1.pth
    assert ranks[0]['loads'] == 2 and ranks[1]['loads'] == 0
    assert ranks[0]['chosen'] == ranks[1]['chosen'] == intact
    # with nothing intact every rank stops with rank 0's error
    assert ranks[0]['error'] == ranks[1]['error']
    assert ranks[0]['error'].startswith('cannot resume: checkpoint file ')
