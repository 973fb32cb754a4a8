"""Training that goes on past a bad sample: a missing or corrupt image, an
annotation without a single visible keypoint.

:class:`SkipBadSamplesMixin`, in this package's data sets, replaces such a
sample by the next good one and records what it skipped in the substitute's
``metainfo['skipped_samples']``. Samples load in data-loader worker
processes, so the record travels with the batch to
:class:`~gtpt_mmpose.engine.BadSampleReportHook` in the main process, which
warns once per bad sample and counts them at the end of each epoch.
"""
from typing import Any, List, Optional

import numpy as np
from mmpose.datasets import CocoDataset
from mmpose.registry import DATASETS

# where the record of skipped samples travels, in a data sample's metainfo
SKIPPED_KEY = 'skipped_samples'


class BadSampleError(Exception):
    """A training sample's data cannot be used; the message names it and the
    problem (raised e.g. by ``LoadImageAsBGR``)."""


def visible_keypoints(data_info: dict) -> Optional[int]:
    """The number of visible keypoints of an annotation, or None when it has
    no ``keypoints_visible`` (e.g. detection boxes)."""
    visible = data_info.get('keypoints_visible')
    return None if visible is None else int(np.count_nonzero(visible))


class SkipBadSamplesMixin:
    """Training that replaces a bad sample by the next good one; mix into an
    MMPose data set class before it.

    A sample is bad when its annotation has no visible keypoint (MMPose drops
    those whose ``num_keypoints`` is 0 when it loads the file; this catches
    the ones whose ``num_keypoints`` disagrees with their visibility flags,
    which would train on nothing), or when loading it raises
    :class:`BadSampleError` (a missing, empty, truncated or corrupt image).
    Other exceptions are not caught, and test-mode data sets are left alone.
    The substitute is the next index that loads; its
    ``data_samples.metainfo['skipped_samples']`` lists what was skipped
    (``sample``: annotation id and image; ``reason``).

    (A dataset wrapper would hide the data set's ``METAINFO`` from MMPose's
    ``dataset_meta_from_config``, which ``init_model`` and
    ``MMPoseInferencer`` use for checkpoints without ``dataset_meta``.)
    """

    def __getitem__(self, idx: int) -> Any:
        """Sample ``idx``, or the next good one with a record of the bad ones.

        Args:
            idx (int): The sample.

        Returns:
            Any: The sample (``inputs``, ``data_samples``).
        """
        if self.test_mode:
            return super().__getitem__(idx)
        if not self._fully_initialized:
            self.full_init()
        skipped: List[dict] = []
        for offset in range(len(self)):
            index = (idx + offset) % len(self)
            info = self.get_data_info(index)
            name = (f'annotation {info.get("id")} of '
                    f'{info.get("img_path", "an unnamed image")}')
            if visible_keypoints(info) == 0:
                skipped.append(
                    dict(
                        sample=name,
                        reason='no keypoint is visible, though '
                        f'num_keypoints is {info.get("num_keypoints")}'))
                continue
            try:
                data = super().__getitem__(index)
            except BadSampleError as exc:
                skipped.append(dict(sample=name, reason=str(exc)))
                continue
            if skipped:
                data['data_samples'].set_metainfo({SKIPPED_KEY: skipped})
            return data
        raise RuntimeError(f'every sample of the training set is bad, e.g. '
                           f'{skipped[0]["sample"]}: {skipped[0]["reason"]}')


@DATASETS.register_module()
class GTPTCocoDataset(SkipBadSamplesMixin, CocoDataset):
    """MMPose's ``CocoDataset`` whose training skips bad samples
    (:class:`SkipBadSamplesMixin`).

    Args:
        Same as :class:`mmpose.datasets.CocoDataset`.
    """
