"""Export the inference path of a top-down model to ONNX and check the graph
in every installed runtime before the file is written."""
import logging
import os
import os.path as osp
import warnings
from typing import Dict, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from ..utils.safe_checkpoint import create_partial_file
from .onnx_attention import ONNX_TRANSLATION, heads_in_channels
from .runtimes import available_runtimes, open_session

#: The opset of the standard ``Attention`` op: ONNX Runtime (1.23 and
#: newer) and OpenVINO run it as one fused kernel. Older runtimes need an
#: opset-17 graph, where attention is written out in MatMul and Softmax.
FUSED_ATTENTION_OPSET = 23


def write_onnx(model: nn.Module,
               example: Tensor,
               path: str,
               opset: int = FUSED_ATTENTION_OPSET,
               metadata: Optional[Dict[str, str]] = None) -> None:
    """Trace ``model`` on ``example`` into an ONNX file with static shapes:
    input ``input``, outputs ``simcc_x`` and ``simcc_y``.

    Opsets from 23 go through the dynamo exporter, which writes attention as
    the standard ``Attention`` op in its 3-D form (``onnx_attention.py``);
    older ones through the TorchScript exporter, which writes it out.
    ``metadata`` goes into the file's metadata properties.
    """
    names = dict(input_names=['input'], output_names=['simcc_x', 'simcc_y'])
    with warnings.catch_warnings(), _quiet_exporter():
        warnings.simplefilter('ignore')  # static shapes are intended
        if opset >= FUSED_ATTENTION_OPSET:
            with heads_in_channels(model):
                program = torch.onnx.export(
                    model, (example, ),
                    dynamo=True,
                    opset_version=opset,
                    custom_translation_table=ONNX_TRANSLATION,
                    verbose=False,
                    **names)
            program.save(path)
        else:
            torch.onnx.export(
                model, (example, ),
                path,
                opset_version=opset,
                dynamo=False,
                **names)
    if metadata:
        import onnx
        proto = onnx.load(path)
        for key, value in metadata.items():
            proto.metadata_props.add(key=key, value=str(value))
        onnx.save(proto, path)


class _quiet_exporter:
    """Silence the dynamo exporter's progress logging."""

    def __enter__(self):
        self.level = logging.getLogger('torch.onnx').level
        logging.getLogger('torch.onnx').setLevel(logging.ERROR)

    def __exit__(self, *exc):
        logging.getLogger('torch.onnx').setLevel(self.level)


def export_onnx(model: nn.Module,
                example: Tensor,
                out: str,
                opset: int = FUSED_ATTENTION_OPSET,
                atol: float = 1e-3,
                runtimes: Optional[Sequence[str]] = None,
                metadata: Optional[Dict[str, str]] = None) -> Dict[str, float]:
    """Export ``model`` and check it before ``out`` is written.

    The graph goes to a temporary file beside ``out``; each runtime runs it
    on ``example`` and is compared with PyTorch. Only when every difference
    is within ``atol`` is the file moved to ``out``; otherwise nothing is
    left behind.

    Args:
        model (nn.Module): Image -> (simcc_x, simcc_y), e.g.
            :class:`~.inference.ImageToSimCC` of a model prepared with
            ``prepare_for_inference(..., 'export')``.
        example (Tensor): (N, 3, H, W) input; N is the graph's batch size.
        out (str): The ONNX file to write.
        opset (int): ONNX opset, see :data:`FUSED_ATTENTION_OPSET`.
        atol (float): Largest allowed absolute difference of the logits.
        runtimes (Sequence[str], optional): Runtimes that check the graph:
            all installed fp32 ones by default.
        metadata (dict, optional): Written into the file, e.g. what
            decoding needs.

    Returns:
        dict: The largest absolute difference per runtime.
    """
    folder = osp.dirname(osp.abspath(out))
    if not osp.isdir(folder):
        raise FileNotFoundError(f'output folder does not exist: {folder}')
    if runtimes is None:
        runtimes = [r for r in available_runtimes() if 'bf16' not in r]
    model = model.eval()
    with torch.no_grad():
        expected = [t.numpy() for t in model(example)]
    # an ordinary file's permissions (umask), not mkstemp's 0600
    fd, tmp = create_partial_file(folder, osp.basename(out), '.onnx')
    os.close(fd)
    try:
        write_onnx(model, example, tmp, opset, metadata)
        diffs = {}
        for runtime in runtimes:
            got = open_session(tmp, runtime)(example.numpy())
            diffs[runtime] = max(
                float(np.abs(g - e).max()) for g, e in zip(got, expected))
        bad = {r: d for r, d in diffs.items() if not d <= atol}
        if bad:
            raise RuntimeError('the exported graph differs from PyTorch by ' +
                               ', '.join(f'{d:.2e} in {r}'
                                         for r, d in bad.items()) +
                               f' (> {atol}); {out} not written')
        os.replace(tmp, out)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    return diffs
