"""Load MMEngine checkpoints under ``torch.load(weights_only=True)`` (torch >=
2.6).

MMEngine 0.10.7 calls ``torch.load`` without ``weights_only``, so torch's safe
unpickler refuses the non-tensor objects an MMEngine runner writes (message hub
history, numpy scalars, ...). We allow exactly those types, and nothing that
can run code: the only allowed ``getattr`` is one that returns the named
statistics methods of ``HistoryBuffer`` (how its class table is pickled).
"""
import collections
from typing import Any

import numpy as np
import torch
from torch.serialization import add_safe_globals

_HISTORY_BUFFER_METHODS = frozenset({'min', 'max', 'mean', 'current'})


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint asks for something that is not plain data."""


def restricted_getattr(obj: Any, name: str) -> Any:
    """``getattr`` for unpickling: only ``HistoryBuffer.<statistics method>``.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    if obj is HistoryBuffer and name in _HISTORY_BUFFER_METHODS:
        return getattr(obj, name)
    raise UnsafeCheckpointError(
        f'refusing to load a checkpoint that asks for getattr({obj!r}, '
        f'{name!r}); '
        'only HistoryBuffer statistics methods are allowed')


def _numpy_globals() -> list:
    core = np._core if hasattr(np, '_core') else np.core  # numpy 2 moved it
    names = [
        (core.multiarray._reconstruct, 'numpy._core.multiarray._reconstruct'),
        (core.multiarray.scalar, 'numpy._core.multiarray.scalar'),
        # checkpoints written under numpy 1.x name the old module
        (core.multiarray._reconstruct, 'numpy.core.multiarray._reconstruct'),
        (core.multiarray.scalar, 'numpy.core.multiarray.scalar')
    ]
    dtype_classes = [
        type(np.dtype(t)) for t in np.typecodes['All'] if t not in 'Mm'
    ]
    dtype_classes += [type(np.dtype('M8[s]')), type(np.dtype('m8[s]'))]
    return names + [np.ndarray, np.dtype] + sorted(
        set(dtype_classes), key=lambda c: c.__name__)


def allow_mmengine_checkpoints() -> None:
    """Register the types of MMEngine runner checkpoints as safe for
    ``weights_only`` loading."""
    import codecs

    from mmengine.logging.history_buffer import HistoryBuffer
    add_safe_globals(_numpy_globals() + [
        collections.OrderedDict, collections.Counter, collections.defaultdict,
        HistoryBuffer, codecs.encode, (restricted_getattr, 'builtins.getattr')
    ])


def load_checkpoint_file(path: str, map_location: Any = 'cpu') -> Any:
    """``torch.load`` with ``weights_only=True`` and a clear error for unsafe
    or broken files."""
    allow_mmengine_checkpoints()
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except UnsafeCheckpointError:
        raise
    # pickle.UnpicklingError, RuntimeError from a truncated zip, ...
    except Exception as exc:
        if 'Weights only load failed' in str(
                exc) or 'Unsupported global' in str(exc):
            raise UnsafeCheckpointError(
                f'{path} holds objects that are not plain data (tensors, '
                'numbers, strings, '
                'containers) and was not loaded; nothing in it was executed. '
                'Details: '
                f'{str(exc).splitlines()[-1] if str(exc) else exc!r}'
            ) from None
        raise RuntimeError(
            f'{path} is not a readable PyTorch checkpoint: {exc}') from exc
