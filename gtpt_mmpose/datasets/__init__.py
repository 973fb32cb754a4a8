from .bad_samples import BadSampleError, GTPTCocoDataset, SkipBadSamplesMixin
from .coco_wholebody import CheckedCocoWholeBodyDataset
from .transforms import LoadImageAsBGR

__all__ = [
    'BadSampleError', 'CheckedCocoWholeBodyDataset', 'GTPTCocoDataset',
    'LoadImageAsBGR', 'SkipBadSamplesMixin'
]
