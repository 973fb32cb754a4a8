"""Imported by a test's training run (``custom_imports``): the save of the
checkpoint named in ``GTPT_STALL_SAVE`` stalls once its bytes are written and
before they are made durable and renamed, after touching the file named in
``GTPT_STALL_MARKER``, so that the test can kill the run while it saves."""
import os
import os.path as osp
import time

_fsync = os.fsync


def _stalling_fsync(fd: int) -> None:
    name = os.environ.get('GTPT_STALL_SAVE')
    path = os.readlink(f'/proc/self/fd/{fd}')
    if name and osp.basename(path).startswith(name + '.'):
        open(os.environ['GTPT_STALL_MARKER'], 'w').close()
        time.sleep(600)
    _fsync(fd)


os.fsync = _stalling_fsync
