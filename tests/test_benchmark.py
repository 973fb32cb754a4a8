"""Smoke tests of tools/analysis/benchmark.py (issue 4); the real benchmark is not a unit test."""
import importlib.util
import json
import os.path as osp
import subprocess
import sys

import pytest
from conftest import REPO, python_env

BENCHMARK = osp.join(REPO, 'tools', 'analysis', 'benchmark.py')


def load_benchmark():
    spec = importlib.util.spec_from_file_location('benchmark', BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smallest_run_writes_its_numbers(tmp_path):
    out = tmp_path / 'bench'
    proc = subprocess.run([
        sys.executable, BENCHMARK, '--variants', 't', '--rounds', '1',
        '--batch-sizes', '1', '--no-rtmpose', '--threads', '1', '--profile',
        '--out-dir',
        str(out)
    ],
                          cwd=REPO,
                          env=python_env(),
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.load(open(out / 'benchmark.json'))
    timings = {
        (t['model'], t['backend'], t['batch']): t
        for t in result['timings']
    }
    assert set(timings) == {(m, b, 1)
                            for m in ('gtpt-t', 'gtpt-t unpruned')
                            for b in ('eager', 'ort')}
    for t in timings.values():
        assert len(t['rounds_ms']) == 1 and 0 < t['min_ms'] <= t['median_ms']
    flops = result['gflops']
    assert flops['gtpt-t']['authors'] == pytest.approx(
        0.832, rel=0.01)  # the paper's thop figure
    assert flops['gtpt-t']['full'] < flops['gtpt-t unpruned']['full']
    assert set(result['ratios']['pruned / unpruned']) == {
        'gtpt-t eager batch 1', 'gtpt-t ort batch 1'
    }
    assert max(result['ort_max_abs_diff'].values()
               ) < 1e-3  # the models were timed in eval mode
    assert (out / 'latency_vs_gflops.png').stat().st_size > 0
    assert '| gtpt-t unpruned | 1.752 | ort |' in proc.stdout
    # --profile: every timed model and backend split by op kind; the kinds add up to the op time
    profiles = {(p['model'], p['backend']): p for p in result['profiles']}
    assert set(profiles) == {(m, b) for m, b, _ in timings}
    for p in profiles.values():
        assert p['matrix_ms'] > 0 and p['conv_ms'] > 0 and p['other_ms'] > 0
        assert p['matrix_ms'] + p['conv_ms'] + p['other_ms'] == pytest.approx(
            p['total_ms'])
    assert 0 < profiles['gtpt-t',
                        'eager']['tokenizer_ms'] < timings['gtpt-t unpruned',
                                                           'eager',
                                                           1]['median_ms']
    assert '| gtpt-t | ort | 1 |' in proc.stdout


def test_rtmpose_configs_are_made_offline():
    from mmengine.config import Config
    bench = load_benchmark()
    cfg = bench.offline_bn(
        Config.fromfile(bench.rtmpose_config('m')).model.to_dict())
    text = json.dumps(cfg)
    assert 'Pretrained' not in text and 'SyncBN' not in text and cfg[
        'backbone']['norm_cfg']['type'] == 'BN'


def test_bad_arguments_are_refused():
    proc = subprocess.run([sys.executable, BENCHMARK, '--rounds', '0'],
                          env=python_env(),
                          capture_output=True,
                          text=True,
                          timeout=120)
    assert proc.returncode == 2 and '--rounds' in proc.stderr
