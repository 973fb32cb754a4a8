from .load_image import LoadImageAsBGR

__all__ = ['LoadImageAsBGR']
