from .curriculum import CurriculumInitHook
from .ema import CosineMomentumEMA, GTPTEMAHook
from .keypoint_check import KeypointCountCheckHook
from .non_finite_check import NonFiniteCheckHook

__all__ = [
    'CosineMomentumEMA', 'CurriculumInitHook', 'GTPTEMAHook',
    'KeypointCountCheckHook', 'NonFiniteCheckHook'
]
