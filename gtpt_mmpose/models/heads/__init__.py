from .gtpt_head import GTPTHead

__all__ = ['GTPTHead']
