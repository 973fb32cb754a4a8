"""Bad samples in a training set (issue 16): a missing image, a corrupt JPEG
and an annotation whose keypoints are all invisible do not stop a run; each
is skipped with one warning naming it and why, and each epoch ends with a
count."""
import json
import re
import shutil

import pytest
from conftest import MINI_DATA
from mini_runner import mini_config, train_set

ANNOTATIONS = 'annotations/person_keypoints_train2017.json'
MISSING, CORRUPT = '000000000785.jpg', '000000040083.jpg'  # 1 and 2 people


def invisible(ann: dict) -> None:
    """Mark every keypoint of ``ann`` invisible, coordinates kept."""
    ann['keypoints'] = [
        0 if i % 3 == 2 else v for i, v in enumerate(ann['keypoints'])
    ]


@pytest.fixture
def broken_set(tmp_path):
    """The mini set with a missing image, a corrupt one, and one annotation
    (returned) whose keypoints are all invisible though its num_keypoints
    says otherwise."""
    root = tmp_path / 'data'
    shutil.copytree(MINI_DATA, root)
    (root / 'train2017' / MISSING).unlink()
    jpeg = (root / 'train2017' / CORRUPT).read_bytes()
    (root / 'train2017' / CORRUPT).write_bytes(jpeg[:len(jpeg) // 3])
    data = json.loads((root / ANNOTATIONS).read_text())
    ann = next(a for a in data['annotations'] if a['image_id'] == 197388
               and a['num_keypoints'] > 0 and not a['iscrowd'])
    invisible(ann)
    (root / ANNOTATIONS).write_text(json.dumps(data))
    return root, ann


def test_bad_samples_are_skipped_with_one_warning_each_and_counted(
        broken_set, tmp_path):
    from mmengine.runner import Runner
    root, ann = broken_set
    # batches of 4 from two worker processes: the records travel with them
    cfg = mini_config(
        tmp_path / 'work',
        'bad_samples',
        epochs=2,
        options={
            'train_dataloader.batch_size': 4,
            'train_dataloader.num_workers': 2
        })
    train_set(cfg).data_root = str(root)
    runner = Runner.from_cfg(cfg)
    runner.train()  # the run ends: nothing stopped it
    assert runner.epoch == 2
    log = open(runner.logger.log_file).read()
    warnings = re.findall(r'skipping bad training sample (.*)', log)
    missing, corrupt = (
        str(root / 'train2017' / n) for n in (MISSING, CORRUPT))
    assert len(warnings) == 4  # once each, though met in both epochs
    assert sum(f'of {missing}: image file not found: {missing}' in w
               for w in warnings) == 1
    assert sum(f'of {corrupt}: {corrupt} is not a readable image' in w
               for w in warnings) == 2
    assert sum(f'annotation {ann["id"]} of ' in w and 'no keypoint is '
               f'visible, though num_keypoints is {ann["num_keypoints"]}' in w
               for w in warnings) == 1
    counts = re.findall(
        r'epoch (\d): (\d+) bad training samples \((\d) distinct\) were '
        'skipped and replaced by the next good ones', log)
    assert [(e, d) for e, _, d in counts] == [('1', '4'), ('2', '4')]


def test_an_annotation_without_visible_keypoints_is_dropped_when_loaded(
        broken_set):
    """Today's behaviour, kept: MMPose drops an annotation whose
    num_keypoints is 0 when it loads the file; it never reaches training."""
    from conftest import config_file
    from mmengine.config import Config
    from mmpose.registry import DATASETS
    root, _ = broken_set
    data = json.loads((root / ANNOTATIONS).read_text())
    ann = next(a for a in data['annotations'] if a['num_keypoints'] > 0
               and not a['iscrowd'] and a['image_id'] == 196141)
    invisible(ann)
    ann['num_keypoints'] = 0
    (root / ANNOTATIONS).write_text(json.dumps(data))
    cfg = Config.fromfile(config_file('gtpt-t_coco_mini'))
    dataset = DATASETS.build(dict(train_set(cfg), data_root=str(root)))
    ids = [dataset.get_data_info(i)['id'] for i in range(len(dataset))]
    assert len(ids) == 11 and ann['id'] not in ids


def test_only_bad_sample_errors_are_caught():
    """A bug is not a bad sample: other exceptions pass through."""
    from gtpt_mmpose.datasets import BadSampleError, SkipBadSamplesMixin

    class Loads:
        test_mode, _fully_initialized = False, True

        def __len__(self) -> int:
            return 3

        def get_data_info(self, idx: int) -> dict:
            return dict(id=idx, img_path=f'{idx}.jpg')

        def __getitem__(self, idx: int):
            if idx == 0:
                raise BadSampleError('0.jpg is bad')
            if idx == 1:
                raise KeyError('a bug')
            return {}

    class Broken(SkipBadSamplesMixin, Loads):
        pass

    with pytest.raises(KeyError, match='a bug'):
        Broken()[0]
