"""Timing helpers of the benchmarks: per-image times, interleaved rounds,
their statistics, and the machine they ran on."""
import datetime
import os
import platform
import statistics
import subprocess
import time
from typing import (Callable, Dict, Hashable, Iterable, List, Optional,
                    Sequence, TypeVar)

K = TypeVar('K', bound=Hashable)


def calls_per_timing(batch: int) -> int:
    """How many calls one timing averages: max(2, 10 // batch)."""
    return max(2, 10 // batch)


def time_per_image(call: Callable[[], object],
                   batch: int,
                   calls: Optional[int] = None,
                   warmup: int = 1) -> float:
    """Milliseconds per image: the mean over ``calls`` calls (default
    :func:`calls_per_timing`) after ``warmup`` untimed ones, divided by
    ``batch``."""
    calls = calls or calls_per_timing(batch)
    for _ in range(warmup):
        call()
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls / batch * 1e3


def interleaved(keys: Sequence[K], round_index: int) -> List[K]:
    """The order of one round: ``keys``, reversed every other round, so
    that no key always runs right after the same one."""
    return list(keys) if round_index % 2 == 0 else list(keys)[::-1]


def interleaved_rounds(timers: Dict[K, Callable[[], float]],
                       rounds: int,
                       group: Callable[[K], Hashable] = lambda key: None,
                       settle: float = 0.0,
                       log: Callable[[str],
                                     None] = print) -> Dict[K, List[float]]:
    """Run every timer once per round, in :func:`interleaved` order; where
    ``group(key)`` changes, sleep ``settle`` seconds first (so that the
    threads of one runtime stop spinning before the next one's timings).

    Returns:
        dict: key -> the value of its timer in every round, in round order.
    """
    keys = list(timers)
    times: Dict[K, List[float]] = {k: [] for k in keys}
    start = time.perf_counter()
    for r in range(rounds):
        previous = object()
        for key in interleaved(keys, r):
            if settle and group(key) != previous:
                time.sleep(settle)
            previous = group(key)
            times[key].append(timers[key]())
        log(f'round {r + 1}/{rounds} done: {len(keys)} timings, '
            f'{(time.perf_counter() - start) / 60:.1f} min so far')
    return times


def summary(rounds_ms: Sequence[float]) -> Dict[str, object]:
    """The recorded rounds with their median and minimum."""
    return dict(
        rounds_ms=list(rounds_ms),
        median_ms=statistics.median(rounds_ms),
        min_ms=min(rounds_ms))


def _version(module: str) -> Optional[str]:
    try:
        version = __import__(module).__version__
    except ImportError:
        return None
    return version.split('-')[0]  # OpenVINO appends its build


def _commit(checkout: str) -> Optional[str]:
    """The commit of the git checkout that holds ``checkout`` ('-dirty'
    with uncommitted changes), or None outside one."""
    try:
        out = subprocess.run(
            ['git', 'describe', '--always', '--dirty', '--abbrev=7'],
            cwd=checkout,
            capture_output=True,
            text=True,
            timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def machine(
    threads: int,
    checkout: Optional[str] = None,
    runtimes: Iterable[str] = ('onnxruntime', 'openvino')
) -> dict:
    """What a measurement ran on: CPU model (MKL and oneDNN pick kernels by
    it), cores, threads per runtime, library versions, date, and the commit
    of the checkout ``checkout`` (a path inside it) where given."""
    import torch

    from ..deploy.cpu_info import cpuinfo_field
    info = dict(
        cpu=cpuinfo_field('model name') or platform.processor()
        or platform.machine(),
        cores=os.cpu_count(),
        usable_cores=len(os.sched_getaffinity(0)) if hasattr(
            os, 'sched_getaffinity') else os.cpu_count(),
        threads=threads,
        python=platform.python_version(),
        torch=torch.__version__,
        date=datetime.date.today().isoformat(),
        commit=_commit(checkout) if checkout else None)
    if torch.cuda.is_available():
        info['gpu'] = torch.cuda.get_device_name()
    for module in runtimes:
        info[module] = _version(module)
    return info
