"""Fixes for the verified stack (torch 2.13, numpy 2.4, MMEngine 0.10.7,
MMPose 1.3.2), all in one place.

``import gtpt_mmpose`` applies the first four (:func:`apply_import_fixes`);
``tools/train.py`` applies the fifth. Each says what breaks without it and
which upstream change it stands in for, and applies itself only where the
installed libraries still need it (1, 4 and 5 look first), so that it
retires when the fix is released; ``tests/test_compat.py`` shows each
breaking without it. 2 and 3 are this package's policy, not stand-ins.

1. :func:`allow_mmengine_checkpoints`: MMEngine checkpoints under
   ``weights_only``.
2. :func:`register_safe_checkpoint_loader`: every local checkpoint read by
   MMEngine goes through :func:`~gtpt_mmpose.utils.safe_checkpoint.
   load_checkpoint_file`.
3. :func:`check_gtpt_weights_on_load`: a GTPT checkpoint of another variant
   or keypoint count is refused where it is loaded.
4. :func:`patch_opencv_draw_circles`: MMPose's keypoint drawing under numpy 2.
5. :func:`start_cpu_process_group`: distributed training without CUDA.
"""
import collections
import functools
from typing import Any, List

import numpy as np

# how HistoryBuffer's statistics methods are pickled: getattr(class, name)
_HISTORY_BUFFER_METHODS = frozenset({'min', 'max', 'mean', 'current'})


def restricted_getattr(obj: Any, name: str) -> Any:
    """``getattr`` for unpickling: only ``HistoryBuffer.<statistics method>``.

    Args:
        obj (Any): What the pickle asks an attribute of.
        name (str): The attribute.

    Returns:
        Any: ``HistoryBuffer.min``, ``.max``, ``.mean`` or ``.current``.
    """
    from mmengine.logging.history_buffer import HistoryBuffer

    from .utils.safe_checkpoint import UnsafeCheckpointError
    if obj is HistoryBuffer and name in _HISTORY_BUFFER_METHODS:
        return getattr(obj, name)
    raise UnsafeCheckpointError(
        f'refusing a checkpoint that asks for getattr({obj!r}, {name!r}); '
        'only HistoryBuffer statistics methods are allowed')


def _numpy_globals() -> list:
    """The numpy functions and classes that pickled arrays and scalars
    name."""
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
    """Allow the types of MMEngine runner checkpoints under ``weights_only``.

    Without it torch >= 2.6 refuses every checkpoint an MMEngine 0.10.7 runner
    writes ("Weights only load failed ... Unsupported global"): the message
    hub's ``HistoryBuffer``, numpy scalars and arrays, ``OrderedDict``. Only
    those are allowed, and a ``getattr`` that reaches nothing but
    ``HistoryBuffer``'s statistics methods; nothing that can run code.

    Stands in for MMEngine declaring its checkpoints' types safe itself
    (open-mmlab/mmengine#1655, open; its PR #1650 would instead turn
    ``weights_only`` off): skipped where ``HistoryBuffer`` is already an
    allowed global.
    """
    import codecs

    from mmengine.logging.history_buffer import HistoryBuffer
    from torch.serialization import add_safe_globals, get_safe_globals

    if HistoryBuffer in get_safe_globals():
        return

    # bytes: an empty numpy array (e.g. the sigmas and skeleton colours of
    # a data set without them, like 300W, in dataset_meta) pickles as bytes()
    add_safe_globals(_numpy_globals() + [
        collections.OrderedDict, collections.Counter, collections.defaultdict,
        HistoryBuffer, codecs.encode, bytes,
        (restricted_getattr, 'builtins.getattr')
    ])


def register_safe_checkpoint_loader() -> None:
    """Make MMEngine read local checkpoints with ``load_checkpoint_file``.

    MMEngine's own loader for local paths calls ``torch.load`` without
    ``weights_only`` (so an environment that sets
    ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` unpickles anything) and passes torch's
    errors on: an empty file is a bare ``EOFError``, a truncated one "failed
    finding central directory", neither naming the file. ``init_model``,
    ``MMPoseInferencer``, ``load_from``, ``--resume`` and
    ``init_cfg=Pretrained`` all read through this loader.
    """
    from mmengine.runner import CheckpointLoader

    from .utils.safe_checkpoint import load_from_local_safely
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local_safely, force=True)


def check_gtpt_weights_on_load() -> None:
    """Check GTPT modules' weights in MMEngine's ``load_state_dict``.

    MMEngine loads non-strictly and only logs a mismatch, so a GTPT-T
    checkpoint runs in a GTPT-S model, or a body checkpoint in a whole-body
    model, with random weights wherever they differ. Every MMEngine loading
    path (``load_checkpoint``, ``_load_checkpoint_to_model``,
    ``PretrainedInit``, the inferencer) looks ``load_state_dict`` up in
    ``mmengine.runner.checkpoint`` when it runs; the wrapper first checks
    every GTPT backbone and head in the module
    (:func:`~gtpt_mmpose.models.checkpoint_fit.check_gtpt_modules_fit`).
    """
    import mmengine.runner
    from mmengine.runner import checkpoint

    from .models.checkpoint_fit import check_gtpt_modules_fit
    original = checkpoint.load_state_dict
    if getattr(original, 'gtpt_checked', False):
        return

    @functools.wraps(original)
    def load_state_dict(module, state_dict, strict=False, logger=None):
        check_gtpt_modules_fit(module, state_dict)
        return original(module, state_dict, strict, logger)

    load_state_dict.gtpt_checked = True
    checkpoint.load_state_dict = load_state_dict
    mmengine.runner.load_state_dict = load_state_dict


def patch_opencv_draw_circles() -> None:
    """Let MMPose's OpenCV visualiser draw keypoints under numpy >= 2.

    It calls ``int(radius)`` on a one-element array, which numpy refuses
    ("only 0-dimensional arrays can be converted"): every keypoint drawing
    crashed. Stands in for MMPose converting the radius itself (1.3.2, the
    latest release, does not): applied only where the installed visualiser
    still fails on a one-element radius (:func:`_draw_circles_fails`).
    """
    from mmpose.visualization.opencv_backend_visualizer import \
        OpencvBackendVisualizer

    original = OpencvBackendVisualizer.draw_circles
    if getattr(original, 'gtpt_numpy2_fix',
               False) or not _draw_circles_fails(OpencvBackendVisualizer):
        return

    @functools.wraps(original)
    def draw_circles(self, center, radius, *args, **kwargs):
        if self.backend == 'opencv' and isinstance(
                radius, np.ndarray) and radius.size == 1:
            radius = radius.item()
        return original(self, center, radius, *args, **kwargs)

    draw_circles.gtpt_numpy2_fix = True
    OpencvBackendVisualizer.draw_circles = draw_circles


def _draw_circles_fails(visualizer_class: type) -> bool:
    """Whether ``visualizer_class.draw_circles`` (OpenCV backend) raises on
    a one-element radius array, tried on a 3 x 3 image."""
    visualizer = object.__new__(visualizer_class)  # no window, no backend
    visualizer.backend = 'opencv'
    visualizer._image = np.zeros((3, 3, 3), np.uint8)
    try:
        visualizer_class.draw_circles(
            visualizer,
            np.ones(2),
            np.ones(1),
            face_colors=(1, 1, 1),
            alpha=1.0)
    except TypeError:
        return True
    return False


def apply_import_fixes() -> None:
    """Apply fixes 1 to 4; ``import gtpt_mmpose`` calls this."""
    allow_mmengine_checkpoints()
    register_safe_checkpoint_loader()
    check_gtpt_weights_on_load()
    patch_opencv_draw_circles()


def _launcher(argv: List[str]) -> str:
    """The value of ``--launcher`` in ``argv`` (``'none'`` without it)."""
    for i, arg in enumerate(argv):
        if arg == '--launcher' and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith('--launcher='):
            return arg.split('=', 1)[1]
    return 'none'


def start_cpu_process_group(argv: List[str]) -> List[str]:
    """Start distributed training on a machine without CUDA.

    MMEngine 0.10.7's set-up calls ``torch.cuda.set_device`` and gives DDP
    ``device_ids``, so ``--launcher pytorch`` fails without a GPU. Here the
    gloo process group is started first (MMEngine then skips its own set-up)
    and DDP gets no device ids. Stands in for a CPU branch in MMEngine's
    ``init_dist`` and ``Runner.wrap_model``; applied only where CUDA is
    absent.

    Args:
        argv (List[str]): The arguments of MMPose's ``tools/train.py``.

    Returns:
        List[str]: Extra ``--cfg-options`` to append to ``argv`` (none for a
        run that is not distributed or has CUDA).
    """
    import torch
    import torch.distributed as dist

    launcher = _launcher(argv)
    if launcher == 'none' or torch.cuda.is_available() or dist.is_initialized(
    ):
        return []
    if launcher != 'pytorch':
        raise SystemExit(
            f'--launcher {launcher} is not supported on a machine without '
            'CUDA; use --launcher pytorch (torchrun)')
    dist.init_process_group(backend='gloo')
    return [
        '--cfg-options', 'model_wrapper_cfg.type=MMDistributedDataParallel',
        'model_wrapper_cfg.device_ids=None', 'env_cfg.dist_cfg.backend=gloo'
    ]
