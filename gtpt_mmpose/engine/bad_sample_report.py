"""Report the training samples that ``SkipBadSamples`` replaced."""
from typing import List, Optional, Set

from mmengine.dist import all_gather_object
from mmengine.hooks import Hook
from mmpose.registry import HOOKS

from ..datasets.bad_samples import SKIPPED_KEY


@HOOKS.register_module()
class BadSampleReportHook(Hook):
    """Warn once about each bad training sample, and count them per epoch.

    :class:`~gtpt_mmpose.datasets.SkipBadSamples` records the samples it
    skipped in the metainfo of their substitutes, in the data-loader workers;
    this hook reads the records from each batch in the main process, warns
    the first time a sample is met (naming it and why it is bad), and at the
    end of each epoch logs how many samples were skipped on all ranks.
    """

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._warned: Set[str] = set()
        self._epoch: List[dict] = []

    def before_train_epoch(self, runner) -> None:
        self._epoch = []

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch: Optional[dict] = None) -> None:
        """Collect and announce the skipped samples of this batch."""
        for sample in (data_batch or {}).get('data_samples') or []:
            for bad in sample.metainfo.get(SKIPPED_KEY, []):
                self._epoch.append(bad)
                self._warn(runner, bad)

    def after_train_epoch(self, runner) -> None:
        """Log the count of skipped samples of the epoch, over all ranks."""
        skipped = [
            bad for rank in all_gather_object(self._epoch) for bad in rank
        ]
        if not skipped:
            return
        for bad in skipped:  # those other ranks met
            self._warn(runner, bad)
        distinct = len({bad['sample'] for bad in skipped})
        runner.logger.warning(
            f'epoch {runner.epoch + 1}: {len(skipped)} bad training samples '
            f'({distinct} distinct) were skipped and replaced by the next '
            'good ones')

    def _warn(self, runner, bad: dict) -> None:
        if bad['sample'] not in self._warned:
            self._warned.add(bad['sample'])
            runner.logger.warning(f'skipping bad training sample '
                                  f'{bad["sample"]}: {bad["reason"]}')
