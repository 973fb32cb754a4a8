"""Each fix of gtpt_mmpose.compat, with what breaks without it (issue 13):
every test shows the library's own behaviour with the fix undone, then the
behaviour with it."""
import numpy as np
import pytest
import torch
from conftest import config_file
from mmengine.structures import InstanceData


def runner_like_checkpoint(path) -> None:
    """What an MMEngine 0.10.7 runner saves besides tensors."""
    from mmengine.logging import MessageHub
    hub = MessageHub.get_instance('compat-test')
    hub.update_scalar('train/loss', 0.5)
    hub.update_info('keep_ckpt_ids', [1])
    torch.save(
        dict(
            meta=dict(seed=np.int64(42), epoch=1),
            state_dict=dict(w=torch.ones(2)),
            message_hub=hub.state_dict()), path)


def test_allow_mmengine_checkpoints(tmp_path):
    from torch.serialization import clear_safe_globals

    from gtpt_mmpose.compat import allow_mmengine_checkpoints
    path = str(tmp_path / 'runner.pth')
    runner_like_checkpoint(path)
    clear_safe_globals()
    try:
        with pytest.raises(Exception, match='Weights only load failed'):
            torch.load(path, weights_only=True)
    finally:
        allow_mmengine_checkpoints()
    ckpt = torch.load(path, weights_only=True)
    assert ckpt['meta']['seed'] == 42
    assert ckpt['message_hub']['log_scalars']['train/loss'].current() == 0.5


def test_register_safe_checkpoint_loader(tmp_path, monkeypatch):
    from mmengine.runner import CheckpointLoader
    from mmengine.runner.checkpoint import _load_checkpoint, load_from_local

    from gtpt_mmpose.utils.safe_checkpoint import CheckpointFileError
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    monkeypatch.setitem(CheckpointLoader._schemes, '', load_from_local)
    with pytest.raises(EOFError) as info:
        _load_checkpoint(str(empty))
    assert str(empty) not in str(info.value)  # MMEngine's: no file named
    monkeypatch.undo()
    with pytest.raises(CheckpointFileError, match=f'{empty} is empty'):
        _load_checkpoint(str(empty))


def test_check_gtpt_weights_on_load(converted, monkeypatch):
    from mmengine.runner import checkpoint
    from mmpose.apis import init_model

    from gtpt_mmpose.models.checkpoint_fit import CheckpointMismatchError
    body = converted('gtpt-t_coco')
    monkeypatch.setattr(checkpoint, 'load_state_dict',
                        checkpoint.load_state_dict.__wrapped__)
    # MMEngine only logs the mismatch: a whole-body model runs with random
    # part and dense tokens
    init_model(config_file('gtpt-t_coco-wholebody'), body, device='cpu')
    monkeypatch.undo()
    with pytest.raises(CheckpointMismatchError, match='lacks'):
        init_model(config_file('gtpt-t_coco-wholebody'), body, device='cpu')


def draw_keypoints() -> tuple:
    """Draw 133 keypoints with MMPose's visualiser; return the picture and
    the (133, 2) keypoints."""
    from mmpose.datasets.datasets.utils import parse_pose_metainfo
    from mmpose.structures import PoseDataSample
    from mmpose.visualization import PoseLocalVisualizer

    vis = PoseLocalVisualizer(radius=3)
    vis.set_dataset_meta(
        parse_pose_metainfo(
            dict(from_file='configs/_base_/datasets/coco_wholebody.py')))
    sample = PoseDataSample()
    rng = np.random.default_rng(0)
    keypoints = rng.uniform(10, 90, (1, 133, 2))
    sample.pred_instances = InstanceData(
        keypoints=keypoints, keypoint_scores=np.ones((1, 133)))
    image = np.zeros((100, 100, 3), np.uint8)
    vis.add_datasample(
        'x', image, data_sample=sample, draw_gt=False, kpt_thr=0.5, show=False)
    return vis.get_image(), keypoints[0]


def test_patch_opencv_draw_circles(monkeypatch):
    from mmpose.visualization.opencv_backend_visualizer import \
        OpencvBackendVisualizer
    monkeypatch.setattr(OpencvBackendVisualizer, 'draw_circles',
                        OpencvBackendVisualizer.draw_circles.__wrapped__)
    with pytest.raises(TypeError, match='only 0-dimensional arrays'):
        draw_keypoints()
    monkeypatch.undo()
    image, keypoints = draw_keypoints()
    # a circle on every keypoint (the links alone cover about half of them)
    x, y = np.rint(keypoints).astype(int).T
    assert (image[y, x] > 0).any(-1).all()


def test_start_cpu_process_group(monkeypatch):
    """MMEngine's own set-up for ``--launcher pytorch`` needs CUDA."""
    import torch.distributed as dist
    from mmengine.dist import init_dist

    from gtpt_mmpose.compat import start_cpu_process_group
    if torch.cuda.is_available():  # MMEngine's own NCCL set-up applies
        assert start_cpu_process_group(['cfg.py', '--launcher',
                                        'pytorch']) == []
        assert not dist.is_initialized()
        return
    for key, value in dict(
            RANK='0',
            LOCAL_RANK='0',
            WORLD_SIZE='1',
            MASTER_ADDR='127.0.0.1',
            MASTER_PORT='29531').items():
        monkeypatch.setenv(key, value)
    with pytest.raises(RuntimeError):
        init_dist('pytorch')
    assert not dist.is_initialized()
    try:
        extra = start_cpu_process_group(['cfg.py', '--launcher', 'pytorch'])
        assert dist.get_backend() == 'gloo'
        assert 'model_wrapper_cfg.device_ids=None' in extra
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    assert start_cpu_process_group(['cfg.py']) == []  # not distributed


def test_fixes_retire_where_the_installed_libraries_no_longer_need_them(
        monkeypatch):
    """A released upstream fix makes ours a no-op: here simulated by an
    MMPose whose visualiser takes a one-element radius, and an MMEngine
    whose HistoryBuffer is already an allowed global."""
    import torch.serialization
    from mmpose.visualization.opencv_backend_visualizer import \
        OpencvBackendVisualizer

    from gtpt_mmpose import compat
    unpatched = OpencvBackendVisualizer.draw_circles.__wrapped__

    def fixed_upstream(self, center, radius, *args, **kwargs):
        return unpatched(self, center, float(np.asarray(radius).item()), *args,
                         **kwargs)

    monkeypatch.setattr(OpencvBackendVisualizer, 'draw_circles', unpatched)
    assert compat._draw_circles_fails(OpencvBackendVisualizer)
    monkeypatch.setattr(OpencvBackendVisualizer, 'draw_circles',
                        fixed_upstream)
    compat.patch_opencv_draw_circles()
    assert OpencvBackendVisualizer.draw_circles is fixed_upstream

    added = []
    monkeypatch.setattr(torch.serialization, 'add_safe_globals', added.append)
    compat.allow_mmengine_checkpoints()  # import already allowed them
    assert added == []
