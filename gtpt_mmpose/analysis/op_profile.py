"""Where the time of one model call goes, by op kind, in each runtime.

Each runtime's own profiler (torch.profiler, ONNX Runtime's trace, OpenVINO's
per-node counters) gives op times; they are summed into four kinds: matrix
products (linear layers and attention), convolutions, layout glue (copies
that only move data: transposes, reorders, reshapes, slices, concatenations,
gathers, splits, expansions, pads) and everything else (norms,
activations, element-wise and fused subgraphs, top-k). Used by the
benchmarks' ``--profile``. Profiler overhead is included: op times are not
the benchmarks' wall times, their shares are what to compare.
"""
import collections
import json
import os.path as osp
from typing import Callable, Dict

KINDS = ('matrix', 'conv', 'glue', 'other')

# op names by kind, torch's (matched without their namespace, eager and
# inductor's extern kernels), then ONNX Runtime's, then OpenVINO's
MATRIX_OPS = frozenset("""
    addmm mm bmm baddbmm matmul linear _linear_pointwise _mkl_linear mkl_linear
    _scaled_dot_product_flash_attention_for_cpu
    _scaled_dot_product_flash_attention_for_cpu_backward
    Gemm MatMul FusedMatMul FusedGemm Attention MultiHeadAttention
    FullyConnected ScaledDotProductAttention ScaledAttn
    """.split())
CONV_OPS = frozenset("""
    conv2d convolution _convolution mkldnn_convolution _convolution_pointwise
    _slow_conv2d_forward _slow_conv2d_backward thnn_conv2d convolution_backward
    mkldnn_convolution_backward
    Conv FusedConv
    Convolution GroupConvolution Deconvolution
    """.split())
GLUE_OPS = frozenset("""
    copy_ cat gather index index_select clone contiguous stack expand permute
    transpose view reshape _unsafe_view as_strided slice select unbind split
    split_with_sizes chunk constant_pad_nd pad flatten unsqueeze squeeze t
    empty empty_like new_empty pixel_shuffle movedim unflatten narrow
    Transpose Reshape Slice Concat Gather GatherElements GatherND Split Squeeze
    Unsqueeze Expand Pad ReorderInput ReorderOutput Identity Flatten Tile
    DepthToSpace SpaceToDepth
    Reorder Broadcast VariadicSplit StridedSlice ShuffleChannels
    """.split())


def op_kind(name: str) -> str:
    """The kind of an op name from any of the three profilers."""
    base = name.split('::')[-1]
    for kind, ops in (('matrix', MATRIX_OPS), ('conv', CONV_OPS), ('glue',
                                                                   GLUE_OPS)):
        if base in ops:
            return kind
    return 'other'


def torch_op_seconds(call: Callable[[], object],
                     calls: int) -> Dict[str, float]:
    """Self CPU seconds per call of every torch op (eager or compiled)."""
    from torch.profiler import ProfilerActivity, profile
    call()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            call()
    return {
        e.key: e.self_cpu_time_total * 1e-6 / calls
        for e in prof.key_averages()
        if not e.key.startswith(('Torch-Compiled Region', '## '))
    }


def onnxruntime_op_seconds(path: str, image, threads: int, calls: int,
                           workdir: str) -> Dict[str, float]:
    """Kernel seconds per call of every ONNX Runtime op type, from its
    profiler's trace of ``calls`` runs after a warm-up run."""
    from ..deploy import open_session
    run = open_session(
        path,
        'onnxruntime',
        threads,
        profile_prefix=osp.join(workdir, 'ort_profile'))
    for _ in range(calls + 1):
        run(image)
    with open(run.session.end_profiling()) as f:
        events = json.load(f)
    runs = sorted(
        e['ts'] for e in events
        if e.get('cat') == 'Session' and e.get('name') == 'model_run')
    seconds: Dict[str, float] = collections.defaultdict(float)
    for e in events:  # node events after the first (warm-up) run
        if (e.get('cat') == 'Node' and e['name'].endswith('_kernel_time')
                and e['ts'] >= runs[1]):
            seconds[e['args']['op_name']] += e['dur'] * 1e-6 / calls
    return dict(seconds)


def openvino_op_seconds(path: str, image, threads: int, calls: int,
                        runtime: str) -> Dict[str, float]:
    """Seconds per call of every OpenVINO node type that ran."""
    from ..deploy import open_session
    run = open_session(path, runtime, threads, profile_prefix='perf_count')
    run(image)
    seconds: Dict[str, float] = collections.defaultdict(float)
    for _ in range(calls):
        run(image)
        for node in run.request.profiling_info:
            if node.status == node.Status.EXECUTED:
                seconds[node.node_type] += (
                    node.real_time.total_seconds() / calls)
    return dict(seconds)


def by_kind(seconds: Dict[str, float], batch: int) -> Dict[str, float]:
    """Per kind: ``{kind}_ms`` per image and ``{kind}_share`` of the op
    time; ``total_ms`` per image.

    Args:
        seconds (dict): Op name -> seconds per call, from a profiler above.
        batch (int): Images per call.
    """
    kinds = dict.fromkeys(KINDS, 0.0)
    for op, s in seconds.items():
        kinds[op_kind(op)] += s * 1e3 / batch
    total = sum(kinds.values())
    out = {f'{k}_ms': v for k, v in kinds.items()}
    out.update({
        f'{k}_share': v / total if total else 0.0
        for k, v in kinds.items()
    })
    out['total_ms'] = total
    return out


def top_ops(seconds: Dict[str, float], batch: int, n: int = 8) -> str:
    """The ``n`` slowest ops, 'name ms' per image, for the report."""
    ops = sorted(seconds.items(), key=lambda kv: -kv[1])[:n]
    return ', '.join(f'{op.split("::")[-1]} {s * 1e3 / batch:.2f}'
                     for op, s in ops)
