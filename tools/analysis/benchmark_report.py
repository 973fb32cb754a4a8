"""Ratios against the targets, and the markdown tables, of a benchmark.json
(benchmark.py writes both; this module also regenerates the README's
section from a saved benchmark.json:
``python tools/analysis/benchmark_report.py benchmark.json README.md``)."""
import json
import sys
from typing import Dict, List, Optional

#: GTPT-S / RTMPose-m at batch 1 must be at most this, per runtime
SPEED_TARGETS = {
    'eager': 1.0,
    'eager-bf16': 0.9,
    'compile': 1.0,
    'compile-freezing': 1.0,
    'onnxruntime': 1.0,
    'openvino': 1.0,
    'openvino-bf16': 1.2,
}
FP32_RUNTIMES = ('eager', 'compile', 'compile-freezing', 'onnxruntime',
                 'openvino')
#: pruned / unpruned time within this of pruned / unpruned work (fp32)
WORK_RATIO_TOLERANCE = 0.05
#: layout glue at most this share of GTPT-S's op time in these runtimes
GLUE_TARGET = (0.15, ('onnxruntime', 'openvino'))
#: GTPT-S / RTMPose-m with GTPT-S's median less its glue share: the ratio
#: that removing every layout op could reach (the profilers of compiled
#: graphs miss inductor's own kernels, so those runtimes have none)
GLUE_FREE = 'gtpt-s without glue / rtmpose-m'
BEGIN, END = '<!-- benchmark:begin -->', '<!-- benchmark:end -->'


def _timings(result: dict) -> Dict[tuple, dict]:
    return {
        (t['model'], t['runtime'], t['batch']): t
        for t in result['timings']
    }


def _ratio(a: Optional[dict], b: Optional[dict]) -> Optional[dict]:
    if a is None or b is None:
        return None
    return dict(
        median=a['median_ms'] / b['median_ms'], min=a['min_ms'] / b['min_ms'])


def ratios(result: dict) -> List[dict]:
    """Every ratio the targets name, with its bound and whether the median
    meets it (bound None: reported, no target)."""
    t = _timings(result)
    runtimes = sorted({k[1] for k in t}, key=list(SPEED_TARGETS).index)
    batches = sorted({k[2] for k in t})
    gtpt = sorted({
        k[0]
        for k in t if k[0].startswith('gtpt') and 'unpruned' not in k[0]
    })
    rows = []

    def add(kind, where, r, bound, compare=None):
        if r is None:
            return
        value = r['median'] if compare is None else abs(r['median'] - compare)
        rows.append(
            dict(
                kind=kind,
                where=where,
                median=r['median'],
                min=r['min'],
                bound=bound,
                reference=compare,
                met=None if bound is None else value <= bound))

    for rt in runtimes:
        for n in batches:
            add('gtpt-s / rtmpose-m', f'{rt} batch {n}',
                _ratio(t.get(('gtpt-s', rt, n)), t.get(('rtmpose-m', rt, n))),
                SPEED_TARGETS[rt] if n == 1 else None)
    flops = result['gflops']
    for name in gtpt:
        if f'{name} unpruned' not in flops:
            continue
        work = flops[name]['full'] / flops[f'{name} unpruned']['full']
        for rt in runtimes:
            for n in batches:
                add('pruned / unpruned',
                    f'{name} {rt} batch {n}',
                    _ratio(
                        t.get((name, rt, n)), t.get(
                            (f'{name} unpruned', rt, n))),
                    WORK_RATIO_TOLERANCE if rt in FP32_RUNTIMES else None,
                    compare=work)
    if 1 in batches and len(batches) > 1:
        big = max(batches)
        for name in gtpt + [
                k
                for k in ('rtmpose-m', 'rtmpose-l') if (k, runtimes[0], 1) in t
        ]:
            for rt in runtimes:
                add(f'batch-{big} / batch-1', f'{name} {rt}',
                    _ratio(t.get((name, rt, big)), t.get((name, rt, 1))),
                    1.0 if name.startswith('gtpt') else None)
    bound, glue_runtimes = GLUE_TARGET
    for p in result.get('profiles', []):
        if p['model'] == 'gtpt-s' and p['runtime'] in glue_runtimes:
            share = p['glue_share']
            rows.append(
                dict(
                    kind='glue share of op time',
                    where=p['runtime'],
                    median=share,
                    min=share,
                    bound=bound,
                    reference=None,
                    met=share <= bound))
    for p in result.get('profiles', []):
        r = _ratio(
            t.get(('gtpt-s', p['runtime'], p['batch'])),
            t.get(('rtmpose-m', p['runtime'], p['batch'])))
        if (p['model'] == 'gtpt-s' and r is not None
                and not p['runtime'].startswith('compile')):
            rest = 1.0 - p['glue_share']
            rows.append(
                dict(
                    kind=GLUE_FREE,
                    where=f"{p['runtime']} batch {p['batch']}",
                    median=r['median'] * rest,
                    min=r['min'] * rest,
                    bound=None,
                    reference=None,
                    met=None))
    return rows


def markdown(result: dict, compact: bool = False) -> str:
    """The tables: ms per image per runtime, the ratios, and the profiles
    when measured. ``compact`` (the README's) keeps the ratios that have a
    target and the profiles of GTPT-S and RTMPose-m."""
    s = result['settings']
    t = _timings(result)
    runtimes = sorted({k[1] for k in t}, key=list(SPEED_TARGETS).index)
    models = list(dict.fromkeys(k[0] for k in t))
    lines = [
        f"Measured {s['date']} on {s['cpu_count']} CPU cores "
        f"({s['cpu']}), {s['threads']} threads, torch {s['torch']}, "
        f"{s['rounds']} interleaved rounds, median ms per image "
        f"(`python tools/analysis/benchmark.py{_flags(s)}`).", ''
    ]
    for n in sorted({k[2] for k in t}):
        lines += [
            f'| batch {n} | GFLOPs | ' + ' | '.join(runtimes) + ' |',
            '| --- | ---: |' + ' ---: |' * len(runtimes)
        ]
        for m in models:
            cells = [
                f"{t[m, rt, n]['median_ms']:.1f}" if (m, rt, n) in t else '-'
                for rt in runtimes
            ]
            lines.append(f"| {m} | {result['gflops'][m]['full']:.3f} | " +
                         ' | '.join(cells) + ' |')
        lines.append('')
    lines += [
        '| ratio | where | median | min | target | met |',
        '| --- | --- | ---: | ---: | --- | --- |'
    ]
    for r in result['ratios']:
        if compact and r['bound'] is None and r['kind'] != GLUE_FREE:
            continue
        if r['bound'] is None:
            target, met = '', ''
        elif r['reference'] is not None:
            target = f"{r['reference']:.3f} ± {r['bound']}"
            met = 'yes' if r['met'] else '**no**'
        else:
            target = f"<= {r['bound']}"
            met = 'yes' if r['met'] else '**no**'
        lines.append(f"| {r['kind']} | {r['where']} | {r['median']:.3f} | "
                     f"{r['min']:.3f} | {target} | {met} |")
    if result.get('profiles'):
        lines += [
            '', '| profile (batch 1, ms per image) | runtime | op time | '
            'matrix products | convolutions | layout glue | other | glue '
            'share | slowest ops |', '| --- | --- |' + ' ---: |' * 6 + ' --- |'
        ]
        for p in result['profiles']:
            if compact and p['model'] not in ('gtpt-s', 'rtmpose-m'):
                continue
            lines.append(
                f"| {p['model']} | {p['runtime']} | {p['total_ms']:.2f} | "
                f"{p['matrix_ms']:.2f} | {p['conv_ms']:.2f} | "
                f"{p['glue_ms']:.2f} | {p['other_ms']:.2f} | "
                f"{p['glue_share']:.0%} | {p['top_ops']} |")
    return '\n'.join(lines)


def _flags(settings: dict) -> str:
    """The command-line flags that differ from the defaults."""
    defaults = dict(
        variants=['t', 's', 'b'],
        runtimes=list(SPEED_TARGETS),
        batch_sizes=[1, 32],
        rounds=5,
        threads=2,
        no_unpruned=False,
        no_rtmpose=False,
        profile=False)
    flags = []
    for key, default in defaults.items():
        value = settings.get(key)
        if value == default or value is None:
            continue
        flag = '--' + key.replace('_', '-')
        if isinstance(value, bool):
            flags.append(flag)
        elif isinstance(value, list):
            flags.append(f'{flag} {" ".join(map(str, value))}')
        else:
            flags.append(f'{flag} {value}')
    return ''.join(' ' + f for f in flags)


def update_readme(path: str, text: str) -> None:
    """Replace what stands between the README's benchmark markers."""
    with open(path, encoding='utf-8') as f:
        readme = f.read()
    if BEGIN not in readme or END not in readme:
        raise ValueError(f'{path} has no {BEGIN} ... {END} section')
    head, rest = readme.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    with open(path, 'w', encoding='utf-8') as f:
        f.write(f'{head}{BEGIN}\n{text}\n{END}{tail}')


if __name__ == '__main__':
    saved = json.load(open(sys.argv[1]))
    saved['ratios'] = ratios(saved)
    if len(sys.argv) > 2:
        update_readme(sys.argv[2], markdown(saved, compact=True))
    else:
        print(markdown(saved))
