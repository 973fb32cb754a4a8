"""Counting tools: parameters and FLOPs of GTPT and MMPose models."""
from .flops import count_flops

__all__ = ['count_flops']
