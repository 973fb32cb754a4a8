"""One call of a pose model in each runtime users deploy it with, for the
benchmarks: image -> SimCC logits, no pre- or post-processing.

Runtimes: eager PyTorch in float32 and under bf16 autocast,
``torch.compile`` without and with inductor's freezing (weights folded
into the graph as constants, PyTorch's recommended setting for CPU
inference), ONNX Runtime, and OpenVINO in float32 and bf16 (reading the
same ONNX file).
"""
import copy
from typing import Callable, Optional, Sequence

import torch
import torch.nn as nn
from torch import Tensor

RUNTIMES = ('eager', 'eager-bf16', 'compile', 'compile-freezing',
            'onnxruntime', 'openvino', 'openvino-bf16')
EXPORTED = ('onnxruntime', 'openvino', 'openvino-bf16')

Call = Callable[[], Sequence]


def image_to_logits(pose_model: nn.Module,
                    backend: Optional[str],
                    path: str = 'pruned') -> nn.Module:
    """The image -> logits module that a runtime runs.

    Args:
        pose_model (nn.Module): A top-down pose model in eval mode; not
            modified.
        backend (str, optional): For GTPT, ``prepare_for_inference``'s
            backend (``'eager'`` for the PyTorch runtimes, ``'export'`` for
            the exported ones) on a copy; None: the model as trained.
        path (str): GTPT's pruning path, ``'pruned'`` or ``'unpruned'``.
    """
    from ..deploy import ImageToSimCC, prepare_for_inference
    from ..models.backbones import GTPT
    if backend is not None and isinstance(pose_model.backbone, GTPT):
        pose_model = prepare_for_inference(copy.deepcopy(pose_model), backend)
    return ImageToSimCC(pose_model, path).eval()


class FrozenGraphs(nn.Module):
    """``module`` behind a forward of its own, for ``compile-freezing``.

    Dynamo keeps its compiled graphs per code object of the outermost
    forward and reuses one whose guards pass, whatever inductor's settings
    were: compiled after ``compile``, the same model would run its unfrozen
    graph again (docs/design.md §3).
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: Tensor):
        return self.module(x)


def runtime_call(runtime: str,
                 image: Tensor,
                 module: Optional[nn.Module] = None,
                 onnx_file: Optional[str] = None,
                 threads: Optional[int] = None) -> Call:
    """A call that runs ``image`` through a runtime, ready to time: compiled
    graphs are compiled and sessions opened before it returns.

    Args:
        runtime (str): One of :data:`RUNTIMES`.
        image (Tensor): (N, 3, H, W), the input of every call.
        module (nn.Module, optional): For the PyTorch runtimes: the
            image -> logits module (from :func:`image_to_logits`).
        onnx_file (str, optional): For the exported runtimes: the graph
            (static batch size N).
        threads (int, optional): Intra-op threads of the exported runtimes.

    Returns:
        callable: () -> the outputs (tensors or numpy arrays).
    """
    if runtime in EXPORTED:
        if onnx_file is None:
            raise ValueError(f'{runtime} runs an ONNX file; none given')
        from ..deploy import open_session
        session = open_session(onnx_file, runtime, threads)
        feed = image.numpy()
        return lambda: session(feed)
    if runtime not in RUNTIMES:
        raise ValueError(f'unknown runtime {runtime!r}; one of {RUNTIMES}')
    if module is None:
        raise ValueError(f'{runtime} runs a module; none given')
    import torch._inductor.config as inductor_config
    freezing = runtime == 'compile-freezing'
    if freezing:
        module = FrozenGraphs(module)
    if runtime.startswith('compile'):
        # one graph per module and batch size, compiled by the first call
        # below: inductor reads its freezing setting then
        module = torch.compile(module, dynamic=False)
    autocast = runtime == 'eager-bf16'

    def call():
        with torch.no_grad(), torch.autocast(
                image.device.type, torch.bfloat16, enabled=autocast):
            return module(image)

    with inductor_config.patch(freezing=freezing):
        call()
    return call
