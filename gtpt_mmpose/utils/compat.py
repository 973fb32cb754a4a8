"""Fixes for MMPose 1.3.2 on the verified stack (numpy 2.4), applied on
``import gtpt_mmpose``."""
import functools

import numpy as np


def patch_opencv_draw_circles() -> None:
    """MMPose's OpenCV visualiser calls ``int(radius)`` on a one-element array,
    which numpy 2.4
    refuses (``only 0-dimensional arrays can be converted``): every keypoint
        drawing crashed."""
    from mmpose.visualization.opencv_backend_visualizer import \
        OpencvBackendVisualizer

    original = OpencvBackendVisualizer.draw_circles
    if getattr(original, 'gtpt_numpy2_fix', False):
        return

    @functools.wraps(original)
    def draw_circles(self, center, radius, *args, **kwargs):
        if self.backend == 'opencv' and isinstance(
                radius, np.ndarray) and radius.size == 1:
            radius = radius.item()
        return original(self, center, radius, *args, **kwargs)

    draw_circles.gtpt_numpy2_fix = True
    OpencvBackendVisualizer.draw_circles = draw_circles
