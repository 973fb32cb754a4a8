"""Broken checkpoint files (issue 16): every loading path (init_model, the
inferencer, load_from, --resume, init_cfg=Pretrained, the converter, the
stage-1 loader) gives one error naming the file and what is wrong with a
truncated, an empty and a non-checkpoint file, always under
weights_only=True."""
import importlib.util
import os.path as osp
import re

import pytest
from conftest import MINI_DATA, REPO, config_file
from mini_runner import mini_config

from gtpt_mmpose.utils.safe_checkpoint import CheckpointFileError

PROBLEMS = {
    'truncated':
    r'\(\d+ bytes\) is truncated: a zip archive without its end',
    'empty':
    r'is empty \(0 bytes\)',
    'not a checkpoint':
    r"\(\d+ bytes\) is not a PyTorch checkpoint \(it "
    r"starts with b'\\xff\\xd8"
}


@pytest.fixture(params=list(PROBLEMS))
def broken(request, tmp_path, converted):
    """(path, message pattern) of a broken checkpoint file."""
    path = tmp_path / f'{request.param.replace(" ", "_")}.pth'
    if request.param == 'truncated':  # what a save that was killed leaves
        good = open(converted('gtpt-t_coco'), 'rb').read()
        path.write_bytes(good[:len(good) // 2])
    elif request.param == 'empty':
        path.write_bytes(b'')
    else:  # a JPEG given by mistake
        path.write_bytes(
            open(osp.join(MINI_DATA, 'val2017', '000000000785.jpg'),
                 'rb').read())
    return str(path), f'checkpoint file {path} ' + PROBLEMS[request.param]


def one_line(exc: BaseException) -> str:
    message = str(exc)
    assert '\n' not in message, message
    return message


def test_init_model(broken):
    from mmpose.apis import init_model
    path, message = broken
    with pytest.raises(CheckpointFileError, match=message) as info:
        init_model(config_file('gtpt-t_coco'), path, device='cpu')
    one_line(info.value)


def test_the_inferencer(broken):
    from mmpose.apis import MMPoseInferencer
    path, message = broken
    with pytest.raises(CheckpointFileError, match=message) as info:
        MMPoseInferencer(
            pose2d=config_file('gtpt-t_coco'),
            pose2d_weights=path,
            det_model='whole_image',
            device='cpu')
    one_line(info.value)


def test_init_cfg_pretrained(broken):
    from mmengine.config import Config
    from mmpose.registry import MODELS
    path, message = broken
    cfg = Config.fromfile(config_file('gtpt-t_coco')).model
    cfg.backbone.init_cfg = dict(
        type='Pretrained', checkpoint=path, prefix='backbone.')
    model = MODELS.build(cfg)
    with pytest.raises(CheckpointFileError, match=message) as info:
        model.init_weights()
    one_line(info.value)


def test_load_from(broken, tmp_path):
    from mmengine.runner import Runner
    path, message = broken
    runner = Runner.from_cfg(
        mini_config(tmp_path / 'work', epochs=1, options={'load_from': path}))
    with pytest.raises(CheckpointFileError, match=message) as info:
        runner.train()
    one_line(info.value)


def test_resume(broken, tmp_path):
    """With no intact checkpoint to fall back to (that case is in
    test_checkpoint_saving.py)."""
    from mmengine.runner import Runner
    path, message = broken
    work = tmp_path / 'work'
    work.mkdir()
    (work / 'last_checkpoint').write_text(path)
    runner = Runner.from_cfg(
        mini_config(work, epochs=1, options={'resume': True}))
    with pytest.raises(
            CheckpointFileError,
            match=f'cannot resume: {message}.*no other intact checkpoint'
    ) as info:
        runner.train()
    one_line(info.value)


def test_the_stage1_loader(broken):
    from mmengine.config import Config
    from mmpose.registry import MODELS

    from gtpt_mmpose.engine.curriculum import load_stage1
    path, message = broken
    model = MODELS.build(
        Config.fromfile(config_file('gtpt-t_coco-wholebody')).model)
    with pytest.raises(CheckpointFileError, match=message) as info:
        load_stage1(model, path)
    one_line(info.value)


def test_the_converter(broken, tmp_path):
    spec = importlib.util.spec_from_file_location(
        'convert_official_checkpoint',
        osp.join(REPO, 'tools', 'convert_official_checkpoint.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    path, message = broken
    with pytest.raises(SystemExit) as info:
        tool.main([path, str(tmp_path / 'out.pth')])
    assert one_line(info.value).startswith('convert_official_checkpoint: ')
    assert re.search(message, str(info.value))
    assert not osp.exists(tmp_path / 'out.pth')


def test_a_missing_file_is_named(tmp_path):
    from mmpose.apis import init_model
    path = str(tmp_path / 'nope.pth')
    with pytest.raises(
            FileNotFoundError,
            match=f'^checkpoint file {path} does not exist$'):
        init_model(config_file('gtpt-t_coco'), path, device='cpu')
