"""Checkpoints that survive a full disk and a damaged latest checkpoint
(issue 16): a failed save leaves the previous checkpoint and last_checkpoint
intact and names the cause; --resume falls back to the newest intact
checkpoint. On shared file systems: checkpoints readable as the umask allows,
a refused folder fsync tolerated. The kill-while-saving test is in
test_resume.py; the --resume choice across ranks in test_distributed.py."""
import errno
import glob
import os
import os.path as osp
import stat

import pytest
import torch
from mini_runner import make_runner
from mmengine.fileio import LocalBackend

from gtpt_mmpose.utils.safe_checkpoint import (CheckpointFileError,
                                               CheckpointSaveError,
                                               load_checkpoint_file,
                                               write_file_atomically)


def disk_full_while_writing(name: str):
    """An ``os.fsync`` that fails with ENOSPC on the temporary file of
    ``name`` (the bytes are written, the disk cannot take them)."""
    real = os.fsync

    def fsync(fd: int) -> None:
        path = os.readlink(f'/proc/self/fd/{fd}')
        if osp.basename(path).startswith(name + '.'):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)

    return fsync


def last_checkpoint(work_dir) -> str:
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def test_a_save_on_a_full_disk_keeps_the_previous_checkpoint(
        tmp_path, monkeypatch):
    # max_keep_ckpts=1, as in every full config: one checkpoint at a time
    runner, _ = make_runner(
        tmp_path,
        'full_disk',
        options={'default_hooks.checkpoint.max_keep_ckpts': 1})
    monkeypatch.setattr(os, 'fsync', disk_full_while_writing('epoch_2.pth'))
    with pytest.raises(CheckpointSaveError) as info:
        runner.train()
    epoch1, epoch2 = (str(tmp_path / f'epoch_{i}.pth') for i in (1, 2))
    assert info.value.errno == errno.ENOSPC
    assert str(info.value) == (f'[Errno 28] could not save {epoch2}: No space '
                               'left on device; nothing under that name was '
                               'replaced')
    # no half-written or temporary file
    assert [p for p in os.listdir(tmp_path) if '.pth' in p] == ['epoch_1.pth']
    assert last_checkpoint(tmp_path) == epoch1
    assert torch.load(epoch1, weights_only=True)['meta']['epoch'] == 1


def test_mmengines_hook_loses_every_checkpoint_on_a_full_disk(
        tmp_path, monkeypatch):
    """Why AtomicCheckpointHook exists: MMEngine removes the old checkpoint
    first and writes the new one in place."""
    real_put = LocalBackend.put

    def put(self, obj: bytes, filepath) -> None:
        if str(filepath).endswith('epoch_2.pth'):
            with open(filepath, 'wb') as f:
                f.write(obj[:len(obj) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_put(self, obj, filepath)

    monkeypatch.setattr(LocalBackend, 'put', put)
    runner, _ = make_runner(
        tmp_path,
        'mmengine_full_disk',
        options={
            'default_hooks.checkpoint.type': 'CheckpointHook',
            'default_hooks.checkpoint.max_keep_ckpts': 1
        })
    with pytest.raises(OSError):
        runner.train()
    assert not osp.exists(tmp_path / 'epoch_1.pth')
    assert last_checkpoint(tmp_path).endswith('epoch_1.pth')
    with pytest.raises(CheckpointFileError, match='truncated'):
        load_checkpoint_file(str(tmp_path / 'epoch_2.pth'))


class _StubRunner:
    """What CheckpointHook uses of a runner; ``save_checkpoint`` notes which
    checkpoints exist when each file is written."""

    def __init__(self, work_dir: str) -> None:
        from mmengine.logging import MessageHub, MMLogger
        self.work_dir = work_dir
        self.message_hub = MessageHub.get_instance(f'stub-{work_dir}')
        self.logger = MMLogger.get_instance(f'stub-{work_dir}')
        self.epoch = self.iter = 0
        self.writes = []

    def save_checkpoint(self,
                        out_dir: str,
                        filename: str,
                        *args,
                        backend_args=None,
                        **kwargs) -> None:
        from mmengine.fileio import get_file_backend
        path = osp.join(out_dir, filename)
        self.writes.append((filename, sorted(os.listdir(out_dir))))
        get_file_backend(path, backend_args=backend_args).put(b'x', path)


def test_old_and_previous_best_checkpoints_go_only_after_the_new_one(
        tmp_path, monkeypatch):
    from gtpt_mmpose.engine import AtomicCheckpointHook
    runner = _StubRunner(str(tmp_path))
    hook = AtomicCheckpointHook(
        interval=1, max_keep_ckpts=1, save_best='coco/AP', rule='greater')
    hook.before_train(runner)
    # as a runner calls it: save after epoch e, validate once epoch is e + 1
    for epoch, score in ((1, 0.5), (2, 0.6)):
        hook._save_checkpoint(runner)  # epoch_{epoch}.pth
        runner.epoch = epoch
        hook._save_best_checkpoint(runner, {'coco/AP': score})
    writes = {}  # the files present when each file was first written
    for name, present in runner.writes:
        writes.setdefault(name, present)
    assert 'epoch_1.pth' in writes['epoch_2.pth']
    assert 'best_coco_AP_epoch_1.pth' in writes['best_coco_AP_epoch_2.pth']
    assert sorted(os.listdir(tmp_path)) == [
        'best_coco_AP_epoch_2.pth', 'epoch_2.pth', 'last_checkpoint'
    ]
    # a new best that cannot be written leaves the previous best in place
    runner.epoch = 3
    monkeypatch.setattr(os, 'fsync',
                        disk_full_while_writing('best_coco_AP_epoch_3.pth'))
    with pytest.raises(CheckpointSaveError, match='No space left'):
        hook._save_best_checkpoint(runner, {'coco/AP': 0.7})
    assert sorted(os.listdir(tmp_path)) == [
        'best_coco_AP_epoch_2.pth', 'epoch_2.pth', 'last_checkpoint'
    ]


def truncate(path) -> None:
    """Cut a file to half its size, as a save that was interrupted does."""
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])


def resume(work_dir, epochs: int = 3):
    """Resume the run in ``work_dir`` in-process; return the runner."""
    runner, _ = make_runner(
        work_dir, 'resumed', epochs=epochs, options={'resume': True})
    runner.train()
    return runner


def log_text(work_dir) -> str:
    """The newest run's log in ``work_dir``."""
    return open(sorted(glob.glob(str(work_dir / '*' / '*.log')))[-1]).read()


def test_resume_from_a_damaged_latest_checkpoint_takes_the_newest_intact_one(
        tmp_path):
    runner, _ = make_runner(tmp_path, 'first', epochs=2)
    runner.train()
    damaged, intact = (str(tmp_path / f'epoch_{i}.pth') for i in (2, 1))
    truncate(damaged)
    assert last_checkpoint(tmp_path) == damaged
    runner = resume(tmp_path)
    log = log_text(tmp_path)
    assert (f'--resume: checkpoint file {damaged} (' in log
            and f'is truncated: a zip archive without its end, as a save '
            'that was interrupted or a partial copy leaves it; resuming from '
            f'{intact}, the newest intact checkpoint in {tmp_path}' in log)
    assert 'resumed epoch: 1, iter: 1' in log
    assert runner.epoch == 3 and last_checkpoint(tmp_path).endswith(
        'epoch_3.pth')


def test_resume_without_an_intact_checkpoint_stops_with_one_error(tmp_path):
    runner, _ = make_runner(tmp_path, 'first', epochs=1)
    runner.train()
    damaged = str(tmp_path / 'epoch_1.pth')
    open(damaged, 'wb').close()
    with pytest.raises(
            CheckpointFileError,
            match=f'^cannot resume: checkpoint file {damaged} is empty '
            r'\(0 bytes\).*holds no other intact checkpoint'):
        resume(tmp_path)


@pytest.fixture
def umask():
    """Set the process umask for a test; the previous one comes back."""
    previous = os.umask(0o022)

    def set_umask(mask: int) -> None:
        os.umask(mask)

    yield set_umask
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_checkpoints_get_an_ordinary_files_permissions(tmp_path, umask):
    """Readable by the group and others as the umask allows, as any file the
    process writes (mkstemp's temporary files are 0600)."""
    umask(0o022)
    runner, _ = make_runner(tmp_path, 'shared', epochs=1)
    runner.train()
    for name in ('epoch_1.pth', 'last_checkpoint'):
        assert mode(tmp_path / name) == 0o644, name
    for mask, expected in ((0o002, 0o664), (0o077, 0o600), (0o027, 0o640)):
        umask(mask)
        write_file_atomically(str(tmp_path / 'file'), b'x')
        assert mode(tmp_path / 'file') == expected, oct(mask)


def test_a_folder_fsync_the_file_system_refuses_does_not_fail_the_save(
        tmp_path, monkeypatch):
    """Network and FUSE file systems may refuse to fsync a directory
    (EINVAL); the file is complete and renamed by then."""
    real, refused = os.fsync, []

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            refused.append(fd)
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        real(fd)

    monkeypatch.setattr(os, 'fsync', fsync)
    runner, _ = make_runner(tmp_path, 'no_folder_fsync', epochs=1)
    runner.train()
    assert refused  # the folder's fsync was tried, and refused
    epoch1 = str(tmp_path / 'epoch_1.pth')
    assert last_checkpoint(tmp_path) == epoch1
    assert load_checkpoint_file(epoch1)['meta']['epoch'] == 1
    assert not glob.glob(str(tmp_path / '*.partial'))
