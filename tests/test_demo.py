"""The inference demo (issue 4): pictures and JSON for mini-set images, three
ways of finding people, an empty result where nobody is found, and one-line
errors."""
import importlib.util
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest
from conftest import MINI_DATA, REPO, config_file, python_env

pytestmark = pytest.mark.usefixtures('one_torch_thread')

NAME = 'gtpt-t_coco-wholebody'
IMAGES = osp.join(MINI_DATA, 'train2017')
IMAGE = osp.join(IMAGES, '000000196141.jpg')
DEMO = osp.join(REPO, 'demo', 'inference_demo.py')
# runs a script and reports its exact peak memory between image counts
PEAK_MEMORY = osp.join(REPO, 'tests', 'helpers', 'peak_memory.py')
BOXES = [[247, 74, 170, 300], [453, 206, 177,
                               210]]  # the batter and the catcher, x y w h


def one_thread_env() -> dict:
    return dict(python_env(), OMP_NUM_THREADS='1')


def demo_args(converted, inputs, out_dir, *extra, checkpoint=None):
    return [
        str(inputs), '--config',
        config_file(NAME), '--checkpoint', checkpoint or converted(NAME),
        '--out-dir',
        str(out_dir), *extra
    ]


def run_demo(*args, **kwargs):
    """The demo as a command (its own process: a detector changes MMEngine's
    default scope)."""
    return subprocess.run([sys.executable, DEMO, *demo_args(*args, **kwargs)],
                          cwd=REPO,
                          env=one_thread_env(),
                          capture_output=True,
                          text=True,
                          timeout=600)


def predictions(out_dir, name):
    """The demo's JSON for one image, after checking that it drew the image
    too."""
    assert osp.getsize(osp.join(out_dir, 'vis', name + '.jpg')) > 10_000
    with open(osp.join(out_dir, 'predictions', name + '.json')) as f:
        return json.load(f)


@pytest.fixture(scope='module')
def demo():
    """The demo as a module, to run in this process (saves the imports of a new
    one)."""
    spec = importlib.util.spec_from_file_location('inference_demo', DEMO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_whole_image_mode_writes_picture_and_133_keypoints(
        demo, converted, tmp_path):
    assert demo.main(demo_args(converted, IMAGE, tmp_path)) == 0
    people = predictions(tmp_path, '000000196141')
    assert len(people) == 1
    assert len(people[0]['keypoints']) == len(
        people[0]['keypoint_scores']) == 133
    assert people[0]['bbox'][0] == pytest.approx(
        [0, 0, 640, 429])  # the whole image is the box


def test_user_boxes_one_person_per_box_and_nobody_gives_an_empty_result(
        demo, converted, tmp_path):
    folder = tmp_path / 'images'
    folder.mkdir()
    for name in ('000000196141.jpg', '000000000785.jpg'):
        shutil.copy(osp.join(IMAGES, name), folder)
    boxes = tmp_path / 'boxes.json'
    boxes.write_text(
        json.dumps({
            '000000196141.jpg': BOXES,
            '000000000785.jpg': []
        }))
    assert demo.main(
        demo_args(converted, folder, tmp_path / 'out', '--bboxes',
                  str(boxes))) == 0
    people = predictions(tmp_path / 'out', '000000196141')
    assert len(people) == 2
    for person, (x, y, w, h) in zip(people, BOXES):
        assert len(person['keypoints']) == len(
            person['keypoint_scores']) == 133
        assert person['bbox'][0] == pytest.approx([x, y, x + w, y + h])
    assert predictions(tmp_path / 'out', '000000000785') == []


def test_coco_detection_files_give_people_above_the_threshold_by_image_id(
        demo):
    path = osp.join(MINI_DATA, 'person_detection_results',
                    'COCO_val2017_detections_AP_H_56_person.json')
    with open(path) as f:
        detections = [
            d for d in json.load(f)
            if d['image_id'] == 196141 and d['score'] > 0.5
        ]
    boxes = demo.boxes_for(demo.load_boxes(path, 0.5), IMAGE)
    assert len(boxes) == len(detections) > 0
    x, y, w, h = detections[0]['bbox']
    assert boxes[0].tolist() == pytest.approx(
        [x, y, x + w, y + h, detections[0]['score']])
    assert len(
        demo.boxes_for(
            demo.load_boxes(path, 0.5), 'elsewhere/000000000001.jpg')) == 0


def test_a_detector_that_finds_nobody_gives_an_empty_result(
        converted, tmp_path):
    """An RTMDet person detector (MMPose's demo config) whose classifier never
    fires."""
    import mmpose
    import torch
    from mmdet.registry import MODELS
    from mmengine.config import Config

    det_config = osp.join(
        osp.dirname(mmpose.__file__), '.mim', 'demo', 'mmdetection_cfg',
        'rtmdet_nano_320-8xb32_coco-person.py')
    model = MODELS.build(Config.fromfile(det_config).model)
    for name, p in model.named_parameters():
        if name.startswith('bbox_head.rtm_cls'
                           ):  # every score sigmoid(-30): nobody anywhere
            p.data.fill_(-30. if name.endswith('bias') else 0.)
    det_checkpoint = str(tmp_path / 'blind_detector.pth')
    torch.save(
        dict(
            state_dict=model.state_dict(),
            meta=dict(dataset_meta=dict(classes=('person', )))),
        det_checkpoint)
    proc = run_demo(converted, IMAGE, tmp_path / 'out', '--det-config',
                    det_config, '--det-checkpoint', det_checkpoint)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert predictions(tmp_path / 'out', '000000196141') == []


@pytest.mark.parametrize(
    'problem', ['missing input', 'unreadable image', 'missing checkpoint'])
def test_bad_paths_give_one_clear_error(problem, converted, tmp_path):
    bad = tmp_path / 'nope.jpg'
    if problem == 'unreadable image':
        bad.write_bytes(b'not a JPEG')
    inputs, checkpoint = (
        IMAGE, str(bad)) if problem == 'missing checkpoint' else (bad, None)
    proc = run_demo(converted, inputs, tmp_path / 'out', checkpoint=checkpoint)
    assert proc.returncode != 0
    expected = {
        'missing input': f'input {str(bad)!r} does not exist',
        'unreadable image': f'cannot read image {str(bad)!r}',
        'missing checkpoint': f'checkpoint {str(bad)!r} does not exist'
    }[problem]
    assert proc.stderr.strip().splitlines() == [f'inference_demo: {expected}']
    assert not os.path.exists(tmp_path / 'out')


def test_an_unreadable_image_in_a_folder_is_reported_and_the_rest_finish(
        converted, tmp_path):
    folder = tmp_path / 'images'
    folder.mkdir()
    for name in ('000000196141.jpg', '000000000785.jpg'):
        shutil.copy(osp.join(IMAGES, name), folder)
    (folder / 'broken.jpg').write_bytes(b'\xff\xd8\xff\xe0 not a JPEG')
    (folder / 'empty.jpg').write_bytes(b'')
    proc = run_demo(converted, folder, tmp_path / 'out')
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [
        f'inference_demo: cannot read image {str(folder / name)!r}; skipped'
        for name in ('broken.jpg', 'empty.jpg')
    ]
    for name in ('000000196141', '000000000785'):
        assert len(predictions(tmp_path / 'out', name)) == 1


@pytest.mark.slow
@pytest.mark.skipif(
    not osp.exists('/proc/self/clear_refs'),
    reason='needs Linux\'s resettable peak RSS')
def test_memory_stays_flat_over_300_images(converted, tmp_path):
    """The demo's peak resident memory over images 41-300 is less than 5 %
    above its peak over images 31-40, after a warm-up of 30 (the mini set's
    four images, repeated). The peaks are the kernel's (VmHWM, reset when
    image 30 and image 40 are finished), so no sampling can miss one."""
    folder = tmp_path / 'images'
    folder.mkdir()
    sources = sorted(os.listdir(IMAGES))
    for i in range(300):
        os.symlink(
            osp.join(IMAGES, sources[i % len(sources)]),
            folder / f'{i:03d}.jpg')
    out, report = tmp_path / 'out', tmp_path / 'memory.json'
    proc = subprocess.run([
        sys.executable, PEAK_MEMORY,
        str(report), '30', '40', '300', '--', DEMO,
        *demo_args(converted, folder, out)
    ],
                          cwd=REPO,
                          env=one_thread_env(),
                          stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE,
                          text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(os.listdir(out / 'vis')) == 300
    with open(report) as f:
        warm, late = json.load(f)
    assert warm['images'] == [30, 40] and late['images'] == [40, 300]
    print(f'peak RSS over images 31-40 {warm["peak_kib"] / 1024:.0f} MiB, '
          f'over 41-300 {late["peak_kib"] / 1024:.0f} MiB '
          f'({late["peak_kib"] / warm["peak_kib"] - 1:+.2%}); RSS after '
          f'image 40 {warm["rss_kib"] / 1024:.0f} MiB, after 300 '
          f'{late["rss_kib"] / 1024:.0f} MiB')
    assert late['peak_kib'] < 1.05 * warm['peak_kib']  # measured +0.3 %
