"""Refuse a model whose keypoints are not its data set's (count or names),
before any iteration."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpose.registry import HOOKS


def check_keypoint_count(model, dataset, where: str) -> None:
    """Raise ValueError naming ``model.backbone.num_keypoints`` when it differs
    from the data set's, or ``model.backbone.metainfo`` when the keypoint
    names differ."""
    model = model.module if is_model_wrapper(model) else model
    backbone = getattr(model, 'backbone', None)
    expected = getattr(backbone, 'num_keypoints', None)
    metainfo = getattr(dataset, 'metainfo', {})
    found = metainfo.get('num_keypoints')
    if expected is not None and found is not None and expected != found:
        raise ValueError(
            f'model.backbone.num_keypoints is {expected}, but the {where} '
            'data set '
            f'{type(dataset).__name__} has {found} keypoints: use a config '
            'made for that data set, or set num_keypoints and metainfo to '
            'its own (README, "Your own data set")')
    layout = getattr(backbone, 'keypoints', None)
    names = metainfo.get('keypoint_id2name')
    if layout is not None and names is not None:
        differ = [(k, n, names.get(k)) for k, n in enumerate(layout.names)
                  if names.get(k) != n]
        if differ:
            k, ours, theirs = differ[0]
            raise ValueError(
                f'the model\'s keypoint {k} is {ours!r}, the {where} data '
                f'set {type(dataset).__name__} calls it {theirs!r}: set '
                'model.backbone.metainfo to the data set\'s metainfo file')


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
