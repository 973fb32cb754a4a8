"""Bad inputs (issue 5): an image or annotation file that cannot be used gives
one error naming the file (or the array's shape/dtype); greyscale and BGRA
pictures work as their BGR versions."""
import json
import os.path as osp
import re
import shutil

import cv2
import numpy as np
import pytest
from conftest import MINI_DATA, config_file
from mini_runner import train_set

NAME = 'gtpt-t_coco-wholebody'
IMAGE = osp.join(MINI_DATA, 'val2017', '000000196141.jpg')
BOX = np.array([[247.76, 74.23, 417.43,
                 375.01]])  # the batter (annotation 460541), x1 y1 x2 y2
WHOLEBODY_ANN = osp.join(MINI_DATA, 'annotations',
                         'coco_wholebody_val_v1.0.json')
BODY_ANN = osp.join(MINI_DATA, 'annotations', 'person_keypoints_val2017.json')


@pytest.fixture(scope='module')
def model(converted):
    import torch
    from mmpose.apis import init_model
    threads = torch.get_num_threads()
    torch.set_num_threads(
        1)  # 2 shared cores: a second OpenMP thread mostly spins
    yield init_model(config_file(NAME), converted(NAME), device='cpu')
    torch.set_num_threads(threads)


def keypoints(model, img) -> np.ndarray:
    """(133, 2) keypoints of the batter in ``img`` (a path or an array)."""
    from mmpose.apis import inference_topdown
    (sample, ) = inference_topdown(model, img, BOX, bbox_format='xyxy')
    return sample.pred_instances.keypoints[0]


def bad_image_files(folder) -> dict:
    """{problem: (path, exception, message)} for a missing, an empty and two
    undecodable files."""
    with open(IMAGE, 'rb') as f:
        jpeg = f.read()
    files = dict(
        empty=b'',
        garbage=b'this is not an image\n' * 50,
        truncated=jpeg[:300])
    cases = dict(
        missing=(str(folder / 'missing.jpg'), FileNotFoundError,
                 'image file not found: '))
    for problem, data in files.items():
        path = folder / f'{problem}.jpg'
        path.write_bytes(data)
        message = ('image file is empty'
                   if problem == 'empty' else 'is not a readable image')
        cases[problem] = (str(path), ValueError, message)
    return cases


@pytest.mark.parametrize('problem',
                         ['missing', 'empty', 'garbage', 'truncated'])
def test_an_unreadable_image_file_is_named(problem, model, tmp_path):
    path, error, message = bad_image_files(tmp_path)[problem]
    with pytest.raises(error, match=re.escape(message)) as info:
        keypoints(model, path)
    assert path in str(info.value)
    assert len(str(info.value).splitlines()
               ) == 1  # one line, not the decoder's traceback text


def test_greyscale_and_bgra_pictures_give_the_keypoints_of_their_bgr_versions(
        model, tmp_path):
    bgr = cv2.imread(IMAGE)
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    expected_grey = keypoints(model, cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR))
    assert expected_grey.shape == (133, 2)
    cv2.imwrite(str(tmp_path / 'grey.png'),
                grey)  # PNG: lossless, so the pixels are the same
    for img in (grey, grey[..., None], str(tmp_path / 'grey.png')):
        np.testing.assert_array_equal(keypoints(model, img), expected_grey)

    bgra = np.dstack([
        bgr,
        np.random.default_rng(0).integers(
            0, 256, bgr.shape[:2], dtype=np.uint8)
    ])
    cv2.imwrite(str(tmp_path / 'bgra.png'), bgra)
    assert cv2.imread(str(tmp_path / 'bgra.png'),
                      cv2.IMREAD_UNCHANGED).shape[2] == 4
    expected = keypoints(model, bgr)
    for img in (bgra, str(tmp_path / 'bgra.png')):
        np.testing.assert_array_equal(keypoints(
            model, img), expected)  # alpha is dropped, not blended


@pytest.mark.parametrize('img, message', [
    (np.zeros(
        (429, 640, 2), np.uint8), r'image array has shape \(429, 640, 2\)'),
    (np.zeros((429, 640, 3, 1),
              np.uint8), r'image array has shape \(429, 640, 3, 1\)'),
    (np.zeros((0, 640, 3), np.uint8), r'image array has shape \(0, 640, 3\)'),
    (np.zeros((429, 640, 3), np.float32), 'image array has dtype float32'),
    (np.full((429, 640, 3), 300,
             np.int64), r'image array has dtype int64 \(values 300..300\)'),
])
def test_an_image_array_of_another_shape_or_dtype_is_refused(
        img, message, model):
    with pytest.raises(ValueError, match=message):
        keypoints(model, img)


def test_the_transform_converts_arrays_to_uint8_bgr():
    from gtpt_mmpose.datasets import LoadImageAsBGR
    bgr = cv2.imread(IMAGE)
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    load = LoadImageAsBGR(color_type='color_ignore_orientation')
    for img, expected in [(grey, np.dstack([grey] * 3)),
                          (grey[..., None], np.dstack([grey] * 3)),
                          (np.dstack([bgr, grey]), bgr),
                          (bgr.astype(np.int64), bgr)]:
        results = load(dict(img=img))
        assert results['img'].dtype == np.uint8 and results[
            'img_shape'] == bgr.shape[:2]
        np.testing.assert_array_equal(results['img'], expected)
    with pytest.raises(TypeError, match='expected a numpy array .* got list'):
        load(dict(img=grey.tolist()))
    assert LoadImageAsBGR(ignore_empty=True)(dict(img_path=IMAGE +
                                                  '.missing')) is None


@pytest.fixture
def mini_copy(tmp_path):
    """A copy of the mini data set (1.6 MB), to break."""
    root = tmp_path / 'coco-wholebody-mini'
    shutil.copytree(MINI_DATA, root)
    return root


@pytest.mark.parametrize('problem', ['empty', 'garbage'])
def test_the_training_pipeline_names_an_unreadable_image(problem, mini_copy):
    from mmengine.config import Config
    from mmpose.registry import DATASETS
    bad = mini_copy / 'train2017' / '000000196141.jpg'
    bad.write_bytes(b'' if problem == 'empty' else b'\x00' * 5000)
    cfg = Config.fromfile(config_file('gtpt-t_coco-wholebody_mini'))
    dataset = DATASETS.build(
        dict(train_set(cfg), data_root=str(mini_copy) + '/'))
    assert type(dataset).__name__ == 'CheckedCocoWholeBodyDataset'
    broken = [
        i for i in range(len(dataset))
        if dataset.get_data_info(i)['img_path'] == str(bad)
    ]
    assert len(broken) == 4
    message = ('image file is empty'
               if problem == 'empty' else 'is not a readable image')
    # training goes on with the next good sample and names the bad one
    substitute = dataset[broken[-1]]
    (skipped, ) = substitute['data_samples'].metainfo['skipped_samples']
    assert str(bad) in skipped['sample'] and message in skipped['reason']
    assert str(bad) in skipped['reason']
    assert substitute['inputs'].shape == (3, 256, 192)
    assert substitute['data_samples'].metainfo['img_path'] != str(bad)


def not_wholebody_files(folder) -> dict:
    """{kind: (path, message)}: annotation files that are not COCO-WholeBody.
    """
    files = {
        'a JSON list': [1, 2, 3],
        'no annotations': dict(images=[], categories=[])
    }
    cases = {
        'COCO body':
        (BODY_ANN,
         re.escape(f'annotation file {BODY_ANN} is not a COCO-WholeBody file: '
                   "annotation id ") + r"\d+ has no 'foot_kpts', 'face_kpts', "
         "'lefthand_kpts', 'righthand_kpts'.* COCO body file")
    }
    for kind, content in files.items():
        path = str(folder / (kind.replace(' ', '_') + '.json'))
        with open(path, 'w') as f:
            json.dump(content, f)
        cases[kind] = (
            path,
            re.escape(
                f'annotation file {path} is not a COCO-style annotation file'))
    return cases


@pytest.mark.parametrize('kind',
                         ['COCO body', 'a JSON list', 'no annotations'])
def test_the_wholebody_dataset_refuses_another_annotation_file(kind, tmp_path):
    from mmengine.config import Config
    from mmpose.registry import DATASETS
    path, message = not_wholebody_files(tmp_path)[kind]
    cfg = Config.fromfile(config_file('gtpt-t_coco-wholebody_mini'))
    with pytest.raises(ValueError, match=message):
        DATASETS.build(
            dict(train_set(cfg), ann_file=path, data_root=MINI_DATA + '/'))


@pytest.mark.parametrize('kind',
                         ['COCO body', 'a JSON list', 'no annotations'])
def test_the_wholebody_metric_refuses_another_annotation_file(kind, tmp_path):
    from mmpose.registry import METRICS
    path, message = not_wholebody_files(tmp_path)[kind]
    with pytest.raises(ValueError, match=message):
        METRICS.build(dict(type='WholeBodyPartMetric', ann_file=path))
    METRICS.build(dict(type='WholeBodyPartMetric',
                       ann_file=WHOLEBODY_ANN))  # the real one passes


def test_every_config_loads_images_with_the_checks():
    import glob

    from mmengine.config import Config
    paths = glob.glob(config_file('gtpt-*'))
    coco = [p for p in paths if '_coco' in osp.basename(p)]
    assert len(coco) == 8 and len(paths) > len(coco)
    for path in paths:
        cfg = Config.fromfile(path)
        for loader in ('train_dataloader', 'val_dataloader',
                       'test_dataloader'):
            dataset = cfg[loader].dataset
            assert dataset.pipeline[0].type == 'LoadImageAsBGR', (path, loader)
            if path in coco:  # the other data sets: MMPose's own classes
                assert dataset.type == ('CheckedCocoWholeBodyDataset'
                                        if 'coco-wholebody' in path else
                                        'GTPTCocoDataset'), (path, loader)


def test_mmposes_load_image_tells_the_user_to_check_a_file_that_exists(
        tmp_path):
    """Why LoadImageAsBGR exists: MMPose's LoadImage says "check whether the
    file exists" of an empty file that exists, raising a type that cannot be
    told from a bug (so training could not skip it), and lets a greyscale
    array through to fail later."""
    from mmpose.datasets.transforms import LoadImage

    from gtpt_mmpose.datasets import BadSampleError, LoadImageAsBGR
    empty = tmp_path / 'empty.jpg'
    empty.write_bytes(b'')
    with pytest.raises(Exception) as info:
        LoadImage()(dict(img_path=str(empty)))
    assert 'Please check whether the file exists' in str(info.value)
    assert not isinstance(info.value, BadSampleError)
    with pytest.raises(
            BadSampleError,
            match=re.escape(f'image file is empty (0 bytes): '
                            f'{empty}')):
        LoadImageAsBGR()(dict(img_path=str(empty)))
    grey = np.zeros((4, 4), np.uint8)
    assert LoadImage()(dict(img=grey))['img'].ndim == 2
    assert LoadImageAsBGR()(dict(img=grey))['img'].shape == (4, 4, 3)


def test_mmposes_wholebody_dataset_fails_on_a_body_file_without_naming_it():
    """Why CheckedCocoWholeBodyDataset exists (besides skipping bad samples
    in training)."""
    from mmpose.datasets import CocoWholeBodyDataset
    with pytest.raises(KeyError) as info:
        CocoWholeBodyDataset(
            ann_file=BODY_ANN, data_root='', data_prefix=dict(img=''))
    assert BODY_ANN not in str(info.value)
