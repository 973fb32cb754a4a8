from .curriculum import CurriculumInitHook
from .ema import CosineMomentumEMA, GTPTEMAHook

__all__ = ['CosineMomentumEMA', 'CurriculumInitHook', 'GTPTEMAHook']
