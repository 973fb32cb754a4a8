"""Deployment of GTPT: inference-time rewrites, ONNX export and the
runtimes that run it (docs: README "Deploy")."""
from .fuse import fold_conv_batchnorms
from .inference import ImageToSimCC, topdown_batch
from .onnx_export import FUSED_ATTENTION_OPSET, export_onnx, write_onnx
from .prepare import (BatchChunks, InferencePlan, inference_plan,
                      prepare_for_inference)
from .runtimes import available_runtimes, open_session

__all__ = [
    'BatchChunks', 'FUSED_ATTENTION_OPSET', 'ImageToSimCC', 'InferencePlan',
    'available_runtimes', 'export_onnx', 'fold_conv_batchnorms',
    'inference_plan', 'open_session', 'prepare_for_inference', 'topdown_batch',
    'write_onnx'
]
