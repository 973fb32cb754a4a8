#!/usr/bin/env python
"""Test a GTPT config with MMPose's own ``tools/test.py`` (what ``mim test
gtpt_mmpose`` runs)."""
import sys

from gtpt_mmpose.launcher import run_mmpose_tool

if __name__ == '__main__':
    sys.exit(run_mmpose_tool('test.py', sys.argv[1:]))
