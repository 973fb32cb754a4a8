"""The GPU check's speed figures: training step time and peak memory per
image, and inference time per image in eager PyTorch, ``torch.compile`` and
ONNX Runtime's CUDA provider, each against RTMPose-m.

Models carry random weights; inputs are synthetic and already on the
device, so the figures time the model, not data loading. cuDNN's benchmark
mode is on (the input shape is fixed). Times are medians of CUDA-event
timed calls after warm-up calls.
"""
import functools
import os.path as osp
import tempfile
import time
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from correctness import optim_wrapper
from figures import cudnn_benchmark, max_abs_diff, median_ms, release, tf32

from gtpt_mmpose.analysis.model_zoo import build_model
from gtpt_mmpose.analysis.synthetic import training_data

REFERENCE = 'rtmpose-m'
#: training precisions: float32 with TF32 off, with TF32 on, and MMEngine's
#: AmpOptimWrapper (float16 autocast, dynamic loss scale)
TRAIN_PRECISIONS = ('fp32', 'tf32', 'amp')
RUNTIMES = ('eager', 'compile', 'ort-cuda')


def train_runs(args) -> List[Tuple[str, str, bool]]:
    """(model, precision, staged) of every timed training run: each model in
    each precision, and GTPT in float32 with one joint backward too."""
    runs = [(m, p, True) for m in args.models for p in TRAIN_PRECISIONS]
    return runs + [(m, 'fp32', False)
                   for m in args.models if m.startswith('gtpt')]


def _train_label(model: str, precision: str, staged: bool) -> str:
    return f'train.{model}.{precision}{"" if staged else "-joint"}'


def train_figures(args) -> List[str]:
    names = []
    for run in train_runs(args):
        label = _train_label(*run)
        names += [f'{label}.ms_per_image', f'{label}.peak_mb_per_image']
    return names + [
        f'train.ratio.{m}/{REFERENCE}.{p}'
        for m in args.models if m != REFERENCE for p in TRAIN_PRECISIONS
    ]


def training(report, ctx) -> None:
    """Step time and peak memory per image at ``--batch``: MMEngine's
    ``train_step`` (data preprocessor, forward, loss, backward, Adam). A run
    that fails is reported on its line; the others go on."""
    device, batch = ctx.device, ctx.args.batch
    ms: Dict[Tuple[str, str], float] = {}
    for model_name, precision, staged in train_runs(ctx.args):
        label = _train_label(model_name, precision, staged)
        if device == 'cpu' and precision == 'amp' and \
                not model_name.startswith('gtpt'):
            report.skip(
                f'{label}.ms_per_image', 'bfloat16 on the CPU: MMPose\'s '
                'SimCC accuracy goes through numpy, which has none')
            continue
        try:
            t, peak = _train_run(model_name, precision, staged, ctx)
        except Exception as error:  # e.g. out of memory: the next run
            report.fail(f'{label}.ms_per_image', error)
            release(device)
            continue
        if staged:
            ms[model_name, precision] = t
        report.add(
            f'{label}.ms_per_image',
            t,
            'ms',
            note=f'batch {batch}, median of {ctx.args.iters} steps',
            fmt='.3f')
        if peak is None:
            report.skip(f'{label}.peak_mb_per_image', ctx.why_not)
        else:
            report.add(
                f'{label}.peak_mb_per_image',
                peak,
                'MB',
                note='peak allocated above the model and Adam state',
                fmt='.1f')
    for model_name in ctx.args.models:
        for precision in TRAIN_PRECISIONS:
            if model_name == REFERENCE or not {(model_name, precision),
                                               (REFERENCE, precision)
                                               } <= set(ms):
                continue
            report.add(
                f'train.ratio.{model_name}/{REFERENCE}.{precision}',
                ms[model_name, precision] / ms[REFERENCE, precision],
                note='time per image',
                fmt='.2f')


def _train_run(model_name: str, precision: str, staged: bool,
               ctx) -> Tuple[float, Optional[float]]:
    """ms per image of a training step, and peak MB per image (None off a
    GPU)."""
    device, args = ctx.device, ctx.args
    options = {'unpruned_first': staged} \
        if model_name.startswith('gtpt') else {}
    model = build_model(model_name, device, **options).train()
    wrapper = optim_wrapper(model, amp=precision == 'amp')
    data = training_data(args.batch, device)
    step = functools.partial(model.train_step, data, wrapper)
    try:
        with tf32(precision == 'tf32'), cudnn_benchmark(True):
            step()  # Adam's state and cuDNN's choices, before the baseline
            base = _reset_peak(device)
            t = median_ms(step, device, args.warmup, args.iters)
            peak = _peak_since(device, base)
    finally:
        del model, wrapper, data, step
        release(device)
    return t / args.batch, None if peak is None else peak / args.batch


def _reset_peak(device: str) -> int:
    if device != 'cuda':
        return 0
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    return torch.cuda.memory_allocated()


def _peak_since(device: str, base: int):
    """Peak bytes allocated above ``base`` (MB), None off a GPU."""
    if device != 'cuda':
        return None
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def infer_runs(args) -> List[Tuple[str, str, int]]:
    """(model, runtime, batch) of every timed inference run."""
    wanted = {
        'eager': args.models,
        'compile': args.compile_models,
        'ort-cuda': args.ort_models
    }
    return [(m, r, b) for m in args.models for r in RUNTIMES if m in wanted[r]
            for b in args.infer_batches]


def infer_figures(args) -> List[str]:
    names = []
    for m, r, b in infer_runs(args):
        names.append(f'infer.{m}.{r}.b{b}.ms_per_image')
        if r != 'eager' and b == max(args.infer_batches):
            names.append(f'infer.{m}.{r}.max_abs_diff')
    return names + [
        f'infer.ratio.{m}/{REFERENCE}.{r}.b{b}' for m, r, b in infer_runs(args)
        if m != REFERENCE and (REFERENCE, r, b) in infer_runs(args)
    ]


def inference(report, ctx) -> None:
    """Image -> SimCC logits per image, float32 (TF32 off): GTPT after
    ``prepare_for_inference`` on the device, RTMPose as MMPose builds it. A
    runtime that fails for a model is reported on its line; the others go
    on."""
    from gtpt_mmpose.deploy import ImageToSimCC, prepare_for_inference
    device, runs = ctx.device, infer_runs(ctx.args)
    ms: Dict[Tuple[str, str, int], float] = {}
    eager = {}
    for model_name in ctx.args.models:
        model = build_model(model_name, device).eval()
        if model_name.startswith('gtpt'):
            prepare_for_inference(model)
        eager[model_name] = ImageToSimCC(model).eval()
    # runtime by runtime: every eager figure before the first compilation
    for runtime in RUNTIMES:
        for model_name in ctx.args.models:
            batches = [
                b for m, r, b in runs if (m, r) == (model_name, runtime)
            ]
            name = f'infer.{model_name}.{runtime}'
            if not batches:
                continue
            if runtime == 'ort-cuda' and not ctx.ort_provider:
                for b in batches:
                    report.skip(f'{name}.b{b}.ms_per_image', ctx.why_no_ort)
                report.skip(f'{name}.max_abs_diff', ctx.why_no_ort)
                continue
            try:
                _infer_runtime(report, ctx, name, eager[model_name], batches,
                               ms)
            except Exception as error:  # e.g. a compiler error: go on
                report.fail(name, error)
    del eager
    release(device)
    for (m, r, b), t in ms.items():
        if m != REFERENCE and (REFERENCE, r, b) in ms:
            report.add(
                f'infer.ratio.{m}/{REFERENCE}.{r}.b{b}',
                t / ms[REFERENCE, r, b],
                note='time per image',
                fmt='.2f')


def _infer_runtime(report, ctx, name: str, eager: torch.nn.Module,
                   batches: List[int], ms: dict) -> None:
    """The figures of one model in one runtime; ``ms`` collects its times
    by (model, runtime, batch)."""
    _, model_name, runtime = name.split('.')
    for b in batches:
        x = torch.randn(
            b, 3, 256, 192,
            generator=torch.Generator().manual_seed(b)).to(ctx.device)
        with torch.no_grad(), tf32(False), cudnn_benchmark(True):
            call, note = _runner(runtime, model_name, eager, x, ctx)
            t = median_ms(
                call,
                ctx.device,
                ctx.args.warmup,
                ctx.args.infer_iters,
                wall=runtime.startswith('ort')) / b
            gap = None if runtime == 'eager' else max_abs_diff(
                call(), eager(x))
        ms[model_name, runtime, b] = t
        report.add(f'{name}.b{b}.ms_per_image', t, 'ms', note=note, fmt='.3f')
        if gap is not None and b == max(batches):
            report.add(
                f'{name}.max_abs_diff',
                gap,
                'logit',
                note=f'against eager, batch {b}',
                fmt='.2e')


def _runner(runtime: str, model_name: str, eager: torch.nn.Module,
            x: torch.Tensor, ctx) -> Tuple[Callable[[], object], str]:
    """The call that runs ``eager``'s model on ``x`` in ``runtime``, made
    ready (compiled, exported) now, and a note on what it is."""
    if runtime == 'eager':
        return (lambda: eager(x)), f'batch {x.shape[0]}'
    if runtime == 'compile':
        # one compiled graph per batch size, compiled now
        compiled = torch.compile(eager, dynamic=False)
        start = time.perf_counter()
        compiled(x)
        seconds = time.perf_counter() - start
        return (lambda: compiled(x)), (f'batch {x.shape[0]}, compiled in '
                                       f'{seconds:.0f} s')
    return _ort_runner(model_name, x, ctx)


def _ort_runner(model_name: str, x: torch.Tensor,
                ctx) -> Tuple[Callable[[], object], str]:
    """ONNX Runtime on the model exported as ``tools/deploy/export_onnx.py``
    exports it; numpy in and out, so the time includes the copies."""
    import onnxruntime as ort

    from gtpt_mmpose.deploy import (ImageToSimCC, prepare_for_inference,
                                    write_onnx)
    model = build_model(model_name, 'cpu').eval()  # the same seed's weights
    if model_name.startswith('gtpt'):
        prepare_for_inference(model, 'export')
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'model.onnx')
        write_onnx(ImageToSimCC(model).eval(), x.cpu(), path)
        session = ort.InferenceSession(
            path, providers=[ctx.ort_provider, 'CPUExecutionProvider'])
    if session.get_providers()[0] != ctx.ort_provider:
        raise RuntimeError(f'ONNX Runtime fell back to '
                           f'{session.get_providers()[0]}')
    feed = {session.get_inputs()[0].name: x.cpu().numpy()}

    def run() -> List[np.ndarray]:
        return session.run(None, feed)

    return run, f'batch {x.shape[0]}, {ctx.ort_provider}, numpy in and out'
