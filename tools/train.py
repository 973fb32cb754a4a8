#!/usr/bin/env python
"""Train a GTPT config with MMPose's own ``tools/train.py`` (what ``mim train
gtpt_mmpose`` runs).

Same arguments as MMPose's script. Added on top: distributed training on
CPU-only machines, where MMEngine 0.10.7 would call ``torch.cuda.set_device``
and give DDP ``device_ids``; here the gloo process group is made first
(MMEngine then skips its own set-up) and DDP gets no device ids.
"""
import sys

from gtpt_mmpose.launcher import run_mmpose_tool

if __name__ == '__main__':
    sys.exit(run_mmpose_tool('train.py', sys.argv[1:]))
