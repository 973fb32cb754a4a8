"""GTPT for MMPose.

Importing this package registers its modules into MMPose's registries and
applies the fixes of :mod:`gtpt_mmpose.compat` (checkpoints read under
``torch.load(weights_only=True)`` with clear errors, GTPT checkpoints checked
where they are loaded, MMPose's keypoint drawing under numpy 2).
"""
from . import datasets, engine, evaluation, models  # noqa: F401 (registries)
from .compat import apply_import_fixes
from .version import __version__

apply_import_fixes()

__all__ = ['__version__']
