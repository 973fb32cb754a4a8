"""Checkpoints that survive a crash or a full disk during a save, and
``--resume`` that survives a damaged latest checkpoint."""
import glob
import os
import os.path as osp
import re
from typing import Any, List, Optional, Union

from mmengine.dist import broadcast_object_list, is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook
from mmpose.registry import HOOKS

from ..utils.safe_checkpoint import (PARTIAL_SUFFIX, CheckpointFileError,
                                     UnsafeCheckpointError,
                                     load_checkpoint_file,
                                     write_file_atomically)

ATOMIC_BACKEND = 'gtpt_atomic_local'


@register_backend(ATOMIC_BACKEND)
class AtomicLocalBackend(LocalBackend):
    """MMEngine's local file backend whose writes are atomic.

    ``put`` and ``put_text`` write a temporary file in the target's folder,
    fsync it and rename it over the target
    (:func:`~gtpt_mmpose.utils.safe_checkpoint.write_file_atomically`): the
    target is either the old file or the complete new one, never a
    half-written one, and a failed write raises ``CheckpointSaveError``
    naming the file and the cause.
    """

    def put(self, obj: bytes, filepath: Union[str, os.PathLike]) -> None:
        """Write bytes to ``filepath`` atomically."""
        write_file_atomically(str(filepath), obj)

    def put_text(self,
                 obj: str,
                 filepath: Union[str, os.PathLike],
                 encoding: str = 'utf-8') -> None:
        """Write text to ``filepath`` atomically."""
        write_file_atomically(str(filepath), obj.encode(encoding))


class _DeferRemoval:
    """A file backend whose ``remove``/``rmtree`` only note the path."""

    def __init__(self, backend: Any, removals: List[str]) -> None:
        self._backend, self._removals = backend, removals

    def remove(self, path: str) -> None:
        self._removals.append(path)

    def rmtree(self, path: str) -> None:
        self._removals.append(path)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


def resume_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot be resumed from, or None when it can.

    Args:
        path (str): A checkpoint written by the runner.

    Returns:
        str, optional: The problem (missing, unreadable, not a runner
        checkpoint).

    Raises:
        UnsafeCheckpointError: The file holds objects that are not plain
            data.
    """
    try:
        ckpt = load_checkpoint_file(path)
    except UnsafeCheckpointError:
        raise  # refused outright: no falling back past a hostile file
    except (OSError, CheckpointFileError) as exc:
        return str(exc)
    if not isinstance(ckpt, dict) or not {'meta', 'state_dict'} <= set(ckpt):
        return f'{path} is not a checkpoint of a training run'
    return None


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` whose checkpoints survive crashes and full disks.

    MMEngine 0.10.7's hook removes the oldest checkpoint before it writes the
    new one (with ``max_keep_ckpts=1`` nothing intact is left while it
    writes), and the previous best one before the new best; it writes each
    file in place and then rewrites ``last_checkpoint`` in place. A crash or a
    full disk during a save can leave a truncated newest checkpoint, no other
    one, and ``last_checkpoint`` pointing at the damaged file. Here, locally:

    1. every file is written to a temporary file in the same folder, flushed,
       fsynced and renamed over its name (:class:`AtomicLocalBackend`);
    2. ``last_checkpoint`` moves to a checkpoint only once it is complete,
       and is itself replaced atomically;
    3. old checkpoints (``max_keep_ckpts``, the previous best) are removed
       only after that.

    A failed save (e.g. no space left on the device) raises one
    ``CheckpointSaveError`` naming the file and the cause; the previous
    checkpoint and ``last_checkpoint`` are untouched. Unfinished temporary
    files of a killed run are removed when training starts again.

    With ``--resume``, a ``last_checkpoint`` that points at a missing or
    damaged file falls back to the newest intact checkpoint in the folder,
    with a warning naming both; with none intact the run stops with one
    error. Rank 0 makes that choice and the other ranks follow it.

    Args:
        **kwargs: As for :class:`mmengine.hooks.CheckpointHook`; without
            ``backend_args`` or ``file_client_args`` local checkpoints are
            written with :class:`AtomicLocalBackend`.
    """

    def __init__(self, **kwargs) -> None:
        local = '://' not in str(kwargs.get('out_dir'))
        if local and kwargs.get('backend_args') is None and kwargs.get(
                'file_client_args') is None:
            kwargs['backend_args'] = dict(backend=ATOMIC_BACKEND)
        super().__init__(**kwargs)

    def before_run(self, runner) -> None:
        """With ``--resume``, pick an intact checkpoint to resume from.

        Rank 0 alone reads the candidates (each a whole checkpoint) and sends
        its choice, or its error, to the other ranks. Runs before
        ``Runner.load_or_resume``, which resumes from ``runner._load_from``
        when set (MMEngine has no public hook for it).
        """
        if not runner._resume or runner._load_from is not None:
            return
        choice = [None]
        if is_main_process():
            try:
                choice[0] = self._intact_checkpoint(runner)
            except (CheckpointFileError, OSError) as exc:
                choice[0] = exc  # every rank stops with it
        broadcast_object_list(choice, src=0)
        if isinstance(choice[0], Exception):
            raise choice[0]
        if choice[0] is not None:
            runner._load_from = choice[0]

    def before_train(self, runner) -> None:
        """MMEngine's set-up, then remove unfinished saves of a killed run."""
        super().before_train(runner)
        if not is_main_process() or '://' in self.out_dir:
            return
        stale = glob.glob(osp.join(self.out_dir, '*' + PARTIAL_SUFFIX))
        for path in stale:
            os.remove(path)
        if stale:
            runner.logger.info('Removed unfinished checkpoint files of an '
                               f'interrupted save: {stale}')

    def _save_checkpoint_with_step(self, runner, step: int,
                                   meta: dict) -> None:
        """Save checkpoint ``step``, then move ``last_checkpoint``, then
        remove the checkpoint that falls out of ``max_keep_ckpts``."""
        kept = list(getattr(self, 'keep_ckpt_ids', []))
        retired = self._retire(runner, step)
        filename = self.filename_tmpl.format(step)
        previous, self.last_ckpt = self.last_ckpt, self.file_backend.join_path(
            self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        try:
            runner.save_checkpoint(
                self.out_dir,
                filename,
                self.file_client_args,
                save_optimizer=self.save_optimizer,
                save_param_scheduler=self.save_param_scheduler,
                meta=meta,
                by_epoch=self.by_epoch,
                backend_args=self.backend_args,
                **self.args)
        except BaseException:
            # nothing changed on disk: the bookkeeping goes back too
            self._restore(runner, kept, previous)
            raise
        if not is_main_process():
            return
        self.file_backend.put_text(
            self.last_ckpt, osp.join(runner.work_dir, 'last_checkpoint'))
        for path in retired:
            self._remove(path)

    def _save_best_checkpoint(self, runner, metrics: dict) -> None:
        """MMEngine's best-checkpoint logic, removing the previous best only
        after the new one is saved."""
        backend, removals = self.file_backend, []
        self.file_backend = _DeferRemoval(backend, removals)
        try:
            super()._save_best_checkpoint(runner, metrics)
        finally:
            self.file_backend = backend
        for path in removals:
            self._remove(path)

    def _retire(self, runner, step: int) -> List[str]:
        """MMEngine's ``max_keep_ckpts`` bookkeeping for saving ``step``.

        Returns:
            List[str]: The checkpoints to remove once ``step`` is saved.
        """
        if self.max_keep_ckpts <= 0 or (self.keep_ckpt_ids
                                        and self.keep_ckpt_ids[-1] == step):
            return []
        retired = []
        if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
            retired.append(
                self.file_backend.join_path(
                    self.out_dir,
                    self.filename_tmpl.format(self.keep_ckpt_ids.popleft())))
        self.keep_ckpt_ids.append(step)
        runner.message_hub.update_info('keep_ckpt_ids',
                                       list(self.keep_ckpt_ids))
        return retired

    def _restore(self, runner, kept: List[int],
                 last_ckpt: Optional[str]) -> None:
        """Undo :meth:`_retire` and the ``last_ckpt`` update."""
        if self.max_keep_ckpts > 0:
            self.keep_ckpt_ids.clear()
            self.keep_ckpt_ids.extend(kept)
            runner.message_hub.update_info('keep_ckpt_ids', kept)
        self.last_ckpt = last_ckpt
        if last_ckpt is not None:
            runner.message_hub.update_info('last_ckpt', last_ckpt)

    def _remove(self, path: str) -> None:
        """Remove a checkpoint file (or a DeepSpeed checkpoint folder)."""
        if not is_main_process():
            return
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):
            self.file_backend.rmtree(path)

    def _intact_checkpoint(self, runner) -> Optional[str]:
        """The checkpoint ``--resume`` should use when ``last_checkpoint``
        names a missing or damaged one.

        Returns:
            str, optional: None to let MMEngine resume as usual (the named
            checkpoint is intact, or there is nothing to resume).
        """
        pointer = osp.join(runner.work_dir, 'last_checkpoint')
        named = None
        if osp.isfile(pointer):
            with open(pointer) as f:
                named = f.read().strip() or None
        problem = resume_problem(named) if named else None
        if named and problem is None:
            return None
        folder = osp.dirname(named) if named else runner.work_dir
        for path in self._checkpoints_newest_first(folder):
            if path != named and resume_problem(path) is None:
                runner.logger.warning(
                    f'--resume: {problem}; resuming from {path}, the newest '
                    f'intact checkpoint in {folder}' if named else
                    f'--resume: no last_checkpoint in {runner.work_dir}; '
                    f'resuming from {path}, the newest intact checkpoint')
                return path
        if named:
            raise CheckpointFileError(
                f'cannot resume: {problem}, and {folder} holds no other '
                'intact checkpoint; start again without --resume, or give '
                'one with --resume PATH')
        return None

    def _checkpoints_newest_first(self, folder: str) -> List[str]:
        """The checkpoints ``filename_tmpl`` names in ``folder``, newest
        first."""
        head, _, tail = self.filename_tmpl.partition('{}')
        pattern = re.compile(re.escape(head) + r'(\d+)' + re.escape(tail))
        steps = []
        for name in os.listdir(folder) if osp.isdir(folder) else []:
            match = pattern.fullmatch(name)
            if match:
                steps.append((int(match.group(1)), osp.join(folder, name)))
        return [path for _, path in sorted(steps, reverse=True)]
