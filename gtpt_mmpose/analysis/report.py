"""Markdown of the benchmarks' results: ratios, tables, and the generated
sections of ``docs/benchmarks.md`` and the README.

A generated section stands between ``<!-- generated:NAME -->`` and
``<!-- /generated:NAME -->``; :func:`replace_generated` rewrites what is
between them and nothing else.
"""
import argparse
import os
import shlex
import statistics
from typing import Dict, Iterable, List, Sequence, Tuple

from .op_profile import KINDS

#: runtime -> the column title of the README's models table
README_RUNTIMES = {
    'eager': 'eager',
    'onnxruntime': 'ONNX Runtime',
    'openvino': 'OpenVINO'
}
NAMES = {
    'gtpt-t': 'GTPT-T',
    'gtpt-s': 'GTPT-S',
    'gtpt-b': 'GTPT-B',
    'rtmpose-m': 'RTMPose-m',
    'rtmpose-l': 'RTMPose-l'
}
Key = Tuple[str, str, int]  # model, runtime, batch


def markers(name: str) -> Tuple[str, str]:
    """The begin and end markers of generated section ``name``."""
    return f'<!-- generated:{name} -->', f'<!-- /generated:{name} -->'


def replace_generated(path: str, name: str, text: str) -> None:
    """Replace what stands between the markers of section ``name`` in the
    file ``path`` with ``text``; the file is rewritten atomically, and left
    as it was when it lacks the markers."""
    begin, end = markers(name)
    with open(path, encoding='utf-8') as f:
        content = f.read()
    if content.count(begin) != 1 or content.count(end) != 1 or (
            content.index(begin) > content.index(end)):
        raise ValueError(f'{path} needs one {begin} ... {end} section')
    head, rest = content.split(begin)
    tail = rest.split(end)[1]
    tmp = f'{path}.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        f.write(f'{head}{begin}\n{text.strip()}\n{end}{tail}')
    os.replace(tmp, path)


def command_line(script: str, parser: argparse.ArgumentParser,
                 args: argparse.Namespace, outputs: Iterable[str]) -> str:
    """The command that repeats a measurement: ``script`` with the options
    (``--dest-name``) that differ from their defaults, output options
    (``outputs``, their dests) left out."""
    words = [f'python {script}']
    for dest, value in vars(args).items():
        if (dest in outputs or value is None
                or value == parser.get_default(dest)):
            continue
        flag = '--' + dest.replace('_', '-')
        if value is True:
            words.append(flag)
        elif isinstance(value, (list, tuple)):
            words.append(
                f'{flag} {" ".join(shlex.quote(str(v)) for v in value)}')
        else:
            words.append(f'{flag} {shlex.quote(str(value))}')
    return ' '.join(words)


def machine_table(m: dict) -> List[str]:
    """Markdown rows that describe the machine of a measurement."""
    versions = [f"Python {m['python']}", f"torch {m['torch']}"]
    versions += [
        f'{label} {m[k]}' for k, label in (('onnxruntime', 'ONNX Runtime'),
                                           ('openvino', 'OpenVINO'))
        if m.get(k)
    ]
    return [
        '| machine | |', '| --- | --- |',
        f"| CPU | {m['cpu']}, {m['cores']} cores "
        f"({m['usable_cores']} usable) |",
        *([f"| GPU | {m['gpu']} |"] if m.get('gpu') else []),
        f"| threads per runtime | {m['threads']} |",
        f"| versions | {', '.join(versions)} |",
        f"| date, commit | {m['date']}, {m.get('commit') or 'unknown'} |"
    ]


def _threads(n: int) -> str:
    return f'{n} thread' if n == 1 else f'{n} threads'


def _timings(result: dict) -> Dict[Key, dict]:
    return {
        (t['model'], t['runtime'], t['batch']): t
        for t in result['timings']
    }


def ratio(a: Sequence[float], b: Sequence[float]) -> Dict[str, float]:
    """a / b of two models' rounds: ``median`` is the ratio of their medians,
    ``best`` of their fastest rounds."""
    return dict(
        median=statistics.median(a) / statistics.median(b),
        best=min(a) / min(b))


def ratios(result: dict) -> List[dict]:
    """The ratios a reader compares, where both sides were measured:
    GTPT-S / RTMPose-m (equal work) per runtime and batch size; each GTPT
    pruned / unpruned with the ratio of their work (``reference``); per
    model and runtime, the largest batch against batch 1 (ms per image).
    Every ratio is a :func:`ratio` of the two sides' recorded rounds."""
    t = _timings(result)
    runtimes = list(dict.fromkeys(k[1] for k in t))
    batches = sorted({k[2] for k in t})
    models = list(dict.fromkeys(k[0] for k in t))
    rows = []

    def add(kind, a, b, reference=None):
        if a in t and b in t:
            rows.append(
                dict(
                    kind=kind,
                    runtime=a[1],
                    batch=a[2],
                    reference=reference,
                    **ratio(t[a]['rounds_ms'], t[b]['rounds_ms'])))

    for rt in runtimes:
        for n in batches:
            add('gtpt-s / rtmpose-m', ('gtpt-s', rt, n), ('rtmpose-m', rt, n))
    for name in models:
        unpruned = f'{name} unpruned'
        if unpruned not in models:
            continue
        flops = result['models']
        work = flops[name]['gflops_full'] / flops[unpruned]['gflops_full']
        for rt in runtimes:
            for n in batches:
                add(f'{name} / {unpruned}', (name, rt, n), (unpruned, rt, n),
                    work)
    if len(batches) > 1 and batches[0] == 1:
        for name in models:
            for rt in runtimes:
                add(f'{name} batch {batches[-1]} / batch 1',
                    (name, rt, batches[-1]), (name, rt, 1))
    return rows


def _cell(t: Dict[Key, dict], key: Key) -> str:
    return f"{t[key]['median_ms']:.1f}" if key in t else '-'


def inference_markdown(result: dict) -> str:
    """The inference section of docs/benchmarks.md: the machine, ms per
    image per model, runtime and batch size, the ratios, the outputs'
    differences, and the profiles and bf16 accuracy where measured."""
    s, t = result['settings'], _timings(result)
    runtimes = list(dict.fromkeys(k[1] for k in t))
    models = list(dict.fromkeys(k[0] for k in t))
    lines = [
        '## Inference', '', f"Measured {result['machine']['date']} with "
        f"`{result['command']}`.", '', *machine_table(result['machine']), '',
        'Random weights; timed is a normalised (N, 3, H, W) image of the '
        "model's input size to SimCC logits (no preprocessing, flip test or "
        'decoding), GTPT as '
        '`prepare_for_inference` prepares it for the runtime, RTMPose as '
        'MMPose builds it. Every round times every model, runtime and batch '
        'size once, in an order reversed every other round; a timing is the '
        'mean per image of max(2, 10 // batch) calls after a warm-up call. '
        f"The tables give the median over {s['rounds']} rounds, ms per "
        'image; GFLOPs are multiply-accumulates of the model as trained, in '
        "the authors' (thop) convention and with the attention products."
    ]
    for n in sorted({k[2] for k in t}):
        lines += [
            '', f'### Batch {n}', '',
            '| model | input | params (M) | GFLOPs | with attention | ' +
            ' | '.join(runtimes) + ' |',
            '| --- | --- | ---: | ---: | ---: |' + ' ---: |' * len(runtimes)
        ]
        for m in models:
            info = result['models'][m]
            size = 'x'.join(map(str, info.get('input_hw', (256, 192))))
            lines.append(f"| {m} | {size} | {info['params_m']:.2f} | "
                         f"{info['gflops']:.3f} | {info['gflops_full']:.3f} "
                         '| ' +
                         ' | '.join(_cell(t, (m, rt, n))
                                    for rt in runtimes) + ' |')
    if result['ratios']:
        lines += [
            '', '### Ratios', '',
            'Ratio of the two medians; "best": of the two fastest rounds; '
            '"work": the ratio of their GFLOPs with attention.', '',
            '| ratio | runtime | batch | median | best | work |',
            '| --- | --- | ---: | ---: | ---: | ---: |'
        ]
        for r in result['ratios']:
            work = '' if r['reference'] is None else f"{r['reference']:.3f}"
            lines.append(f"| {r['kind']} | {r['runtime']} | {r['batch']} | "
                         f"{r['median']:.3f} | {r['best']:.3f} | {work} |")
    lines += [
        '', '### Outputs against eager float32', '',
        'Largest absolute difference of any logit from eager PyTorch in '
        'float32, same input.', '', '| model | runtime | max abs diff |',
        '| --- | --- | ---: |'
    ]
    for key, diff in result['max_abs_diff'].items():
        model, runtime = key.rsplit(' ', 1)
        lines.append(f'| {model} | {runtime} | {diff:.2e} |')
    if result.get('profiles'):
        lines += profile_table(result['profiles'], 'Where the time goes')
    if result.get('accuracy'):
        lines += accuracy_table(result['accuracy'])
    return '\n'.join(lines)


def profile_table(profiles: List[dict], title: str) -> List[str]:
    """Markdown of op profiles: ms per image and share of each kind."""
    heads = dict(
        matrix='matrix products',
        conv='convolutions',
        glue='layout glue',
        other='other')
    batches = sorted({p['batch'] for p in profiles})
    lines = [
        '', f"### {title} (batch {', '.join(map(str, batches))})", '',
        "Each runtime's own profiler, summed by op kind (layout glue: "
        'copies that only move data); ms per image (share of the op time). '
        'Profiler overhead included: compare shares, not with the timings.',
        '', '| model | runtime | op time | ' +
        ' | '.join(heads[k] for k in KINDS) + ' | slowest ops |',
        '| --- | --- | ---: |' + ' ---: |' * len(KINDS) + ' --- |'
    ]
    for p in profiles:
        cells = [f"{p[f'{k}_ms']:.2f} ({p[f'{k}_share']:.0%})" for k in KINDS]
        lines.append(f"| {p['model']} | {p.get('runtime', '')} | "
                     f"{p['total_ms']:.2f} | " + ' | '.join(cells) +
                     f" | {p['top_ops']} |")
    return lines


def accuracy_table(acc: dict) -> List[str]:
    """Markdown of :func:`~.runtime_accuracy.runtime_accuracy`'s result."""
    lines = [
        '', '### bf16 accuracy', '',
        f"{acc['config']}, {acc['checkpoint']}: {acc['people']} people, "
        'flip test off; distance of every keypoint to eager float32 in image '
        'pixels, and the metric per runtime.', '',
        '| runtime | median px | 90th pct px | max px | moved > 1 px | '
        'whole-body AP | body AP |', '| --- |' + ' ---: |' * 6
    ]
    for r in acc['rows']:
        lines.append(f"| {r['runtime']} | {r['median_px']:.2f} | "
                     f"{r['p90_px']:.2f} | {r['max_px']:.2f} | "
                     f"{r['moved_share']:.1%} | {r['whole_ap']:.3f} | "
                     f"{r['body_ap']:.3f} |")
    return lines


def models_table(result: dict) -> str:
    """The README's models table: GTPT-T/S/B and RTMPose-m/l with params,
    GFLOPs (authors' convention), published whole-body AP and batch-1 ms
    per image in eager PyTorch, ONNX Runtime and OpenVINO (fp32)."""
    t = _timings(result)
    m = result['machine']
    lines = [
        '| model | config | params (M) | GFLOPs | whole-body AP | ' +
        ' | '.join(f'{v} ms' for v in README_RUNTIMES.values()) + ' |',
        '| --- | --- | ---: | ---: | ---: |' + ' ---: |' * len(README_RUNTIMES)
    ]
    for name, title in NAMES.items():
        if name not in result['models']:
            continue
        info = result['models'][name]
        ap = '-' if info['published_ap'] is None else (
            f"{info['published_ap'] * 100:.1f}")
        lines.append(
            f"| {title} | {info['config']} | "
            f"{info['params_m']:.2f} | {info['gflops']:.3f} | {ap} | " +
            ' | '.join(_cell(t, (name, rt, 1))
                       for rt in README_RUNTIMES) + ' |')
    lines += [
        '',
        f"Batch 1, median ms per image over {result['settings']['rounds']} "
        f"interleaved rounds, {_threads(m['threads'])} of {m['cpu']} "
        f"({m['cores']} cores), {m['date']}: `{result['command']}`. GFLOPs: "
        "multiply-accumulates, the authors' (thop) convention. AP: "
        'COCO-WholeBody val as published (the GTPT paper; MMPose\'s model '
        'zoo for RTMPose). Every runtime and batch size: '
        '[docs/benchmarks.md](docs/benchmarks.md).'
    ]
    return '\n'.join(lines)


def training_ratios(result: dict) -> Dict[str, Dict[str, float]]:
    """GTPT-S (both passes and pruned pass alone) against RTMPose-m: step
    time per image (:func:`ratio` of their rounds) and peak memory."""
    out = {}
    rounds, memory = result['rounds_ms'], result['memory_mb_per_image']
    for model in ('gtpt-s', 'gtpt-s pruned-only'):
        if model in rounds and 'rtmpose-m' in rounds:
            out[f'time {model} / rtmpose-m'] = ratio(rounds[model],
                                                     rounds['rtmpose-m'])
        if model in memory and 'rtmpose-m' in memory:
            value = memory[model] / memory['rtmpose-m']
            out[f'memory {model} / rtmpose-m'] = dict(median=value, best=None)
    return out


def training_markdown(result: dict) -> str:
    """The training section of docs/benchmarks.md."""
    s = result['settings']
    precision = 'fp32' if not s['amp'] else (
        'bf16 autocast' if s['device'] == 'cpu' else 'fp16 autocast')
    lines = [
        '## Training', '', f"Measured {result['machine']['date']} with "
        f"`{result['command']}`.", '', *machine_table(result['machine']), '',
        f"A step on {s['device']} ({precision}): forward, loss, backward "
        f"and Adam on a synthetic batch of {s['batch']}, random weights, no "
        'data loading. GTPT trains with its Global Perceived loss (both '
        'passes), "pruned-only" with the pruned pass alone. After '
        f"{s['warmup']} untimed step(s) of every model, {s['rounds']} "
        'interleaved rounds of two steps each; median ms per image. Peak '
        f"memory: two steps at batch {s['memory_batch']}, each model in a "
        'process of its own, MB per image.', '',
        '| model | ms per image | best round | peak MB per image |',
        '| --- | ---: | ---: | ---: |'
    ]
    for name, ms in result['rounds_ms'].items():
        mem = result['memory_mb_per_image'].get(name)
        lines.append(f'| {name} | {statistics.median(ms):.1f} | '
                     f'{min(ms):.1f} | '
                     f'{"-" if mem is None else f"{mem:.0f}"} |')
    if result['ratios']:
        lines += ['', '| ratio | median | best |', '| --- | ---: | ---: |']
        for k, r in result['ratios'].items():
            best = '' if r['best'] is None else f"{r['best']:.2f}"
            lines.append(f"| {k} | {r['median']:.2f} | {best} |")
    if result.get('profiles'):
        lines += profile_table(result['profiles'], 'Where a step goes')
    return '\n'.join(lines)
