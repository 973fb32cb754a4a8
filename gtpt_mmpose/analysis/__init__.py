"""Measuring GTPT and MMPose models: FLOPs and parameters (``flops``), and
the benchmarks' building blocks, imported by module (models by name,
synthetic inputs, runtimes, timing, op profiles, reports)."""
from .flops import count_flops

__all__ = ['count_flops']
