from .wholebody_part_metric import WholeBodyPartMetric

__all__ = ['WholeBodyPartMetric']
