"""The GPU check's agreement figures: authors' logits on the GPU, the staged
backward, float16 AMP steps, host syncs per step and a DDP step.

Each section takes the report and the run's context (``ctx.device``: where
CUDA figures are measured, ``'cuda'``, or ``'cpu'`` in a rehearsal;
``ctx.args``: sizes) and adds its figures; ``FIGURES`` names those that
need CUDA, which the caller reports as skipped on a machine without it.
"""
import collections
import contextlib
import functools
import io
import os.path as osp
import socket
import subprocess
import sys
import tempfile
import warnings
from typing import Callable, Dict, Iterator, List, Tuple

import numpy as np
import torch
from figures import grad_gap, max_abs_diff, release, tf32, verdict
from torch import Tensor

from gtpt_mmpose.analysis.model_zoo import build_model
from gtpt_mmpose.analysis.synthetic import training_batch, training_data

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FIXTURES = osp.join(REPO, 'tests', 'data', 'official-gtpt')
CONVERTER = osp.join(REPO, 'tools', 'convert_official_checkpoint.py')
#: |logit| gap to the authors' logits that the parity tests allow
PARITY_TOLERANCE = 1e-4
#: gradient gap, relative to the largest gradient, per precision
GRAD_TOLERANCE = {'fp32': 1e-4, 'bf16': 5e-2}
PRECISIONS = ('fp32', 'bf16')

FIGURES = {
    'parity': [
        'parity.cuda_vs_authors', 'parity.cuda_vs_cpu',
        'parity.cuda_vs_cpu.kept_tokens'
    ],
    'staged': [
        f'{kind}.{p}.{what}' for p in PRECISIONS
        for kind, what in (('staged_vs_joint', 'loss'),
                           ('staged_vs_joint', 'grad'), ('joint_vs_joint',
                                                         'grad'))
    ],
    'amp': [
        'amp_fp16.finite_losses', 'amp_fp16.skipped_steps',
        'amp_fp16.final_loss_scale'
    ],
    'syncs': [
        'syncs_per_step.gtpt-s.fp32', 'syncs_per_step.gtpt-s.amp',
        'syncs_per_step.rtmpose-m.fp32'
    ],
    'ddp': ['ddp_nccl.loss', 'ddp_nccl.grad'],
}


def parity(report, ctx) -> None:
    """A converted authors' fixture: its logits on the CPU against the
    authors', and on the GPU (TF32 off) against both."""
    from mmpose.apis import init_model

    from gtpt_mmpose.utils.config_paths import config_path
    sys.path.insert(0, FIXTURES)
    import make_checkpoint
    name = ctx.args.fixture
    fixture = osp.join(FIXTURES, name)
    x = torch.from_numpy(make_checkpoint.make_input(fixture))
    expected = tuple(
        torch.from_numpy(np.load(osp.join(fixture, f'expected_pred_{a}.npy')))
        for a in 'xy')
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        authors, converted = (
            osp.join(tmp, f) for f in ('authors.pth', 'converted.pth'))
        make_checkpoint.save_checkpoint(fixture, authors)
        proc = subprocess.run([sys.executable, CONVERTER, authors, converted],
                              capture_output=True,
                              text=True)
        if proc.returncode:
            raise RuntimeError('convert_official_checkpoint.py failed: ' +
                               proc.stderr.strip()[-500:])
        devices = {'cpu': 'cpu'}
        if ctx.device:
            devices['cuda'] = ctx.device
        for key, device in devices.items():
            with contextlib.redirect_stdout(io.StringIO()):  # its chatter
                model = init_model(config_path(name), converted, device=device)
            with torch.no_grad(), tf32(False):
                image = x.to(device)
                logits = model.head.forward(model.extract_feat(image))
                kept = model.backbone.kept_tokens(image)
            runs[key] = (logits, kept)
            del model
    gap = max_abs_diff(runs['cpu'][0], expected)
    report.add(
        'parity.cpu_vs_authors',
        gap,
        'logit', f'{name}, {x.shape[0]} images, max |logit difference|; '
        f'{verdict(gap, PARITY_TOLERANCE)}',
        fmt='.2e')
    if 'cuda' not in runs:
        for figure in FIGURES['parity']:
            report.skip(figure, ctx.why_not)
        return
    for figure, reference in (('parity.cuda_vs_authors', expected),
                              ('parity.cuda_vs_cpu', runs['cpu'][0])):
        gap = max_abs_diff(runs['cuda'][0], reference)
        report.add(
            figure,
            gap,
            'logit',
            f'TF32 off; {verdict(gap, PARITY_TOLERANCE)}',
            fmt='.2e')
    differ, rows = kept_token_rows_differing(runs['cuda'][1], runs['cpu'][1])
    report.add(
        'parity.cuda_vs_cpu.kept_tokens',
        'same' if not differ else f'{differ} of {rows} rows differ',
        note='the visual tokens each pruning step kept')
    release(ctx.device)


def kept_token_rows_differing(a: Dict[str, torch.Tensor],
                              b: Dict[str, torch.Tensor]) -> Tuple[int, int]:
    """Rows (image, group, pruning step) whose kept token sets differ."""
    differ = rows = 0
    for key in a:
        if key == 'tokens':
            continue
        x, y = (t.cpu().sort(-1).values for t in (a[key], b[key]))
        differ += int((x != y).any(-1).sum())
        rows += x[..., 0].numel()
    return differ, rows


def losses_and_grads(model: torch.nn.Module, images: torch.Tensor,
                     samples: list) -> Tuple[dict, dict]:
    """The model's losses and every parameter's gradient of their sum."""
    model.zero_grad(set_to_none=True)
    losses = model.loss(images, samples)
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    return ({
        k: v.detach().float()
        for k, v in losses.items()
    }, {
        n: p.grad.detach().clone()
        for n, p in model.named_parameters() if p.grad is not None
    })


def staged_vs_joint(report, ctx) -> None:
    """GTPT-S's staged backward (the unpruned pass first) against one joint
    backward, in float32 (TF32 off) and under bfloat16 autocast; a second
    joint run gives the device's run-to-run floor (atomic adds)."""
    device, batch = ctx.device, ctx.args.check_batch
    staged = build_model('gtpt-s', device, unpruned_first=True).train()
    joint = build_model('gtpt-s', device, unpruned_first=False).train()
    images, samples = training_batch(batch, device)
    for precision in PRECISIONS:
        autocast = torch.autocast(
            device, torch.bfloat16, enabled=precision == 'bf16')
        with autocast, tf32(False):
            taken = staged._stages_the_passes(images)
            s_losses, s_grads = losses_and_grads(staged, images, samples)
            j_losses, j_grads = losses_and_grads(joint, images, samples)
            _, again = losses_and_grads(joint, images, samples)
        if not taken:
            raise RuntimeError(f'the staged backward is off under {precision}'
                               ': nothing to compare')
        name = f'staged_vs_joint.{precision}'
        report.add(
            f'{name}.loss',
            max(abs(float(s_losses[k] - j_losses[k])) for k in j_losses),
            note=f'GTPT-S, batch {batch}, largest |loss difference|',
            fmt='.2e')
        gap = grad_gap(s_grads, j_grads)
        report.add(
            f'{name}.grad',
            gap,
            note='max |gradient difference| / largest gradient; '
            f'{verdict(gap, GRAD_TOLERANCE[precision])}',
            fmt='.2e')
        report.add(
            f'joint_vs_joint.{precision}.grad',
            grad_gap(again, j_grads),
            note='the same joint backward twice: the floor',
            fmt='.2e')
    del staged, joint
    release(device)


@contextlib.contextmanager
def _amp_off_gpu(model: torch.nn.Module) -> Iterator[None]:
    """Let MMEngine's ``AmpOptimWrapper`` be built for a model on the CPU (a
    rehearsal): it asserts a GPU; on the CPU its GradScaler disables itself
    and autocast runs in bfloat16."""
    if next(model.parameters()).device.type != 'cpu':
        yield
        return
    from mmengine.optim.optimizer import amp_optimizer_wrapper as module
    is_cuda_available = module.is_cuda_available
    module.is_cuda_available = lambda: True
    try:
        yield
    finally:
        module.is_cuda_available = is_cuda_available


def amp_optim_wrapper(model: torch.nn.Module, name: str = 'gtpt-s'):
    """The optimizer wrapper MMPose's ``tools/train.py CONFIG --amp`` builds
    from the model's config: ``AmpOptimWrapper``, dynamic loss scale,
    float16 on a GPU."""
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper

    from gtpt_mmpose.utils.config_paths import config_path
    cfg = Config.fromfile(config_path(f'{name}_coco-wholebody')).optim_wrapper
    cfg.type = 'AmpOptimWrapper'
    cfg.setdefault('loss_scale', 'dynamic')
    with _amp_off_gpu(model):
        return build_optim_wrapper(model, cfg)


def optim_wrapper(model: torch.nn.Module, amp: bool):
    """Adam 1e-3 in MMEngine's ``OptimWrapper`` or, with ``amp``, its
    ``AmpOptimWrapper`` (float16 and a dynamic loss scale on a GPU)."""
    from mmengine.optim import build_optim_wrapper
    cfg = dict(
        type='AmpOptimWrapper' if amp else 'OptimWrapper',
        optimizer=dict(type='Adam', lr=1e-3))
    with _amp_off_gpu(model):
        return build_optim_wrapper(model, cfg)


def adam_steps_taken(optimizer: torch.optim.Optimizer) -> int:
    """How many steps Adam really took (a loss scaler skips some)."""
    steps = [int(s['step']) for s in optimizer.state.values() if 'step' in s]
    return max(steps, default=0)


def amp_steps(report, ctx) -> None:
    """GTPT-S for ``--amp-steps`` training steps as ``--amp`` runs them:
    MMEngine's ``AmpOptimWrapper`` from our config, a new batch each step."""
    device, batch, steps = ctx.device, ctx.args.check_batch, ctx.args.amp_steps
    model = build_model('gtpt-s', device).train()
    wrapper = amp_optim_wrapper(model)
    scale = [float(wrapper.loss_scaler.get_scale())]
    losses = []
    for step in range(steps):
        log = model.train_step(
            training_data(batch, device, seed=step), wrapper)
        losses.append(float(log['loss']))
        scale.append(float(wrapper.loss_scaler.get_scale()))
    finite = sum(np.isfinite(v) for v in losses)
    taken = adam_steps_taken(wrapper.optimizer)
    report.add(
        'amp_fp16.finite_losses',
        f'{finite}/{steps}',
        note=f'GTPT-S, batch {batch}; loss {losses[0]:.4g} -> '
        f'{losses[-1]:.4g}')
    report.add(
        'amp_fp16.skipped_steps',
        steps - taken,
        note='steps the loss scaler skipped (Adam took '
        f'{taken})')
    report.add(
        'amp_fp16.final_loss_scale',
        scale[-1],
        note=f'from {scale[0]:g}; lowest {min(scale):g}',
        fmt='g')
    del model, wrapper
    release(device)


@contextlib.contextmanager
def sync_warnings() -> Iterator[List[warnings.WarningMessage]]:
    """The warnings CUDA's sync debug mode gives for every operation that
    makes the host wait for the GPU."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        torch.cuda.set_sync_debug_mode('warn')
        try:
            yield caught
        finally:
            torch.cuda.set_sync_debug_mode('default')


def count_syncs(step: Callable[[], object]) -> Tuple[int, str]:
    """Host syncs of one call, and where the most come from."""
    torch.cuda.synchronize()
    with sync_warnings() as caught:
        step()
    torch.cuda.synchronize()
    places = collections.Counter(
        f'{"/".join(w.filename.split("/")[-2:])}:{w.lineno}' for w in caught
        if 'synchroniz' in str(w.message))
    top = ', '.join(f'{p} x{n}' for p, n in places.most_common(3))
    return sum(places.values()), top


def host_syncs(report, ctx) -> None:
    """Syncs of one ``model.train_step`` (data preprocessor, forward, loss,
    backward, optimizer wrapper) after a warm-up step."""
    device, batch = ctx.device, ctx.args.check_batch
    for name, precision in (('gtpt-s', 'fp32'), ('gtpt-s', 'amp'),
                            ('rtmpose-m', 'fp32')):
        model = build_model(name, device).train()
        wrapper = optim_wrapper(model, amp=precision == 'amp')
        data = training_data(batch, device)
        log = model.train_step(data, wrapper)
        count, top = count_syncs(
            functools.partial(model.train_step, data, wrapper))
        report.add(
            f'syncs_per_step.{name}.{precision}',
            count,
            note=f'+{len(log)} when the runner logs {len(log)} values; '
            f'top: {top or "-"}')
        del model, wrapper
        release(device)


class _RecordingSGD(torch.optim.SGD):
    """SGD that keeps each step's gradients, for comparing two runs (plain
    SGD carries a small gradient difference into the next step as a small
    difference; Adam's first step would turn rounding into +-lr)."""

    def __init__(self, named_params, **kwargs) -> None:
        named_params = list(named_params)
        self.names = {id(p): n for n, p in named_params}
        self.grads: List[Dict[str, torch.Tensor]] = []
        super().__init__([p for _, p in named_params], **kwargs)

    def step(self, closure=None):
        self.grads.append({
            self.names[id(p)]: p.grad.detach().clone()
            for g in self.param_groups
            for p in g['params'] if p.grad is not None
        })
        return super().step(closure)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _two_steps(device: str, batch: int,
               wrap: bool) -> Tuple[List[float], List[Dict[str, Tensor]]]:
    """Losses and gradients of two SGD steps of GTPT-S, wrapped in DDP as
    MMEngine's runner wraps it for ``--launcher pytorch`` or not."""
    from mmengine.model import MMDistributedDataParallel
    from mmengine.optim import OptimWrapper
    model = build_model('gtpt-s', device).train()
    optimizer = _RecordingSGD(model.named_parameters(), lr=1e-3)
    if wrap:
        model = MMDistributedDataParallel(
            module=model,
            device_ids=[torch.cuda.current_device()]
            if device == 'cuda' else None,
            broadcast_buffers=False,
            find_unused_parameters=False)
    wrapper = OptimWrapper(optimizer)
    losses = []
    with tf32(False):
        for seed in range(2):
            log = model.train_step(
                training_data(batch, device, seed=seed), wrapper)
            losses.append(float(log['loss']))
    return losses, optimizer.grads


def ddp_step(report, ctx) -> None:
    """Two training steps of GTPT-S in ``MMDistributedDataParallel`` (one
    process, NCCL on a GPU) against the same steps without DDP."""
    import torch.distributed as dist
    device, batch = ctx.device, ctx.args.check_batch
    backend = 'nccl' if device == 'cuda' else 'gloo'
    dist.init_process_group(
        backend,
        init_method=f'tcp://127.0.0.1:{_free_port()}',
        rank=0,
        world_size=1)
    try:
        plain_loss, plain_grads = _two_steps(device, batch, wrap=False)
        ddp_loss, ddp_grads = _two_steps(device, batch, wrap=True)
    finally:
        dist.destroy_process_group()
    report.add(
        'ddp_nccl.loss',
        max(abs(a - b) for a, b in zip(plain_loss, ddp_loss)),
        note=f'GTPT-S, batch {batch}, 2 steps, {backend}; largest |loss '
        'difference|',
        fmt='.2e')
    gap = max(grad_gap(d, p) for d, p in zip(ddp_grads, plain_grads))
    report.add(
        'ddp_nccl.grad',
        gap,
        note='max |gradient difference| / largest gradient; '
        f'{verdict(gap, GRAD_TOLERANCE["fp32"])}',
        fmt='.2e')
    release(device)
