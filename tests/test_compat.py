"""MMPose 1.3.2 on numpy 2.4: drawing keypoints must work once gtpt_mmpose is
imported."""
import numpy as np
from mmengine.structures import InstanceData


def test_pose_visualizer_draws_keypoints_under_numpy2():
    from mmpose.datasets.datasets.utils import parse_pose_metainfo
    from mmpose.structures import PoseDataSample
    from mmpose.visualization import PoseLocalVisualizer

    vis = PoseLocalVisualizer(radius=3)
    vis.set_dataset_meta(
        parse_pose_metainfo(
            dict(from_file='configs/_base_/datasets/coco_wholebody.py')))
    sample = PoseDataSample()
    rng = np.random.default_rng(0)
    sample.pred_instances = InstanceData(
        keypoints=rng.uniform(10, 90, (1, 133, 2)),
        keypoint_scores=np.ones((1, 133)))
    image = np.zeros((100, 100, 3), np.uint8)
    vis.add_datasample(
        'x', image, data_sample=sample, draw_gt=False, kpt_thr=0.5, show=False)
    assert vis.get_image().sum() > 0  # circles and links were drawn
