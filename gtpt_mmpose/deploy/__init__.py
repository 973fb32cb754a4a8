"""Deployment of GTPT: inference-time rewrites, ONNX export and the
runtimes that run it (docs: README "Deploy")."""
from .fuse import BatchChunks, fold_conv_batchnorms, prepare_for_inference
from .inference import ImageToSimCC, topdown_batch
from .onnx_export import FUSED_ATTENTION_OPSET, export_onnx, write_onnx
from .runtimes import available_runtimes, open_session

__all__ = [
    'BatchChunks', 'FUSED_ATTENTION_OPSET', 'ImageToSimCC',
    'available_runtimes', 'export_onnx', 'fold_conv_batchnorms',
    'open_session', 'prepare_for_inference', 'topdown_batch', 'write_onnx'
]
