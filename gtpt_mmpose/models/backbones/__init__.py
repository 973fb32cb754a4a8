from .gtpt import GTPT

__all__ = ['GTPT']
