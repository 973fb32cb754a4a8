#!/usr/bin/env python
r"""Draw the visual tokens GTPT keeps at each pruning step, per keypoint group.

    python tools/analysis/vis_kept_tokens.py CONFIG CHECKPOINT IMAGE \
        --out OUT.png [--bbox X Y W H]

The person (the whole image without --bbox) is cropped by the config's own
test pipeline, and the crop goes through ``model.backbone.kept_tokens``
once. Panels: the crop with the keypoints the head decodes from that pass
(no flip test), coloured by group; all visual tokens; the tokens kept by the
coarse pruning; then, one column per group (head, upper body, lower body),
the tokens the group received at the coarse-to-fine transition and those
left after the second pruning. Kept cells are tinted in the group's colour,
dropped cells dimmed. Each token covers a 16 x 12 pixel cell of the
crop (a crop that is not a whole number of cells, e.g. 256 x 256, is drawn
with the padding the model adds). Asking for the kept tokens changes no
output of the model.
"""
import argparse
import os.path as osp
import sys
from typing import Dict, List, NoReturn, Optional, Sequence, Tuple

import numpy as np
import torch

GROUP_NAMES = ('head', 'upper body', 'lower body')
GROUP_COLORS = ((1.0, 0.45, 0.1), (0.15, 0.85, 0.3), (0.25, 0.55, 1.0))
NEUTRAL = (1.0, 1.0, 1.0)
DIM = 0.25  # brightness of dropped cells


def fail(message: str) -> NoReturn:
    """Stop with one line naming the problem, and no traceback."""
    raise SystemExit(f'vis_kept_tokens: {message}')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config', help='GTPT config (COCO or COCO-WholeBody)')
    p.add_argument('checkpoint', help='its weights')
    p.add_argument('image', help='image with the person')
    p.add_argument('--out', required=True, help='PNG to write')
    p.add_argument(
        '--bbox',
        type=float,
        nargs=4,
        metavar=('X', 'Y', 'W', 'H'),
        help='person box (default: the whole image)')
    p.add_argument(
        '--kpt-thr',
        type=float,
        default=0.3,  # MMPose's own default; GTPT's scores share its scale
        help='minimum score of drawn keypoints')
    p.add_argument('--device', default='cpu')
    return p.parse_args(argv)


def preprocess(model: torch.nn.Module, image_path: str,
               bbox_xywh: Optional[Sequence[float]]) -> dict:
    """One box (the whole image by default) through the config's test
    pipeline and the model's data preprocessor."""
    from gtpt_mmpose.deploy import topdown_batch
    if bbox_xywh is None:
        return topdown_batch(model, image_path)
    x, y, w, h = bbox_xywh
    return topdown_batch(model, image_path, [[x, y, x + w, y + h]])


@torch.no_grad()
def analyse(model: torch.nn.Module, batch: dict) -> Dict[str, np.ndarray]:
    """Kept indices of every pruning step, the crop the network saw (RGB)
    and the keypoints the head decodes from the same pass, in crop pixels."""
    kept = model.backbone.kept_tokens(batch['inputs'])
    # flip test off: the keypoints come from exactly the tokens drawn
    pred = model.head.predict((kept.pop('tokens'), ),
                              batch['data_samples'],
                              test_cfg=dict(flip_test=False))[0]
    pre = model.data_preprocessor
    crop = (batch['inputs'][0] * pre.std +
            pre.mean).clamp(0, 255).byte().permute(1, 2, 0)
    return dict(
        crop=crop.cpu().numpy(),
        keypoints=pred.keypoints[0],
        scores=pred.keypoint_scores[0],
        **{
            k: v[0].cpu().numpy()
            for k, v in kept.items()
        })


def token_panel(crop: np.ndarray, grid: Tuple[int, int], kept: Sequence[int],
                color: Sequence[float]) -> np.ndarray:
    """The crop with ``kept`` cells tinted in ``color`` and every other cell
    dimmed; grid lines."""
    rows, cols = grid
    ch, cw = crop.shape[0] // rows, crop.shape[1] // cols
    img = crop.astype(np.float32) / 255.0
    mask = np.zeros(grid, bool)
    mask.flat[np.asarray(kept, int)] = True
    mask = mask.repeat(ch, 0).repeat(cw, 1)[..., None]
    out = np.where(mask, 0.6 * img + 0.4 * np.asarray(color), DIM * img)
    out[::ch] *= 0.5  # grid lines: one token per cell
    out[:, ::cw] *= 0.5
    return out.clip(0, 1)


def visual(indices: np.ndarray) -> np.ndarray:
    """Visual token indices of a group step (-1 marks dense keypoint
    tokens)."""
    return indices[indices >= 0]


def draw(result: Dict[str, np.ndarray], groups: Sequence[Sequence[int]],
         grid: Tuple[int, int], kpt_thr: float, out: str, title: str) -> None:
    """A grid of panels: top row crop + keypoints, all tokens, coarse steps;
    below, one column per group and one row per group step (transition, then
    each fine pruning)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    crop, num = result['crop'], grid[0] * grid[1]
    names = [
        GROUP_NAMES[g] if len(groups) == len(GROUP_NAMES) else f'group {g}'
        for g in range(len(groups))
    ]
    colors = [GROUP_COLORS[g % len(GROUP_COLORS)] for g in range(len(groups))]
    coarse = sorted((k for k in result if k.startswith('coarse_layer')),
                    key=lambda k: int(k[len('coarse_layer'):]))
    fine = ['transition'] + sorted(
        (k for k in result if k.startswith('group_layer')),
        key=lambda k: int(k[len('group_layer'):]))
    rows, cols = 1 + len(fine), max(len(groups), 2 + len(coarse))
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.2 * cols, 4.5 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis('off')

    ax = axes[0, 0]
    ax.imshow(crop)
    shown = result['scores'] > kpt_thr
    for g, ids in enumerate(groups):
        ids = [k for k in ids if shown[k]]
        ax.scatter(
            result['keypoints'][ids, 0],
            result['keypoints'][ids, 1],
            s=14,
            color=colors[g],
            edgecolors='black',
            linewidths=0.5)
    ax.set_xlim(
        0,
        crop.shape[1])  # keypoints outside the crop must not rescale the panel
    ax.set_ylim(crop.shape[0], 0)
    ax.set_title(
        f'keypoints, score > {kpt_thr:g}\n'
        f'{shown.sum()} of {len(shown)} (no flip test)',
        fontsize=10)
    axes[0, 1].imshow(token_panel(crop, grid, range(num), NEUTRAL))
    axes[0, 1].set_title(
        f'all {num} visual tokens\n({grid[0]} x {grid[1]} cells)', fontsize=10)
    previous, step = np.arange(num), 0
    for c, key in enumerate(coarse):
        step += 1
        kept = result[key]
        axes[0, 2 + c].imshow(token_panel(crop, grid, kept, NEUTRAL))
        axes[0, 2 + c].set_title(
            f'prune #{step} (coarse layer {key[len("coarse_layer"):]})\n'
            f'{len(kept)} of {len(previous)} kept',
            fontsize=10)
        previous = kept

    for g in range(len(groups)):
        before = previous
        for r, key in enumerate(fine):
            kept, dense = visual(result[key][g]), int((result[key][g]
                                                       < 0).sum())
            label = (
                'transition' if key == 'transition' else
                f'prune #{step + r} (group layer {key[len("group_layer"):]})')
            ax = axes[1 + r, g]
            ax.imshow(token_panel(crop, grid, kept, colors[g]))
            ax.set_title(
                f'{names[g]}: {label}\n'
                f'{len(kept)} of {len(before)} visual kept' +
                (f' + {dense} dense' if dense else ''),
                fontsize=10)
            before = kept
    fig.suptitle(f'{title}\ntinted: kept, dimmed: dropped', fontsize=11)
    fig.tight_layout(
        rect=(0, 0, 1,
              1 - 0.5 / fig.get_figheight()))  # room for the two-line title
    fig.savefig(out, dpi=90)
    plt.close(fig)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    for what, path in (('config', args.config),
                       ('checkpoint', args.checkpoint), ('image', args.image)):
        if not osp.isfile(path):
            fail(f'{what} {path!r} does not exist')
    import mmcv
    if mmcv.imread(args.image) is None:
        fail(f'cannot read image {args.image!r}')
    from mmpose.apis import init_model

    import gtpt_mmpose  # noqa: F401  (registries, safe checkpoint loading)

    try:
        model = init_model(args.config, args.checkpoint, device=args.device)
    except Exception as e:
        # MMEngine raises many kinds for a bad config or checkpoint
        fail(f'cannot build the model from {args.config!r} and '
             f'{args.checkpoint!r}: {type(e).__name__}: {e}')
    if not hasattr(model.backbone, 'kept_tokens'):
        fail(f'{args.config!r} is not a GTPT model '
             '(its backbone has no kept_tokens)')
    result = analyse(model, preprocess(model, args.image, args.bbox))
    left, right, top, bottom = model.backbone.image_padding
    if left or right or top or bottom:  # the cells cover the padded crop
        result['crop'] = np.pad(result['crop'],
                                ((top, bottom), (left, right), (0, 0)))
        result['keypoints'] = result['keypoints'] + np.array([left, top])
    grid = model.backbone.grid  # rows and columns of the visual tokens
    box = ' box ' + ' '.join(
        f'{v:g}' for v in args.bbox) if args.bbox else ' (whole image)'
    title = (f'{osp.basename(args.config)}: kept visual tokens, '
             f'{osp.basename(args.image)}{box}')
    draw(result, model.backbone.layout.groups, grid, args.kpt_thr, args.out,
         title)
    print(f'-> {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
