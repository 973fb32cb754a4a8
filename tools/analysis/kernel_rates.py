"""How fast a runtime runs GTPT's matrix products alone, at their shapes.

Every matrix product of the exported graph (``MatMul``/``Gemm`` with a
constant weight, and the 3-D ``Attention`` op) is rebuilt as a graph of its
own, one node, and timed in ONNX Runtime and OpenVINO, its input bound once;
the call's overhead (an ``Identity`` graph timed the same way) is taken
off. Beside it stands ONNX Runtime's own per-node profile of the whole graph:
where the two agree, the products already run as fast as the runtime can
run them at these shapes, and no rewrite around them can make them faster.
ONNX Runtime's profiler adds about a tenth to a GEMM node's time (a chain of
32 MatMuls of 257 x 576 x 576: 177 GMAC/s by the clock, 161 by the profile).

Example::

    python tools/analysis/kernel_rates.py --variant s
"""
import argparse
import os.path as osp
import sys
import tempfile
import time
import warnings
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper, shape_inference

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from benchmark import build_models, parse_args, timed_modules  # noqa: E402
from op_profile import onnxruntime_node_seconds  # noqa: E402

RUNTIMES = ('onnxruntime', 'openvino', 'openvino-bf16')
Shape = Tuple[str, tuple]  # (op kind, its sizes)


def products(model: onnx.ModelProto) -> List[Tuple[str, Shape, int]]:
    """(node name, (kind, sizes), MACs) of every matrix product: kind
    ``'linear'`` with sizes (M, K, N), or ``'attention'`` with (B, Nq, Nk,
    C, heads)."""
    model = shape_inference.infer_shapes(model, data_prop=True)
    g = model.graph
    dims = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in list(g.value_info) + list(g.input) + list(g.output)
    }
    weights = {i.name: list(i.dims) for i in g.initializer}
    out = []
    for n in g.node:
        if n.op_type in ('MatMul', 'Gemm') and n.input[1] in weights:
            k, cols = weights[n.input[1]]
            if n.op_type == 'Gemm' and any(a.name == 'transB' and a.i
                                           for a in n.attribute):
                k, cols = cols, k
            rows = int(np.prod(dims[n.input[0]][:-1]))
            out.append((n.name, ('linear', (rows, k, cols)), rows * k * cols))
        elif n.op_type == 'Attention':
            (b, nq, c), (_, nk, _) = dims[n.input[0]], dims[n.input[1]]
            heads = next(a.i for a in n.attribute if a.name == 'q_num_heads')
            out.append((n.name, ('attention', (b, nq, nk, c, heads)),
                        2 * b * nq * nk * c))
    return out


def one_node_graph(shape: Optional[Shape]
                   ) -> Tuple[bytes, Dict[str, np.ndarray]]:
    """The product alone (``None``: an ``Identity``), and its inputs."""
    rng = np.random.RandomState(0)
    f32 = TensorProto.FLOAT
    if shape is None:
        x = helper.make_tensor_value_info('x', f32, [1])
        node = helper.make_node('Identity', ['x'], ['y'])
        graph = helper.make_graph(
            [node], 'g', [x], [helper.make_tensor_value_info('y', f32, [1])])
        feeds = {'x': np.ones(1, np.float32)}
        opset = 17
    elif shape[0] == 'linear':
        m, k, n = shape[1]
        w = numpy_helper.from_array(
            (rng.randn(k, n) * k**-0.5).astype(np.float32), 'w')
        graph = helper.make_graph(
            [helper.make_node('MatMul', ['x', 'w'], ['y'])], 'g',
            [helper.make_tensor_value_info('x', f32, [m, k])],
            [helper.make_tensor_value_info('y', f32, [m, n])], [w])
        feeds = {'x': rng.randn(m, k).astype(np.float32)}
        opset = 17
    else:
        b, nq, nk, c, heads = shape[1]
        sizes = dict(q=nq, k=nk, v=nk)
        graph = helper.make_graph([
            helper.make_node(
                'Attention', ['q', 'k', 'v'], ['y'],
                q_num_heads=heads,
                kv_num_heads=heads)
        ], 'g', [
            helper.make_tensor_value_info(t, f32, [b, n, c])
            for t, n in sizes.items()
        ], [helper.make_tensor_value_info('y', f32, [b, nq, c])])
        feeds = {
            t: rng.randn(b, n, c).astype(np.float32)
            for t, n in sizes.items()
        }
        opset = 23
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid('', opset)])
    return model.SerializeToString(), feeds


def bound_call(model: bytes, feeds: Dict[str, np.ndarray], runtime: str,
               threads: int) -> Callable[[], object]:
    """A call that runs ``model`` on ``feeds`` bound once."""
    if runtime == 'onnxruntime':
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(
            model, options, providers=['CPUExecutionProvider'])
        binding = session.io_binding()
        for name, value in feeds.items():
            binding.bind_cpu_input(name, value)
        binding.bind_output('y')
        return lambda: session.run_with_iobinding(binding)
    import openvino as ov
    core = ov.Core()
    compiled = core.compile_model(
        core.read_model(model, b''), 'CPU', {
            'PERFORMANCE_HINT':
            'LATENCY',
            'INFERENCE_NUM_THREADS':
            threads,
            'INFERENCE_PRECISION_HINT':
            'bf16' if runtime == 'openvino-bf16' else 'f32'
        })
    request = compiled.create_infer_request()
    for port in compiled.inputs:
        request.set_tensor(port, ov.Tensor(feeds[port.any_name]))
    return request.infer


def seconds(call: Callable[[], object], rounds: int = 7) -> float:
    """Best of ``rounds`` means over about 20 ms of calls."""
    call()
    start = time.perf_counter()
    call()
    reps = max(3, int(0.02 / max(time.perf_counter() - start, 1e-6)))
    means = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(reps):
            call()
        means.append((time.perf_counter() - start) / reps)
    return min(means)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--variant', default='s', choices=['t', 's', 'b'])
    p.add_argument('--threads', type=int, default=2)
    p.add_argument(
        '--runtimes', nargs='+', default=list(RUNTIMES), choices=RUNTIMES)
    args = p.parse_args(argv)
    warnings.filterwarnings('ignore')
    torch.set_num_threads(args.threads)
    import gtpt_mmpose  # noqa: F401  (registries)
    from gtpt_mmpose.deploy import FUSED_ATTENTION_OPSET, write_onnx
    name = f'gtpt-{args.variant}'
    bench = parse_args(['--variants', args.variant, '--no-rtmpose'])
    module = timed_modules(build_models(bench), False, 'export')[name]
    image = torch.randn(1, 3, 256, 192)
    with tempfile.TemporaryDirectory() as workdir:
        path = osp.join(workdir, f'{name}.onnx')
        write_onnx(module, image, path, FUSED_ATTENTION_OPSET)
        nodes = products(onnx.load(path))
        profiled = {  # ms per call of each node of the whole graph
            node: s * 1e3
            for node, (_, s) in onnxruntime_node_seconds(
                path, image.numpy(), args.threads, 20, workdir).items()
        }
    shapes = sorted({s for _, s, _ in nodes})
    alone: Dict[Tuple[str, Shape], float] = {}
    for rt in args.runtimes:
        overhead = seconds(bound_call(*one_node_graph(None), rt, args.threads))
        for shape in shapes:
            t = seconds(bound_call(*one_node_graph(shape), rt, args.threads))
            alone[rt, shape] = max(t - overhead, 0.0) * 1e3
    print(f'{name} batch 1, {args.threads} threads: ms per call; GMAC/s in '
          'brackets; "in graph" is ONNX Runtime\'s profile of the whole graph')
    print('| products | nodes | MMAC | ONNX Runtime in graph | ' +
          ' | '.join(f'{rt} alone' for rt in args.runtimes) + ' |')
    print('| --- | ---: | ---: | ---: |' + ' ---: |' * len(args.runtimes))
    for kind in ('linear', 'attention'):
        mine = [(n, s, m) for n, s, m in nodes if s[0] == kind]
        macs = sum(m for _, _, m in mine)
        # ONNX Runtime names a fused node '<first node>/<fusion>'
        names = {n for n, _, _ in mine}
        graph = sum(ms for node, ms in profiled.items()
                    if node.split('/')[0] in names)
        cells = [graph] + [
            sum(alone[rt, s] for _, s, _ in mine) for rt in args.runtimes
        ]
        print(f'| {kind} | {len(mine)} | {macs / 1e6:.0f} | ' +
              ' | '.join(f'{ms:.2f} ({macs / ms / 1e6:.0f})' if ms else '-'
                         for ms in cells) + ' |')
    print('\nby shape, GMAC/s alone (' + ', '.join(args.runtimes) + '):')
    for shape in shapes:
        count = sum(s == shape for _, s, _ in nodes)
        macs = next(m for _, s, m in nodes if s == shape)
        rates = [
            f'{macs / alone[rt, shape] / 1e6:.0f}' if alone[rt, shape] else '-'
            for rt in args.runtimes
        ]
        print(f'  {shape[0]} {shape[1]} x{count}: {", ".join(rates)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
