from .atomic_checkpoint import AtomicCheckpointHook, AtomicLocalBackend
from .bad_sample_report import BadSampleReportHook
from .curriculum import CurriculumInitHook
from .device_amp import DeviceAmpOptimWrapper
from .ema import CosineMomentumEMA, GTPTEMAHook
from .keypoint_check import KeypointCountCheckHook
from .non_finite_check import NonFiniteCheckHook
from .tf32 import TF32Hook

__all__ = [
    'AtomicCheckpointHook', 'AtomicLocalBackend', 'BadSampleReportHook',
    'CosineMomentumEMA', 'CurriculumInitHook', 'DeviceAmpOptimWrapper',
    'GTPTEMAHook', 'KeypointCountCheckHook', 'NonFiniteCheckHook', 'TF32Hook'
]
