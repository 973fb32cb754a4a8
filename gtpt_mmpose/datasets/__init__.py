from .bad_samples import BadSampleError, SkipBadSamples
from .coco_wholebody import CheckedCocoWholeBodyDataset
from .transforms import LoadImageAsBGR

__all__ = [
    'BadSampleError', 'CheckedCocoWholeBodyDataset', 'LoadImageAsBGR',
    'SkipBadSamples'
]
