#!/usr/bin/env python
"""The GPU check: one line per figure that only a GPU can give (docs/gpu.md).

    python tools/gpu_check/check.py            # all of it, ~5 min on one GPU
    python tools/gpu_check/check.py --sections parity ddp
    python tools/gpu_check/check.py --rehearse
        # the CUDA sections on the CPU at toy sizes: tests this script where
        # no GPU is; their figures mean nothing

Without CUDA every CUDA figure is reported as ``skipped: no CUDA`` and the
CPU half of the parity check still runs; the exit status is 1 only when a
section fails. Figures also go to ``--out`` (JSON).
"""
import argparse
import logging
import os
import os.path as osp
import platform
import sys
import time
import traceback
import warnings
from dataclasses import dataclass
from typing import Optional, Sequence

import torch

warnings.filterwarnings('ignore')  # the figures are the output
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import correctness  # noqa: E402 (sibling modules)
import speed  # noqa: E402
from figures import Report  # noqa: E402

#: section -> (run, names of its CUDA figures (for skipping), CUDA only:
#: nothing to rehearse on a CPU)
SECTIONS = {
    'parity': (correctness.parity, None, False),
    'staged': (correctness.staged_vs_joint,
               lambda a: correctness.FIGURES['staged'], False),
    'amp':
    (correctness.amp_steps, lambda a: correctness.FIGURES['amp'], False),
    'syncs':
    (correctness.host_syncs, lambda a: correctness.FIGURES['syncs'], True),
    'ddp': (correctness.ddp_step, lambda a: correctness.FIGURES['ddp'], False),
    'train': (speed.training, speed.train_figures, False),
    'infer': (speed.inference, speed.infer_figures, False),
}
#: sizes of a real run and of a rehearsal on the CPU
SIZES = {
    'check_batch': (16, 2),
    'amp_steps': (20, 3),
    'batch': (64, 2),
    'infer_batches': ([1, 64], [1, 2]),
    'models': (['gtpt-s', 'gtpt-b', 'rtmpose-m'], ['gtpt-s', 'rtmpose-m']),
    'compile_models': (['gtpt-s', 'rtmpose-m'], []),
    'ort_models': (['gtpt-s', 'rtmpose-m'], ['gtpt-s']),
    'warmup': (3, 1),
    'iters': (10, 2),
    'infer_iters': (20, 2),
}
MODELS = ('gtpt-t', 'gtpt-s', 'gtpt-b', 'rtmpose-m', 'rtmpose-l')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='\n'.join(__doc__.splitlines()[2:]))
    p.add_argument(
        '--sections', nargs='+', choices=list(SECTIONS), default=None)
    p.add_argument('--skip', nargs='+', choices=list(SECTIONS), default=[])
    p.add_argument(
        '--rehearse',
        action='store_true',
        help='run the CUDA sections on the CPU at toy sizes')
    p.add_argument(
        '--fixture',
        default='gtpt-b_coco-wholebody',
        help="authors' fixture of tests/data/official-gtpt")
    p.add_argument(
        '--check-batch',
        type=int,
        help='images of the agreement checks (staged, AMP, syncs, DDP)')
    p.add_argument('--amp-steps', type=int)
    p.add_argument('--batch', type=int, help='images of a timed train step')
    p.add_argument('--infer-batches', type=int, nargs='+')
    p.add_argument('--models', nargs='+', choices=MODELS)
    p.add_argument('--compile-models', nargs='*', choices=MODELS)
    p.add_argument('--ort-models', nargs='*', choices=MODELS)
    p.add_argument('--warmup', type=int, help='untimed calls before timing')
    p.add_argument('--iters', type=int, help='timed training steps')
    p.add_argument('--infer-iters', type=int, help='timed inference calls')
    p.add_argument('--out', default='work_dirs/gpu_check.json')
    args = p.parse_args(argv)
    for key, (full, rehearsal) in SIZES.items():
        if getattr(args, key) is None:
            setattr(args, key, rehearsal if args.rehearse else full)
    positive = ('check_batch', 'amp_steps', 'batch', 'iters', 'infer_iters')
    if min(getattr(args, k) for k in positive) < 1 or args.warmup < 0 or min(
            args.infer_batches) < 1:
        p.error('batch sizes, steps and iterations must be positive')
    args.sections = [
        s for s in (args.sections or list(SECTIONS)) if s not in args.skip
    ]
    return args


@dataclass
class Context:
    """What the sections need to know of the run."""
    args: argparse.Namespace
    device: Optional[str]  # where CUDA figures are measured; None: skipped
    why_not: str  # why CUDA figures are skipped
    ort_provider: Optional[str]  # ONNX Runtime's provider for 'ort-cuda'
    why_no_ort: str


def make_context(args: argparse.Namespace) -> Context:
    if torch.cuda.is_available():
        device, why = 'cuda', ''
    else:
        device, why = ('cpu' if args.rehearse else None), 'no CUDA'
    provider, why_no_ort = None, ''
    try:
        import onnxruntime as ort
        available = ort.get_available_providers()
        if args.rehearse and device == 'cpu':
            provider = 'CPUExecutionProvider'
        elif 'CUDAExecutionProvider' in available:
            provider = 'CUDAExecutionProvider'
        else:
            why_no_ort = (f'onnxruntime {ort.__version__} has no '
                          'CUDAExecutionProvider')
    except ImportError:
        why_no_ort = 'onnxruntime is not installed'
    return Context(args, device, why, provider, why_no_ort or why)


def environment(report: Report, ctx: Context) -> None:
    """What ran the check: first, so that every figure has its machine."""
    import mmcv
    import mmengine
    import mmpose

    import gtpt_mmpose
    from gtpt_mmpose.deploy.cpu_info import cpuinfo_field
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        report.add(
            'env.device',
            props.name,
            note=f'{props.total_memory / 2**30:.0f} GiB, '
            f'{props.multi_processor_count} SMs, capability '
            f'{props.major}.{props.minor}')
    else:
        report.add(
            'env.device',
            'cpu',
            note='no CUDA' +
            ('; REHEARSAL: CUDA sections run on the CPU at toy sizes, their '
             'figures mean nothing' if ctx.args.rehearse else ''))
    report.add(
        'env.torch',
        torch.__version__,
        note=f'CUDA {torch.version.cuda}, cuDNN '
        f'{torch.backends.cudnn.version()}')
    report.add(
        'env.stack',
        f'mmcv {mmcv.__version__}, mmengine {mmengine.__version__}, mmpose '
        f'{mmpose.__version__}, gtpt_mmpose {gtpt_mmpose.__version__}')
    report.add(
        'env.host',
        f'Python {platform.python_version()}',
        note=f'{cpuinfo_field("model name") or platform.machine()}, '
        f'{os.cpu_count()} CPUs')
    report.add(
        'env.onnxruntime',
        ctx.ort_provider or '-',
        note=ctx.why_no_ort or 'provider of the ort-cuda figures')


def run_section(report: Report, ctx: Context, name: str) -> None:
    run, cuda_figures, cuda_only = SECTIONS[name]
    if cuda_figures is not None and (ctx.device is None or
                                     (cuda_only and ctx.device != 'cuda')):
        for figure in cuda_figures(ctx.args):
            report.skip(figure, ctx.why_not or 'needs CUDA itself')
        return
    start = time.perf_counter()
    try:
        run(report, ctx)
    except Exception as error:  # report it, go on with the next section
        traceback.print_exc()
        report.fail(f'{name}', error)
    report.add(f'time.{name}', time.perf_counter() - start, 's', fmt='.1f')


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    from mmengine.logging import MMLogger

    import gtpt_mmpose  # noqa: F401 (registers GTPT)
    MMLogger.get_current_instance().setLevel(logging.WARNING)  # no chatter
    ctx = make_context(args)
    report = Report()
    start = time.perf_counter()
    environment(report, ctx)
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    for name in args.sections:
        run_section(report, ctx, name)
        if args.out:  # after each section: a run cut short keeps its figures
            report.write(args.out, _settings(args, ctx))
    report.add('time.total', time.perf_counter() - start, 's', fmt='.1f')
    if args.out:
        report.write(args.out, _settings(args, ctx))
    return 1 if report.failed else 0


def _settings(args: argparse.Namespace, ctx: Context) -> dict:
    out = dict(vars(args))
    out.update(
        device=ctx.device,
        torch=torch.__version__,
        date=time.strftime('%Y-%m-%d %H:%M'))
    return out


if __name__ == '__main__':
    sys.exit(main())
