"""GTPT for MMPose. Importing this package registers its modules into MMPose's registries and
makes MMEngine checkpoints load under ``torch.load(weights_only=True)``."""
from .utils.safe_checkpoint import allow_mmengine_checkpoints
from .version import __version__

allow_mmengine_checkpoints()

from . import engine, evaluation, models  # noqa: E402,F401  (fill the registries)

__all__ = ['__version__', 'allow_mmengine_checkpoints']
