"""Imported by a test's training run (``custom_imports``): the run stalls at
a chosen point, tells the test so, and waits there to be killed.

Where, by environment variable:

* ``GTPT_STALL_SAVE=epoch_4.pth``: inside the save of that checkpoint, once
  its bytes are written to the temporary file and before they are made
  durable and renamed;
* ``GTPT_STALL_AFTER_ITER=5``: once training iteration 5 has finished (its
  parameter update and its hooks done), before the next one starts.

On getting there the run writes one line naming the point to the FIFO named
in ``GTPT_STALL_SIGNAL`` (the test reads it) and then waits for a signal
forever, so that what the test finds on disk afterwards cannot depend on how
fast the machine is.
"""
import os
import os.path as osp
import signal

from mmengine.runner import EpochBasedTrainLoop


def stall(where: str) -> None:
    """Tell the test where the run is, then wait to be killed."""
    with open(os.environ['GTPT_STALL_SIGNAL'], 'w') as fifo:
        fifo.write(where + '\n')
    while True:
        signal.pause()


_fsync = os.fsync


def _stalling_fsync(fd: int) -> None:
    name = os.environ.get('GTPT_STALL_SAVE')
    path = os.readlink(f'/proc/self/fd/{fd}')
    if name and osp.basename(path).startswith(name + '.'):
        stall(f'saving {name}')
    _fsync(fd)


_run_iter = EpochBasedTrainLoop.run_iter


def _stalling_run_iter(self, idx, data_batch) -> None:
    _run_iter(self, idx, data_batch)
    if str(self._iter) == os.environ.get('GTPT_STALL_AFTER_ITER'):
        stall(f'after iteration {self._iter}')


os.fsync = _stalling_fsync
EpochBasedTrainLoop.run_iter = _stalling_run_iter
