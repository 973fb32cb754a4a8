"""The GPU check's lines, and the timers and settings its sections share."""
import contextlib
import gc
import json
import statistics
import time
from typing import Callable, Dict, Iterator, List, Union

import torch

NAME_WIDTH = 46


class Report:
    """Prints one line per figure, ``NAME  VALUE UNIT  (NOTE)``, or
    ``NAME  skipped: WHY``, as soon as it is known, and keeps them for the
    JSON file."""

    def __init__(self) -> None:
        self.rows: List[dict] = []

    def add(self,
            name: str,
            value: Union[float, int, str],
            unit: str = '',
            note: str = '',
            fmt: str = '.4g') -> None:
        """A measured figure."""
        text = format(value, fmt) if isinstance(value, float) else str(value)
        self._print(name, f'{text} {unit}'.rstrip(), note)
        self.rows.append(dict(name=name, value=value, unit=unit, note=note))

    def skip(self, name: str, why: str) -> None:
        """A figure this machine cannot give."""
        self._print(name, f'skipped: {why}', '')
        self.rows.append(dict(name=name, skipped=why))

    def fail(self, name: str, error: BaseException) -> None:
        """A section that raised: its remaining figures are missing."""
        why = f'{type(error).__name__}: {error}'.splitlines()[0][:300]
        self._print(name, f'FAILED: {why}', '')
        self.rows.append(dict(name=name, failed=why))

    @property
    def failed(self) -> bool:
        return any('failed' in r for r in self.rows)

    def write(self, path: str, settings: dict) -> None:
        with open(path, 'w') as f:
            json.dump(dict(settings=settings, figures=self.rows), f, indent=1)

    @staticmethod
    def _print(name: str, value: str, note: str) -> None:
        line = f'{name:<{NAME_WIDTH}} {value}'
        print(line + (f'  ({note})' if note else ''), flush=True)


def synchronize(device: str) -> None:
    if device == 'cuda':
        torch.cuda.synchronize()


def median_ms(call: Callable[[], object],
              device: str,
              warmup: int,
              iters: int,
              wall: bool = False) -> float:
    """Median milliseconds of ``iters`` calls after ``warmup`` calls: CUDA
    events around each call on a GPU (the work it queued on PyTorch's
    stream), the wall clock on a CPU or with ``wall`` (a call that returns
    only when its results are on the host, e.g. ONNX Runtime's)."""
    for _ in range(warmup):
        call()
    synchronize(device)
    times = []
    if device == 'cuda' and not wall:
        pairs = []
        for _ in range(iters):
            start, end = (
                torch.cuda.Event(enable_timing=True) for _ in range(2))
            start.record()
            call()
            end.record()
            pairs.append((start, end))
        torch.cuda.synchronize()
        times = [s.elapsed_time(e) for s, e in pairs]
    else:
        for _ in range(iters):
            start = time.perf_counter()
            call()
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


@contextlib.contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    """TensorFloat-32 for float32 matrix products and cuDNN, on or off,
    restored afterwards. Through the ``allow_tf32`` flags: ``torch.export``
    reads cuDNN's, which torch 2.13 refuses to read once the newer
    ``fp32_precision`` flags have set convolutions and RNNs apart."""
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    before = matmul.allow_tf32, cudnn.allow_tf32
    matmul.allow_tf32 = cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = before


@contextlib.contextmanager
def cudnn_benchmark(enabled: bool) -> Iterator[None]:
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def max_abs_diff(a, b) -> float:
    """Largest |a - b| over tensors (or tuples of them), in float32 on the
    CPU."""
    if isinstance(a, (tuple, list)):
        return max(max_abs_diff(x, y) for x, y in zip(a, b))
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    return float(
        (a.detach().float().cpu() - b.detach().float().cpu()).abs().max())


def grad_gap(grads: Dict[str, torch.Tensor],
             reference: Dict[str, torch.Tensor]) -> float:
    """max |g - g_ref| over every parameter, relative to the largest
    reference gradient (biases before a BatchNorm have a true gradient of
    0, so a per-tensor relative error would read rounding as disagreement).
    """
    if set(grads) != set(reference):
        raise ValueError('the two runs have gradients for different '
                         f'parameters: {sorted(set(grads) ^ set(reference))}')
    largest = max(float(g.abs().max()) for g in reference.values())
    if largest == 0:
        raise ValueError('every reference gradient is zero')
    return max(
        float((grads[n].float() - g.float()).abs().max())
        for n, g in reference.items()) / largest


def verdict(value: float, tolerance: float) -> str:
    return (f'<= {tolerance:g}: ok'
            if value <= tolerance else f'> {tolerance:g}: DIFFERS')


def release(device: str) -> None:
    """Give the memory of the models just dropped back before the next
    measurement."""
    gc.collect()
    if device == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
