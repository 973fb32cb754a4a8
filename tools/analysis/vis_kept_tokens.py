#!/usr/bin/env python
"""Draw which visual tokens GTPT keeps at each pruning step, per keypoint group.

    python tools/analysis/vis_kept_tokens.py CONFIG CHECKPOINT IMAGE --out OUT.png [--bbox X Y W H]

The person (the whole image without --bbox) is cropped by the config's own test pipeline. Panels:
the crop with the predicted keypoints; all visual tokens; those kept by the coarse pruning; then,
for the head, upper-body and lower-body groups, the tokens each group received at the
coarse-to-fine transition (light) and still holds after the second pruning (bright). Each token
covers a 16 x 12 pixel cell of the 256 x 192 crop. Asking for the kept tokens changes no output.
"""
import argparse
import os.path as osp
import sys
from typing import Dict

import numpy as np
import torch

GROUP_NAMES = ('head', 'upper body', 'lower body')
GROUP_COLORS = np.array([[1.0, 0.35, 0.2], [0.2, 0.8, 0.3], [0.25, 0.5, 1.0]])
KPT_THR = 0.03  # SimCC probabilities: a confident keypoint peaks near 0.1


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('image')
    p.add_argument('--out', required=True, help='PNG to write')
    p.add_argument('--bbox', type=float, nargs=4, metavar=('X', 'Y', 'W', 'H'))
    p.add_argument('--device', default='cpu')
    return p.parse_args(argv)


def crop_and_tokens(model, image_path: str, bbox_xywh=None) -> Dict[str, np.ndarray]:
    """Run the config's test pipeline on one box; return the RGB crop, kept indices and keypoints."""
    import mmcv
    from mmcv.transforms import Compose
    from mmpose.datasets.datasets.utils import parse_pose_metainfo  # noqa: F401  (pipeline registry)

    image = mmcv.imread(image_path)
    if image is None:
        raise SystemExit(f'vis_kept_tokens: cannot read image {image_path!r}')
    h, w = image.shape[:2]
    x, y, bw, bh = bbox_xywh if bbox_xywh else (0, 0, w, h)
    data = dict(img=image, img_path=image_path, bbox=np.array([[x, y, x + bw, y + bh]], np.float32),
                bbox_score=np.ones(1, np.float32))
    data.update(model.dataset_meta)
    packed = Compose(model.cfg.test_dataloader.dataset.pipeline)(data)
    batch = model.data_preprocessor(dict(inputs=[packed['inputs']], data_samples=[packed['data_samples']]))
    with torch.no_grad():
        kept = model.backbone.kept_tokens(batch['inputs'])
        pred_x, pred_y = model.head.classify(kept.pop('tokens'))
    px, py = pred_x.softmax(-1)[0], pred_y.softmax(-1)[0]
    keypoints = torch.stack((px.argmax(-1), py.argmax(-1)), -1).float() / model.head.simcc_split_ratio
    crop = packed['inputs'].numpy().transpose(1, 2, 0)[..., ::-1]  # BGR -> RGB
    return dict(crop=crop, keypoints=keypoints.numpy(), scores=torch.minimum(px.max(-1).values, py.max(-1).values).numpy(),
                **{k: v[0].numpy() for k, v in kept.items()})


def token_panel(crop: np.ndarray, grid: tuple, strong, light=(), color=(1.0, 1.0, 1.0)) -> np.ndarray:
    """The crop dimmed outside the kept cells; ``light`` cells half tinted, ``strong`` tinted."""
    rows, cols = grid
    ch, cw = crop.shape[0] // rows, crop.shape[1] // cols
    img = crop.astype(np.float32) / 255.0
    out = img * 0.2
    for cells, alpha in ((light, 0.25), (strong, 0.45)):
        for t in cells:
            r, c = divmod(int(t), cols)
            cell = img[r * ch:(r + 1) * ch, c * cw:(c + 1) * cw]
            out[r * ch:(r + 1) * ch, c * cw:(c + 1) * cw] = (1 - alpha) * cell + alpha * np.asarray(color)
    return out.clip(0, 1)


def draw(result: Dict[str, np.ndarray], grid: tuple, out: str, title: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    crop, num = result['crop'], grid[0] * grid[1]
    coarse = [k for k in result if k.startswith('coarse_layer')]
    kept1 = result[coarse[-1]] if coarse else np.arange(num)
    fig, axes = plt.subplots(2, 4, figsize=(13, 9))
    axes[0, 0].imshow(crop)
    ok = result['scores'] > KPT_THR
    axes[0, 0].scatter(result['keypoints'][ok, 0], result['keypoints'][ok, 1], s=6, c='yellow')
    axes[0, 0].set_title(f'crop and {ok.sum()} keypoints (score > {KPT_THR})')
    axes[0, 1].imshow(token_panel(crop, grid, range(num)))
    axes[0, 1].set_title(f'all {num} visual tokens')
    axes[0, 2].imshow(token_panel(crop, grid, kept1))
    axes[0, 2].set_title(f'coarse pruning: {len(kept1)} kept')
    late = [k for k in result if k.startswith('group_layer')]
    for g, name in enumerate(GROUP_NAMES):
        first = result['transition'][g][result['transition'][g] >= 0]
        last = result[late[-1]][g][result[late[-1]][g] >= 0] if late else first
        ax = axes[1, g]
        ax.imshow(token_panel(crop, grid, last, light=sorted(set(first) - set(last)), color=GROUP_COLORS[g]))
        ax.set_title(f'{name}: {len(first)} -> {len(last)} visual tokens')
    axes[0, 3].axis('off')
    axes[0, 3].text(0, 0.5, 'group panels (bottom row):\nbright: kept to the end\nlight: given at the transition,\n  dropped by the second pruning\ndark: not given to the group',
                    fontsize=11, va='center')
    axes[1, 3].imshow(sum(token_panel(crop, grid, result[late[-1]][g][result[late[-1]][g] >= 0] if late else [],
                                      color=GROUP_COLORS[g]) for g in range(3)).clip(0, 1))
    axes[1, 3].set_title('all groups after prune #2')
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    for what, path in (('config', args.config), ('checkpoint', args.checkpoint), ('image', args.image)):
        if not osp.isfile(path):
            raise SystemExit(f'vis_kept_tokens: {what} {path!r} does not exist')
    from mmpose.apis import init_model

    import gtpt_mmpose  # noqa: F401
    model = init_model(args.config, args.checkpoint, device=args.device)
    w, h = model.cfg.codec.input_size
    grid = (h // 16, w // 12)
    result = crop_and_tokens(model, args.image, args.bbox)
    draw(result, grid, args.out, f'{osp.basename(args.config)}: kept visual tokens for {osp.basename(args.image)}')
    print(f'-> {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
