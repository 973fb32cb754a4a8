from .coco_wholebody import CheckedCocoWholeBodyDataset
from .transforms import LoadImageAsBGR

__all__ = ['CheckedCocoWholeBodyDataset', 'LoadImageAsBGR']
