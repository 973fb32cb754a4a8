from .global_perceived_loss import GlobalPerceivedLoss

__all__ = ['GlobalPerceivedLoss']
