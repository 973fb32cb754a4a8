from .curriculum import CurriculumInitHook
from .ema import CosineMomentumEMA, GTPTEMAHook
from .keypoint_check import KeypointCountCheckHook

__all__ = ['CosineMomentumEMA', 'CurriculumInitHook', 'GTPTEMAHook', 'KeypointCountCheckHook']
