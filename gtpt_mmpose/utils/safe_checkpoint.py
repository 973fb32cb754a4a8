"""Read and write checkpoint files safely.

Reading always goes through ``torch.load(weights_only=True)``: only tensors,
numbers, strings, containers and the few MMEngine types that
:mod:`gtpt_mmpose.compat` allows are unpickled, never code. A file that cannot
be read gives one error that names it and says what is wrong with it.

Writing is atomic: a temporary file in the same folder, flushed and fsynced,
then renamed over the target, so a crash or a full disk never leaves a
half-written file under the target's name. The file gets the permissions of
any file the process writes (0666 less the umask).
"""
import errno
import io
import logging
import os
import os.path as osp
import pickle
import secrets
import zipfile
from typing import Any, Optional, Tuple

import torch

# the first bytes of torch's zip format and of its legacy pickle format
ZIP_MAGIC = b'PK\x03\x04'
PICKLE_MAGIC = b'\x80'
# suffix of the temporary file of a save in progress (removed if it fails)
PARTIAL_SUFFIX = '.partial'

logger = logging.getLogger(__name__)


class CheckpointFileError(RuntimeError):
    """A checkpoint file cannot be read; the message names it and the
    problem."""


class UnsafeCheckpointError(CheckpointFileError):
    """A checkpoint asks for something that is not plain data."""


class CheckpointSaveError(OSError):
    """A file could not be written; nothing under its name was replaced."""


def file_problem(path: str) -> Optional[str]:
    """What is wrong with the format of a file, read from its first bytes.

    Args:
        path (str): The file.

    Returns:
        str, optional: The problem, or None when it looks like a checkpoint
        (a whole zip archive, or a pickle).
    """
    with open(path, 'rb') as f:
        head = f.read(4)
    if head == ZIP_MAGIC and not zipfile.is_zipfile(path):
        return ('is truncated: a zip archive without its end, as a save that '
                'was interrupted or a partial copy leaves it')
    if head != ZIP_MAGIC and head[:1] != PICKLE_MAGIC:
        return f'is not a PyTorch checkpoint (it starts with {head!r})'
    return None


def _reason(exc: BaseException) -> str:
    """The informative line of torch's message (not its boilerplate)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [
        line for line in lines
        if not line.startswith(('Weights only load failed',
                                'Check the documentation of torch.load'))
    ]
    reason = (useful or lines or [type(exc).__name__])[0]
    return reason.split('WeightsUnpickler error: ')[-1] or type(exc).__name__


def load_checkpoint_file(path: str, map_location: Any = 'cpu') -> Any:
    """``torch.load(path, weights_only=True)`` with one clear error.

    Args:
        path (str): A local checkpoint file (``~`` is expanded).
        map_location (Any): As for ``torch.load``.

    Returns:
        Any: The loaded object (a dict for MMEngine checkpoints).

    Raises:
        FileNotFoundError: The file does not exist.
        UnsafeCheckpointError: It holds objects that are not plain data;
            nothing in it was executed.
        CheckpointFileError: It is a folder, empty, truncated, damaged or not
            a checkpoint.
    """
    path = osp.expanduser(path)
    if not osp.exists(path):
        raise FileNotFoundError(f'checkpoint file {path} does not exist')
    if osp.isdir(path):
        raise CheckpointFileError(f'{path} is a folder, not a checkpoint file')
    size = osp.getsize(path)
    where = f'checkpoint file {path} ({size} bytes)'
    if size == 0:
        raise CheckpointFileError(
            f'checkpoint file {path} is empty (0 bytes), as a save that was '
            'interrupted leaves it; use an earlier checkpoint')
    problem = file_problem(path)
    if problem:
        raise CheckpointFileError(f'{where} {problem}')
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except UnsafeCheckpointError as exc:  # from the allowed getattr
        raise UnsafeCheckpointError(f'checkpoint file {path}: {exc}') from None
    except pickle.UnpicklingError as exc:
        if 'Weights only load failed' not in str(exc):
            raise CheckpointFileError(
                f'{where} is damaged ({_reason(exc)})') from None
        raise UnsafeCheckpointError(
            f'checkpoint file {path} holds objects that are not plain data '
            '(tensors, numbers, strings, containers) and was not loaded; '
            f'nothing in it was executed ({_reason(exc)})') from None
    # torch.load reports a damaged file as RuntimeError, EOFError, ValueError,
    # zipfile or OS errors depending on where it breaks
    except Exception as exc:
        raise CheckpointFileError(
            f'{where} is damaged ({_reason(exc)})') from None


def load_from_local_safely(filename: str, map_location: Any = None) -> Any:
    """MMEngine's loader for local paths (``CheckpointLoader``, prefix ``''``).

    Args:
        filename (str): The checkpoint file.
        map_location (Any): As for ``torch.load``.

    Returns:
        Any: The loaded checkpoint.
    """
    return load_checkpoint_file(filename, map_location=map_location)


def create_partial_file(folder: str,
                        name: str,
                        suffix: str = PARTIAL_SUFFIX) -> Tuple[int, str]:
    """Create a new temporary file for a save of ``name`` in ``folder``,
    named ``<name>.<random><suffix>``.

    Unlike ``tempfile.mkstemp`` (mode 0600), the file is created with mode
    0666 and the process umask applies, as to any file a program writes:
    teammates read the checkpoints on a shared file system when the umask
    lets them.

    Returns:
        tuple: ``(file descriptor, path)``.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_BINARY', 0)
    for _ in range(100):
        path = osp.join(folder, f'{name}.{secrets.token_hex(4)}{suffix}')
        try:
            return os.open(path, flags, 0o666), path
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST,
                          f'no unused temporary name for {name} in {folder}')


def _sync_folder(folder: str) -> None:
    """fsync ``folder`` so that a rename in it survives a power cut.

    Some file systems (network and FUSE ones, e.g. NFS, CIFS, Lustre mounts)
    refuse to fsync a directory (``EINVAL``, ``ENOTSUP``, ``EACCES``); the
    file itself is complete and renamed by then, so the save stands.
    """
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        logger.debug('fsync of folder %s refused (%s); the file is saved',
                     folder, exc)


def write_file_atomically(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` is never half-written.

    The bytes go to a temporary file in the same folder (created with the
    permissions of an ordinary file under the process umask), which is
    flushed, fsynced and renamed over ``path``; then the folder is fsynced,
    where the file system allows it, so that the rename survives a power cut.

    Args:
        path (str): The file to write.
        data (bytes): Its content.

    Raises:
        CheckpointSaveError: Writing failed (e.g. no space left on the
            device); ``path`` is unchanged and no temporary file is left.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = None
    try:
        fd, tmp = create_partial_file(folder, osp.basename(path))
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None and osp.exists(tmp):
            os.remove(tmp)
        raise CheckpointSaveError(
            exc.errno, f'could not save {path}: {exc.strerror or exc}; '
            'nothing under that name was replaced') from None
    _sync_folder(folder)


def save_checkpoint_file(checkpoint: Any, path: str) -> None:
    """``torch.save(checkpoint, path)``, atomically.

    Args:
        checkpoint (Any): What to save.
        path (str): The file to write.
    """
    with io.BytesIO() as buffer:
        torch.save(checkpoint, buffer)
        write_file_atomically(path, buffer.getvalue())
