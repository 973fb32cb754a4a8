"""Refuse a model whose keypoint count does not match its data set's, before
any iteration."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpose.registry import HOOKS


def check_keypoint_count(model, dataset, where: str) -> None:
    """Raise ValueError naming ``model.backbone.num_keypoints`` when it differs
    from the data set's."""
    model = model.module if is_model_wrapper(model) else model
    expected = getattr(getattr(model, 'backbone', None), 'num_keypoints', None)
    found = getattr(dataset, 'metainfo', {}).get('num_keypoints')
    if expected is not None and found is not None and expected != found:
        raise ValueError(
            f'model.backbone.num_keypoints is {expected}, but the {where} '
            'data set '
            f'{type(dataset).__name__} has {found} keypoints: use a config '
            'made for that data set '
            f'(gtpt-*_coco.py for 17, gtpt-*_coco-wholebody.py for 133)')


@HOOKS.register_module()
class KeypointCountCheckHook(Hook):
    """Compare the model's keypoint count with the train/val/test data set when
    each loop starts."""

    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        check_keypoint_count(runner.model, runner.train_dataloader.dataset,
                             'training')

    def before_val(self, runner) -> None:
        check_keypoint_count(runner.model, runner.val_dataloader.dataset,
                             'validation')

    def before_test(self, runner) -> None:
        check_keypoint_count(runner.model, runner.test_dataloader.dataset,
                             'test')
