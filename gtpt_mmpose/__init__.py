"""GTPT for MMPose.

Importing this package registers its modules into MMPose's registries and
makes MMEngine checkpoints load under ``torch.load(weights_only=True)``; it
also mends MMPose's keypoint drawing under numpy 2.4 (``utils/compat.py``).
"""
from . import datasets, engine, evaluation, models  # noqa: F401 (registries)
from .utils.compat import patch_opencv_draw_circles
from .utils.safe_checkpoint import allow_mmengine_checkpoints
from .version import __version__

allow_mmengine_checkpoints()
patch_opencv_draw_circles()

__all__ = ['__version__', 'allow_mmengine_checkpoints']
