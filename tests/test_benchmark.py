"""Smoke tests of the benchmarks (issues 14, 15); the measurements
themselves are not unit tests."""
import importlib.util
import json
import os.path as osp
import subprocess
import sys

import pytest
from conftest import REPO, python_env, run_script

ANALYSIS = osp.join(REPO, 'tools', 'analysis')


def load(name: str):
    sys.path.insert(0, ANALYSIS)
    spec = importlib.util.spec_from_file_location(
        name, osp.join(ANALYSIS, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_smallest_run_writes_its_numbers_and_profiles(tmp_path):
    out = tmp_path / 'bench'
    readme = tmp_path / 'README.md'
    readme.write_text('before\n<!-- benchmark:begin -->\nold\n'
                      '<!-- benchmark:end -->\nafter\n')
    run_script(
        osp.join(ANALYSIS, 'benchmark.py'), '--variants', 't', '--rounds', '1',
        '--batch-sizes', '1', '--no-rtmpose', '--threads', '1', '--runtimes',
        'eager', 'onnxruntime', 'openvino', '--profile', '--settle', '0',
        '--out-dir', out, '--update-readme', readme)
    result = json.load(open(out / 'benchmark.json'))
    timings = {
        (t['model'], t['runtime'], t['batch']): t
        for t in result['timings']
    }
    assert set(timings) == {(m, r, 1)
                            for m in ('gtpt-t', 'gtpt-t unpruned')
                            for r in ('eager', 'onnxruntime', 'openvino')}
    for t in timings.values():
        assert len(t['rounds_ms']) == 1 and 0 < t['min_ms'] <= t['median_ms']
    flops = result['gflops']
    # the paper's thop figure, counted on the model before deploy rewrites
    assert flops['gtpt-t']['authors'] == pytest.approx(0.832, rel=0.01)
    assert flops['gtpt-t']['full'] < flops['gtpt-t unpruned']['full']
    assert max(result['max_abs_diff'].values()) < 1e-3  # fp32 runtimes
    work = [r for r in result['ratios'] if r['kind'] == 'pruned / unpruned']
    assert {r['where']
            for r in work} == {
                f'gtpt-t {rt} batch 1'
                for rt in ('eager', 'onnxruntime', 'openvino')
            }
    assert all(
        r['reference'] == pytest.approx(flops['gtpt-t']['full'] /
                                        flops['gtpt-t unpruned']['full'])
        for r in work)
    # every model profiled in every runtime; the kinds add up
    profiles = {(p['model'], p['runtime']): p for p in result['profiles']}
    assert set(profiles) == {(m, r) for m, r, _ in timings}
    for p in profiles.values():
        assert p['matrix_ms'] > 0 and p['glue_ms'] > 0
        kinds = p['matrix_ms'] + p['conv_ms'] + p['glue_ms'] + p['other_ms']
        assert kinds == pytest.approx(p['total_ms'])
    text = readme.read_text()
    assert text.startswith('before\n') and text.endswith('after\n')
    assert '| gtpt-t unpruned | 1.7' in text and 'old' not in text
    assert '--runtimes eager onnxruntime openvino' in text  # the command


def test_report_checks_every_target(tmp_path):
    report = load('benchmark_report')
    t = {
        ('gtpt-s', 'eager', 1): 10,
        ('rtmpose-m', 'eager', 1): 12,
        ('gtpt-s', 'onnxruntime', 1): 13,
        ('rtmpose-m', 'onnxruntime', 1): 12,
        ('gtpt-s unpruned', 'eager', 1): 16,
        ('gtpt-s', 'eager', 32): 9,
        ('rtmpose-m', 'eager', 32): 11,
        ('gtpt-s unpruned', 'eager', 32): 15
    }
    result = dict(
        timings=[
            dict(model=m, runtime=r, batch=n, median_ms=v, min_ms=v)
            for (m, r, n), v in t.items()
        ],
        gflops={
            'gtpt-s': dict(full=2.2),
            'gtpt-s unpruned': dict(full=3.7)
        })
    rows = {(r['kind'], r['where']): r for r in report.ratios(result)}
    assert rows['gtpt-s / rtmpose-m', 'eager batch 1']['met'] is True
    assert rows['gtpt-s / rtmpose-m', 'onnxruntime batch 1']['met'] is False
    assert rows['gtpt-s / rtmpose-m', 'eager batch 32']['bound'] is None
    work = rows['pruned / unpruned', 'gtpt-s eager batch 1']
    assert work['median'] == pytest.approx(10 / 16)
    assert work['met'] is (abs(10 / 16 - 2.2 / 3.7) <= 0.05)
    assert rows['batch-32 / batch-1', 'gtpt-s eager']['met'] is True
    # with a profile: the ratio no layout work can beat, glue taken out
    shares = {
        ('gtpt-s', 'onnxruntime'): 0.25,
        ('rtmpose-m', 'onnxruntime'): 0.05,
        ('gtpt-s', 'compile'): 0.1,
    }
    result['profiles'] = [
        dict(model=m, runtime=r, batch=1, glue_share=g)
        for (m, r), g in shares.items()
    ]
    # compiled, the profiler misses inductor's kernels: no row there
    result['timings'] += [
        dict(model=m, runtime='compile', batch=1, median_ms=v, min_ms=v)
        for m, v in (('gtpt-s', 9), ('rtmpose-m', 10))
    ]
    rows = {(r['kind'], r['where']): r for r in report.ratios(result)}
    floor = rows['gtpt-s without glue / rtmpose-m', 'onnxruntime batch 1']
    assert floor['median'] == pytest.approx(13 / 12 * 0.75)
    assert floor['bound'] is None
    assert not any(k == 'gtpt-s without glue / rtmpose-m' and 'compile' in w
                   for k, w in rows)


def test_kernel_rates_finds_every_product_and_rebuilds_it_alone():
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    rates = load('kernel_rates')
    f32 = TensorProto.FLOAT
    w = numpy_helper.from_array(np.ones((8, 24), np.float32), 'w')
    wt = numpy_helper.from_array(np.ones((8, 24), np.float32), 'wt')
    b = numpy_helper.from_array(np.zeros(8, np.float32), 'b')
    nodes = [
        helper.make_node('MatMul', ['x', 'w'], ['q']),  # (1, 5, 24)
        helper.make_node(
            'Attention', ['q', 'q', 'q'], ['a'], q_num_heads=3,
            kv_num_heads=3),
        helper.make_node('Reshape', ['a', 'shape'], ['a2']),
        helper.make_node('Gemm', ['a2', 'wt', 'b'], ['y'], transB=1),  # (N, K)
    ]
    shape = numpy_helper.from_array(np.array([5, 24], np.int64), 'shape')
    graph = helper.make_graph(
        nodes, 'g', [helper.make_tensor_value_info('x', f32, [1, 5, 8])],
        [helper.make_tensor_value_info('y', f32, [5, 8])], [w, wt, b, shape])
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid('', 23)])
    found = rates.products(model)
    assert [s for _, s, _ in found] == [('linear', (5, 8, 24)),
                                        ('attention', (1, 5, 5, 24, 3)),
                                        ('linear', (5, 24, 8))]
    assert [m for _, _, m in found] == [5 * 8 * 24, 2 * 5 * 5 * 24, 5 * 24 * 8]
    for _, s, _ in found:
        alone, feeds = rates.one_node_graph(s)
        out = ort.InferenceSession(alone, providers=['CPUExecutionProvider'])
        got = out.run(None, feeds)[0]
        rows = s[1][0] if s[0] == 'linear' else s[1][1]
        assert got.shape[-2] == rows and np.isfinite(got).all()


def test_rtmpose_configs_are_made_offline():
    from mmengine.config import Config
    bench = load('benchmark')
    cfg = bench.offline_bn(
        Config.fromfile(bench.rtmpose_config('m')).model.to_dict())
    text = json.dumps(cfg)
    assert 'Pretrained' not in text and 'SyncBN' not in text
    assert cfg['backbone']['norm_cfg']['type'] == 'BN'


@pytest.mark.slow
def test_training_benchmark_times_memory_and_profile(tmp_path):
    run_script(
        osp.join(ANALYSIS, 'benchmark_training.py'), '--models', 'gtpt-t',
        'gtpt-s pruned-only', '--batch', '2', '--memory-batch', '2',
        '--rounds', '1', '--warmup', '1', '--threads', '1', '--profile',
        '--out-dir', tmp_path)
    result = json.load(open(tmp_path / 'benchmark_training.json'))
    assert set(result['ms_per_image']) == {'gtpt-t', 'gtpt-s pruned-only'}
    assert result['settings']['warmup'] == 1
    assert all(v > 0 for v in result['ms_per_image'].values())
    assert all(v > 0 for v in result['memory_mb_per_image'].values())
    p = result['profiles']['gtpt-t']
    assert p['matrix_ms'] > 0 and p['conv_ms'] > 0


def test_bad_arguments_are_refused():
    proc = subprocess.run(
        [sys.executable,
         osp.join(ANALYSIS, 'benchmark.py'), '--rounds', '0'],
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=120)
    assert proc.returncode == 2 and '--rounds' in proc.stderr


def test_compile_freezing_gets_graphs_of_its_own():
    """Compiled after ``compile``, the same module would reuse that graph
    (dynamo's cache ignores inductor's settings); behind ``FrozenGraphs``
    it is traced again, with freezing on."""
    import torch
    import torch._inductor.config as inductor_config
    from torch._dynamo.utils import counters
    bench = load('benchmark')
    module = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU())
    x = torch.randn(2, 8)
    torch._dynamo.reset()
    with torch.no_grad():
        torch.compile(module, dynamic=False)(x)
        traced = counters['stats']['unique_graphs']
        with inductor_config.patch(freezing=True):
            torch.compile(module, dynamic=False)(x)  # the old way
            assert counters['stats']['unique_graphs'] == traced
            frozen = torch.compile(bench.FrozenGraphs(module), dynamic=False)
            torch.testing.assert_close(frozen(x), module(x))
        assert counters['stats']['unique_graphs'] == traced + 1
    torch._dynamo.reset()
