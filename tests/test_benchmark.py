"""The benchmarks' machinery (ratios, op kinds, generated tables, the
compiled runtimes) against independent computations, and the smallest runs
of both benchmark tools; the measurements themselves are not unit tests, and
nothing here depends on how fast anything ran."""
import importlib.util
import json
import os.path as osp
import re
import statistics

import numpy as np
import pytest
import torch
from conftest import MINI_DATA, REPO, run_script

from gtpt_mmpose.analysis import model_zoo, op_profile, report
from gtpt_mmpose.analysis.runners import runtime_call
from gtpt_mmpose.analysis.runtime_accuracy import keypoint_shift

ANALYSIS = osp.join(REPO, 'tools', 'analysis')
SKELETON = osp.join(REPO, 'docs', 'benchmarks.md')


def section(text: str, name: str) -> str:
    """The generated section ``name`` of ``text``, markers included."""
    begin, end = report.markers(name)
    return text[text.index(begin):text.index(end) + len(end)]


def table_rows(text: str, first_cell: str) -> dict:
    """Markdown rows of ``text`` whose first cell starts with
    ``first_cell``: first cell -> the other cells."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if line.startswith('|') and cells[0].startswith(first_cell):
            rows[cells[0]] = cells[1:]
    return rows


def synthetic_result() -> dict:
    """A benchmark result with rounds whose ratio of medians differs from
    the median of per-round ratios and from the ratio of means."""
    rounds = {
        ('gtpt-s', 'eager', 1): [10.0, 30.0, 11.0],
        ('rtmpose-m', 'eager', 1): [12.0, 13.0, 40.0],
        ('gtpt-s unpruned', 'eager', 1): [16.0, 17.0, 15.0],
        ('gtpt-s', 'eager', 32): [9.0, 8.0, 20.0],
        ('rtmpose-m', 'eager', 32): [11.0, 10.5, 12.0],
        ('gtpt-s unpruned', 'eager', 32): [14.0, 15.0, 16.0],
        ('gtpt-s', 'onnxruntime', 1): [13.0, 14.0, 12.5],
    }
    info = dict(
        config='`configs/gtpt-s_coco-wholebody.py`', published_ap=0.596)
    return dict(
        command='python tools/analysis/benchmark.py',
        settings=dict(rounds=3),
        machine=dict(
            cpu='CPU',
            cores=2,
            usable_cores=2,
            threads=2,
            python='3',
            torch='2',
            date='2026-01-01',
            commit='abc'),
        models={
            'gtpt-s':
            dict(params_m=5.45, gflops=1.994, gflops_full=2.2, **info),
            'gtpt-s unpruned':
            dict(params_m=5.45, gflops=3.0, gflops_full=3.7),
            'rtmpose-m':
            dict(
                params_m=13.0,
                gflops=2.2,
                gflops_full=2.24,
                config='MMPose `rtmpose-m`',
                published_ap=0.582)
        },
        max_abs_diff={'gtpt-s eager': 0.0},
        timings=[
            dict(
                model=m,
                runtime=r,
                batch=n,
                rounds_ms=v,
                median_ms=statistics.median(v),
                min_ms=min(v)) for (m, r, n), v in rounds.items()
        ]), rounds


def test_ratios_are_ratios_of_the_medians_of_the_recorded_rounds():
    result, rounds = synthetic_result()
    rows = {
        (r['kind'], r['runtime'], r['batch']): r
        for r in report.ratios(result)
    }
    s = rows['gtpt-s / rtmpose-m', 'eager', 1]
    assert s['median'] == pytest.approx(11 / 13)  # not 0.833 or 1.049
    assert s['best'] == pytest.approx(10 / 12)
    work = rows['gtpt-s / gtpt-s unpruned', 'eager', 32]
    assert work['median'] == pytest.approx(9 / 15)
    assert work['reference'] == pytest.approx(2.2 / 3.7)
    per_image = rows['rtmpose-m batch 32 / batch 1', 'eager', 32]
    assert per_image['median'] == pytest.approx(11 / 13)
    # only where both sides were measured: no RTMPose-m in ONNX Runtime
    assert not any(k[0] == 'gtpt-s / rtmpose-m' and k[1] == 'onnxruntime'
                   for k in rows)
    assert len(rows) == 2 + 2 + 3  # S/M, pruned/unpruned, batch ratios


def test_generated_tables_hold_exactly_the_recorded_medians():
    result, rounds = synthetic_result()
    result['ratios'] = report.ratios(result)
    text = report.inference_markdown(result)
    for n in (1, 32):
        section = text.split(f'### Batch {n}\n')[1].split('###')[0]
        rows = table_rows(section, 'gtpt-s')
        rows.update(table_rows(section, 'rtmpose-m'))
        for (model, runtime, batch), v in rounds.items():
            if batch != n:
                continue
            column = ['eager', 'onnxruntime'].index(runtime) + 4
            assert rows[model][column] == f'{statistics.median(v):.1f}'
            assert rows[model][0] == '256x192'  # the default input size
    assert table_rows(text.split('### Batch 1\n')[1],
                      'rtmpose-m')['rtmpose-m'][5] == '-'
    readme = table_rows(report.models_table(result), 'GTPT-S')['GTPT-S']
    # config, params, GFLOPs, AP, eager, ONNX Runtime, OpenVINO
    assert readme == [
        '`configs/gtpt-s_coco-wholebody.py`', '5.45', '1.994', '59.6',
        f"{statistics.median(rounds['gtpt-s', 'eager', 1]):.1f}",
        f"{statistics.median(rounds['gtpt-s', 'onnxruntime', 1]):.1f}", '-'
    ]
    assert 'GTPT-T' not in report.models_table(result)  # not measured


def test_a_generated_section_is_replaced_and_nothing_else(tmp_path):
    path = tmp_path / 'benchmarks.md'
    path.write_text(open(SKELETON).read())
    before = path.read_text()
    report.replace_generated(str(path), 'inference', 'new\ntable\n')
    after = path.read_text()
    begin, end = report.markers('inference')
    assert after.replace(f'{begin}\nnew\ntable\n{end}', '') == re.sub(
        re.escape(begin) + '.*?' + re.escape(end), '', before, flags=re.S)
    assert section(after, 'training') == section(before, 'training')
    readme = tmp_path / 'README.md'
    readme.write_text('no markers here\n')
    with pytest.raises(ValueError, match='generated:models'):
        report.replace_generated(str(readme), 'models', 'table')
    assert readme.read_text() == 'no markers here\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'README.md', 'benchmarks.md'
    ]  # no temporary file left


def test_op_kinds_and_shares():
    assert [
        op_profile.op_kind(n)
        for n in ('aten::addmm', 'aten::mkldnn_convolution', 'aten::transpose',
                  'aten::layer_norm', 'Gemm', 'Attention', 'Conv', 'Reorder',
                  'FullyConnected', 'Softmax')
    ] == [
        'matrix', 'conv', 'glue', 'other', 'matrix', 'matrix', 'conv', 'glue',
        'matrix', 'other'
    ]
    seconds = {'aten::addmm': 0.006, 'aten::cat': 0.002, 'aten::gelu': 0.004}
    kinds = op_profile.by_kind(seconds, batch=2)
    assert kinds['matrix_ms'] == pytest.approx(3.0)  # per image
    assert kinds['total_ms'] == pytest.approx(6.0)
    assert kinds['glue_share'] == pytest.approx(1 / 6)
    assert kinds['conv_share'] == 0
    assert sum(kinds[f'{k}_share'] for k in op_profile.KINDS) == 1


def test_torch_and_onnxruntime_profiles_are_classified(tmp_path):
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.Flatten(),
        torch.nn.Linear(8 * 14 * 14, 4)).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        seconds = op_profile.torch_op_seconds(lambda: model(x), 2)
    kinds = {op: op_profile.op_kind(op) for op in seconds}
    assert kinds['aten::convolution'] == 'conv'
    assert kinds['aten::flatten'] == 'glue'
    assert kinds.get('aten::addmm', kinds.get('aten::linear')) == 'matrix'
    shares = op_profile.by_kind(seconds, 2)
    assert sum(shares[f'{k}_share']
               for k in op_profile.KINDS) == pytest.approx(1)

    from onnx import TensorProto, helper, numpy_helper
    w = numpy_helper.from_array(np.ones((8, 4), np.float32), 'w')
    graph = helper.make_graph([
        helper.make_node('MatMul', ['x', 'w'], ['y']),
        helper.make_node('Transpose', ['y'], ['z'], perm=[1, 0])
    ], 'g', [helper.make_tensor_value_info('x', TensorProto.FLOAT, [5, 8])], [
        helper.make_tensor_value_info('z', TensorProto.FLOAT, [4, 5])
    ], [w])
    path = str(tmp_path / 'g.onnx')
    with open(path, 'wb') as f:
        f.write(
            helper.make_model(
                graph,
                opset_imports=[helper.make_opsetid('',
                                                   17)]).SerializeToString())
    seconds = op_profile.onnxruntime_op_seconds(path,
                                                np.ones((5, 8), np.float32), 1,
                                                3, str(tmp_path))
    assert set(seconds) == {'MatMul', 'Transpose'}
    shares = op_profile.by_kind(seconds, 1)
    assert shares['matrix_share'] + shares['glue_share'] == pytest.approx(1)


def test_compile_freezing_runs_with_the_weights_frozen_in():
    """``compile`` reads the parameters at every call; ``compile-freezing``
    folded them into its graph, even after a plain compile of the same
    module (which dynamo would otherwise reuse)."""
    torch._dynamo.reset()
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3),
                                torch.nn.ReLU()).eval()
    x = torch.randn(1, 3, 8, 8)
    plain = runtime_call('compile', x, model)
    frozen = runtime_call('compile-freezing', x, model)
    with torch.no_grad():
        before = model(x)
        model[0].weight.mul_(2)
        after = model(x)
        assert (after - before).abs().max() > 0.1
        torch.testing.assert_close(plain(), after)
        torch.testing.assert_close(frozen(), before)
    torch._dynamo.reset()


def test_rtmpose_configs_are_made_offline():
    from mmengine.config import Config
    cfg = model_zoo.offline(
        Config.fromfile(model_zoo.config_file('rtmpose-m')).model.to_dict())
    text = json.dumps(cfg)
    assert 'Pretrained' not in text and 'SyncBN' not in text
    assert cfg['backbone']['norm_cfg']['type'] == 'BN'


def test_published_whole_body_ap():
    # the GTPT paper's Table (COCO-WholeBody val) and MMPose's model zoo
    assert [model_zoo.published_ap(m)
            for m in model_zoo.MODELS] == [0.549, 0.596, 0.617, 0.582, 0.611]


def test_keypoint_shift_statistics():
    reference = np.zeros((2, 2, 2))
    moved = np.array([[[0, 0], [3, 4]], [[0.3, 0.4], [0, 2]]])  # 0, 5, .5, 2
    shift = keypoint_shift(moved, reference)
    assert shift == pytest.approx(
        dict(median_px=1.25, p90_px=2 + 0.7 * 3, max_px=5, moved_share=0.5))


def test_bad_arguments_are_refused(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        'benchmark', osp.join(ANALYSIS, 'benchmark.py'))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    no_markers = tmp_path / 'README.md'
    no_markers.write_text('text\n')
    for argv, message in (
        (['--rounds', '0'], '--rounds'),
        (['--bf16-accuracy', 'cfg.py', 'missing.pth'], 'cfg.py'),
        (['--readme', str(no_markers)], 'generated:models'),
        (['--models', 'gtpt-s_nowhere'], "unknown model 'gtpt-s_nowhere'"),
    ):
        with pytest.raises(SystemExit) as exit:
            bench.parse_args(argv)
        assert exit.value.code == 2 and message in capsys.readouterr().err
    assert no_markers.read_text() == 'text\n'


@pytest.mark.slow
def test_smallest_inference_run_writes_its_numbers(tmp_path):
    docs, readme = tmp_path / 'benchmarks.md', tmp_path / 'README.md'
    docs.write_text(open(SKELETON).read())
    readme.write_text('before\n<!-- generated:models -->\nold\n'
                      '<!-- /generated:models -->\nafter\n')
    checkpoint = str(tmp_path / 'random.pth')
    model = model_zoo.build_model('gtpt-t')
    torch.save(dict(state_dict=model.state_dict()), checkpoint)
    config = osp.join(REPO, 'configs', 'gtpt-t_coco-wholebody_mini.py')
    run_script(
        osp.join(ANALYSIS, 'benchmark.py'), '--variants', 't', '--rounds', '2',
        '--batch-sizes', '1', '--no-rtmpose', '--threads', '1', '--runtimes',
        'eager', 'onnxruntime', 'openvino', '--profile', '--settle', '0',
        '--bf16-accuracy', config, checkpoint, '--out-dir', tmp_path / 'out',
        '--docs', docs, '--readme', readme)
    result = json.load(open(tmp_path / 'out' / 'benchmark.json'))
    timings = {(t['model'], t['runtime']): t for t in result['timings']}
    assert set(timings) == {(m, r)
                            for m in ('gtpt-t', 'gtpt-t unpruned')
                            for r in ('eager', 'onnxruntime', 'openvino')}
    for t in timings.values():
        assert len(t['rounds_ms']) == 2
        assert t['median_ms'] == statistics.median(t['rounds_ms'])
    # the paper's thop figure, counted on the model before deploy rewrites
    assert result['models']['gtpt-t']['gflops'] == pytest.approx(
        0.832, rel=0.01)
    assert max(result['max_abs_diff'].values()) < 1e-3  # fp32 runtimes
    for r in result['ratios']:
        a = timings['gtpt-t', r['runtime']]['rounds_ms']
        b = timings['gtpt-t unpruned', r['runtime']]['rounds_ms']
        assert r['median'] == pytest.approx(
            statistics.median(a) / statistics.median(b))
    assert {r['runtime']
            for r in result['ratios']} == {'eager', 'onnxruntime', 'openvino'}
    profiles = {(p['model'], p['runtime']): p for p in result['profiles']}
    assert set(profiles) == set(timings)
    for p in profiles.values():
        assert sum(p[f'{k}_share']
                   for k in op_profile.KINDS) == pytest.approx(1)
    # the bf16 accuracy table: eager is its own reference; every person of
    # the mini set's annotations with keypoints is measured
    acc = result['accuracy']
    ann = json.load(
        open(
            osp.join(MINI_DATA, 'annotations',
                     'coco_wholebody_val_v1.0.json')))['annotations']
    assert acc['people'] == sum(a['num_keypoints'] > 0 for a in ann)
    assert [r['runtime']
            for r in acc['rows']] == ['eager', 'onnxruntime', 'openvino']
    assert acc['rows'][0]['max_px'] == 0
    # the generated files hold the recorded medians and nothing else moved
    text = docs.read_text()
    assert 'generated:inference -->\n## Inference' in text
    assert section(text,
                   'training') == section(open(SKELETON).read(), 'training')
    batch1 = table_rows(text.split('### Batch 1')[1].split('###')[0], 'gtpt')
    for (model, runtime), t in timings.items():
        column = ['eager', 'onnxruntime', 'openvino'].index(runtime) + 4
        assert batch1[model][column] == f"{t['median_ms']:.1f}"
    assert f"`{result['command']}`" in text
    readme_text = readme.read_text()
    assert readme_text.startswith('before\n')
    assert readme_text.endswith('after\n') and 'old' not in readme_text
    row = table_rows(readme_text, 'GTPT-T')['GTPT-T']
    assert row[3:] == [
        '54.9', f"{timings['gtpt-t', 'eager']['median_ms']:.1f}",
        f"{timings['gtpt-t', 'onnxruntime']['median_ms']:.1f}",
        f"{timings['gtpt-t', 'openvino']['median_ms']:.1f}"
    ]


@pytest.mark.slow
def test_a_config_of_another_layout_is_timed_at_its_input_size(tmp_path):
    """--models takes a config name: OneHand10K's 21 keypoints at 256x256,
    in eager PyTorch and ONNX Runtime, next to the whole-body GTPT-T."""
    run_script(
        osp.join(ANALYSIS, 'benchmark.py'), '--models', 'gtpt-t_onehand10k',
        'gtpt-t', '--rounds', '1', '--batch-sizes', '1', '--no-unpruned',
        '--threads', '1', '--runtimes', 'eager', 'onnxruntime', '--settle',
        '0', '--out-dir', tmp_path)
    result = json.load(open(tmp_path / 'benchmark.json'))
    assert {(t['model'], t['runtime'])
            for t in result['timings']} == {(m, r)
                                            for m in ('gtpt-t_onehand10k',
                                                      'gtpt-t')
                                            for r in ('eager', 'onnxruntime')}
    hand = result['models']['gtpt-t_onehand10k']
    assert hand['input_hw'] == [256, 256]
    assert hand['config'] == '`configs/gtpt-t_onehand10k.py`'
    assert result['models']['gtpt-t']['input_hw'] == [256, 192]
    # counted on a 256x256 crop (the model refuses any other)
    from gtpt_mmpose.analysis.flops import count_flops
    from gtpt_mmpose.analysis.runners import image_to_logits
    model = image_to_logits(
        model_zoo.build_model('gtpt-t_onehand10k'), None, 'pruned')
    counts = count_flops(model, (torch.randn(1, 3, 256, 256), ))
    assert hand['gflops'] == pytest.approx(counts['authors'] / 1e9, rel=1e-6)
    assert max(result['max_abs_diff'].values()) < 1e-3
    text = open(tmp_path / 'benchmark.md').read()
    assert '| gtpt-t_onehand10k | 256x256 |' in text


@pytest.mark.slow
def test_smallest_training_run_writes_its_numbers(tmp_path):
    docs = tmp_path / 'benchmarks.md'
    docs.write_text(open(SKELETON).read())
    run_script(
        osp.join(ANALYSIS, 'benchmark_training.py'), '--models',
        'gtpt-s pruned-only', 'rtmpose-m', '--batch', '2', '--memory-batch',
        '2', '--rounds', '2', '--warmup', '1', '--threads', '1', '--profile',
        '--out-dir', tmp_path, '--docs', docs)
    result = json.load(open(tmp_path / 'benchmark_training.json'))
    rounds, memory = result['rounds_ms'], result['memory_mb_per_image']
    assert {
        k: len(v)
        for k, v in rounds.items()
    } == {
        'gtpt-s pruned-only': 2,
        'rtmpose-m': 2
    }
    ratios = result['ratios']
    assert ratios['time gtpt-s pruned-only / rtmpose-m'][
        'median'] == pytest.approx(
            statistics.median(rounds['gtpt-s pruned-only']) /
            statistics.median(rounds['rtmpose-m']))
    assert ratios['memory gtpt-s pruned-only / rtmpose-m'][
        'median'] == pytest.approx(memory['gtpt-s pruned-only'] /
                                   memory['rtmpose-m'])
    assert result['settings']['warmup'] == 1
    for p in result['profiles']:
        assert sum(p[f'{k}_share']
                   for k in op_profile.KINDS) == pytest.approx(1)
    text = docs.read_text()
    assert section(text,
                   'inference') == section(open(SKELETON).read(), 'inference')
    steps = text.split('## Training')[1].split('###')[0]  # not the profile
    rows = table_rows(steps, 'gtpt-s pruned-only')
    rows.update(table_rows(steps, 'rtmpose-m'))
    for name, v in rounds.items():
        assert rows[name][:3] == [
            f'{statistics.median(v):.1f}', f'{min(v):.1f}',
            f'{memory[name]:.0f}'
        ]
    assert "--models 'gtpt-s pruned-only' rtmpose-m" in text
