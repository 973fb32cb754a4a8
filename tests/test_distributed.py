"""Multi-process training on the existing engine: 2 processes with gloo on a
CPU-only machine."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
from conftest import REPO, python_env


@pytest.mark.slow
def test_two_process_gloo_training_keeps_ranks_in_step(tmp_path):
    cfg = tmp_path / 'dist_mini.py'
    cfg.write_text(
        f"_base_ = ['{REPO}/configs/gtpt-t_coco_mini.py']\n"
        "custom_imports = dict(imports=['gtpt_mmpose', 'rank_probe'], "
        "allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='GTPTEMAHook', momentum_start=0.9), "
        "dict(type='RankProbeHook')]\n"
        "train_cfg = dict(max_epochs=3, val_interval=100)\n"
        "train_dataloader = dict(batch_size=4)\n"
    )  # 14 people / 2 ranks / 4 = 2 iterations per epoch
    env = python_env()
    env['PYTHONPATH'] = osp.join(
        REPO, 'tests', 'helpers') + os.pathsep + env.get('PYTHONPATH', '')
    env['OMP_NUM_THREADS'] = '1'
    work = tmp_path / 'work'
    proc = subprocess.run([
        sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
        '--master_port', '29517',
        osp.join(REPO, 'tools', 'train.py'),
        str(cfg), '--launcher', 'pytorch', '--work-dir',
        str(work)
    ],
                          cwd=REPO,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [json.load(open(work / f'rank{r}.json')) for r in (0, 1)]
    assert all(r['world_size'] == 2 and r['backend'] == 'gloo' for r in ranks)
    rows0, rows1 = ranks[0]['rows'], ranks[1]['rows']
    assert len(rows0) == len(rows1) == 7  # before training, 6 iterations
    for a, b in zip(rows0, rows1):
        assert a['iter'] == b['iter']
        assert a['checksum'] == b['checksum']  # DDP kept the weights identical
    # ... though each rank had its own data
    assert all(a['local'] != b['local'] for a, b in zip(rows0[1:], rows1[1:]))
    # ... and the weights did change at every step
    sums = [row['checksum'] for row in rows0]
    assert all(before != after for before, after in zip(sums, sums[1:]))
