"""The inference demo (issue 4): pictures and JSON for a mini-set image, three ways of finding people."""
import json
import os.path as osp
import subprocess
import sys

import pytest
from conftest import MINI_DATA, REPO, config_file, python_env

IMAGE = osp.join(MINI_DATA, 'train2017', '000000196141.jpg')
DEMO = osp.join(REPO, 'demo', 'inference_demo.py')


def run_demo(converted, out_dir, *extra):
    cmd = [sys.executable, DEMO, IMAGE, '--config', config_file('gtpt-t_coco-wholebody'),
           '--checkpoint', converted('gtpt-t_coco-wholebody'), '--out-dir', str(out_dir), *extra]
    return subprocess.run(cmd, cwd=REPO, env=python_env(), capture_output=True, text=True, timeout=600)


def predictions(out_dir):
    assert osp.getsize(out_dir / 'vis' / '000000196141.jpg') > 10_000
    return json.load(open(out_dir / 'predictions' / '000000196141.json'))


def test_whole_image_mode_writes_picture_and_133_keypoints(converted, tmp_path):
    proc = run_demo(converted, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    people = predictions(tmp_path)
    assert len(people) == 1 and len(people[0]['keypoints']) == 133 and len(people[0]['keypoint_scores']) == 133


def test_user_boxes_mode_predicts_one_person_per_box(converted, tmp_path):
    boxes = tmp_path / 'boxes.json'
    boxes.write_text(json.dumps({'000000196141.jpg': [[247, 74, 170, 300], [453, 206, 177, 210]]}))
    proc = run_demo(converted, tmp_path / 'out', '--bboxes', str(boxes))
    assert proc.returncode == 0, proc.stderr[-2000:]
    people = predictions(tmp_path / 'out')
    assert len(people) == 2
    for person, (x, y, w, h) in zip(people, [[247, 74, 170, 300], [453, 206, 177, 210]]):
        assert len(person['keypoints']) == 133
        assert person['bbox'][0] == pytest.approx([x, y, x + w, y + h])


def test_nobody_found_gives_an_empty_result_not_a_crash(converted, tmp_path):
    boxes = tmp_path / 'boxes.json'
    boxes.write_text(json.dumps({'000000196141.jpg': []}))
    proc = run_demo(converted, tmp_path / 'out', '--bboxes', str(boxes))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert predictions(tmp_path / 'out') == []


def test_missing_input_is_one_clear_error(converted, tmp_path):
    cmd = [sys.executable, DEMO, str(tmp_path / 'nope.jpg'), '--config', config_file('gtpt-t_coco-wholebody'),
           '--checkpoint', converted('gtpt-t_coco-wholebody'), '--out-dir', str(tmp_path / 'out')]
    proc = subprocess.run(cmd, cwd=REPO, env=python_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == f"inference_demo: input {str(tmp_path / 'nope.jpg')!r} does not exist"
    assert not (tmp_path / 'out').exists()
