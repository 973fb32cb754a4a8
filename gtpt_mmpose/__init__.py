"""GTPT for MMPose. Importing this package registers its modules into MMPose's registries and
makes MMEngine checkpoints load under ``torch.load(weights_only=True)``; it also mends MMPose's
keypoint drawing under numpy 2.4 (``utils/compat.py``)."""
from .utils.compat import patch_opencv_draw_circles
from .utils.safe_checkpoint import allow_mmengine_checkpoints
from .version import __version__

allow_mmengine_checkpoints()
patch_opencv_draw_circles()

from . import (
    datasets,
    engine,  # noqa: E402,F401  (fill the registries)
    evaluation,
    models)

__all__ = ['__version__', 'allow_mmengine_checkpoints']
