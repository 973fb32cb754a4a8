from .atomic_checkpoint import AtomicCheckpointHook, AtomicLocalBackend
from .bad_sample_report import BadSampleReportHook
from .curriculum import CurriculumInitHook
from .ema import CosineMomentumEMA, GTPTEMAHook
from .keypoint_check import KeypointCountCheckHook
from .non_finite_check import NonFiniteCheckHook

__all__ = [
    'AtomicCheckpointHook', 'AtomicLocalBackend', 'BadSampleReportHook',
    'CosineMomentumEMA', 'CurriculumInitHook', 'GTPTEMAHook',
    'KeypointCountCheckHook', 'NonFiniteCheckHook'
]
