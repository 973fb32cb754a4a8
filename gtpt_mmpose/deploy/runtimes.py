"""The runtimes an exported GTPT graph is deployed with: ONNX Runtime and
OpenVINO (an optional dependency, ``requirements/deploy.txt``)."""
import importlib.util
from typing import Callable, Dict, List, Optional

import numpy as np

#: runtime name -> the Python module it needs
RUNTIMES = {
    'onnxruntime': 'onnxruntime',
    'openvino': 'openvino',
    'openvino-bf16': 'openvino',
}

Session = Callable[[np.ndarray], List[np.ndarray]]


def available_runtimes() -> List[str]:
    """The runtimes whose Python package is installed."""
    return [
        name for name, module in RUNTIMES.items()
        if importlib.util.find_spec(module) is not None
    ]


def open_session(path: str,
                 runtime: str,
                 threads: Optional[int] = None,
                 profile_prefix: Optional[str] = None,
                 spin: bool = True) -> Session:
    """Load an ONNX file into a runtime; returns ``run(image) -> outputs``.

    Args:
        path (str): The ONNX file.
        runtime (str): ``'onnxruntime'``, ``'openvino'`` (fp32) or
            ``'openvino-bf16'`` (bf16 where the CPU has it, fp32 elsewhere).
        threads (int, optional): Intra-op threads; the runtime's default
            when None.
        profile_prefix (str, optional): Turn on the runtime's per-node
            profiler (ONNX Runtime: the file prefix of its trace).
        spin (bool): Let ONNX Runtime's idle threads spin, which lowers
            latency when it has the cores to itself; not when it shares
            them with other runtimes in one process.

    Returns:
        callable: numpy (N, 3, H, W) float32 -> list of numpy outputs.
    """
    if runtime == 'onnxruntime':
        import onnxruntime as ort
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        if not spin:
            options.add_session_config_entry('session.intra_op.allow_spinning',
                                             '0')
        if profile_prefix:
            options.enable_profiling = True
            options.profile_file_prefix = profile_prefix
        session = ort.InferenceSession(
            path, options, providers=['CPUExecutionProvider'])
        name = session.get_inputs()[0].name

        def run_ort(image: np.ndarray) -> List[np.ndarray]:
            return session.run(None, {name: image})

        run_ort.session = session
        return run_ort
    if runtime in ('openvino', 'openvino-bf16'):
        import openvino as ov
        config: Dict[str, object] = {
            'PERFORMANCE_HINT':
            'LATENCY',
            'INFERENCE_PRECISION_HINT':
            'bf16' if runtime == 'openvino-bf16' else 'f32',
        }
        if threads:
            config['INFERENCE_NUM_THREADS'] = threads
        if profile_prefix:
            config['PERF_COUNT'] = True
        compiled = ov.Core().compile_model(path, 'CPU', config)
        request = compiled.create_infer_request()

        def run_ov(image: np.ndarray) -> List[np.ndarray]:
            request.infer({0: image})
            return [
                request.get_output_tensor(i).data.copy()
                for i in range(len(compiled.outputs))
            ]

        run_ov.request = request
        return run_ov
    raise ValueError(f'unknown runtime {runtime!r}; one of {sorted(RUNTIMES)}')
