"""A ShuffleNetV2 stage without channel shuffles or splits, for export.

A stride-1 unit splits its input in halves, transforms the second half and
concatenates, and the channel shuffle after it interleaves the two. In an
exported graph each unit then costs a Split and an interleaving copy of the
whole map, with layout reorders around both (GTPT-S: about 1.2 ms in ONNX
Runtime and 1.8 ms in OpenVINO, docs/design.md §2.4). None of it moves a
value that a convolution could not read in another order: every channel of
the stage is made by some unit's last 1x1 convolution and read exactly once,
by a later unit's first 1x1 convolution or by the stage's consumer.

So :class:`ShuffleFreeStage` cuts each of those last convolutions by output
channel into one convolution per reader ("pieces"), concatenates a unit's
pieces as its input, and permutes the reading convolution's input channels
to that order; the stage's output comes in an order the consumer absorbs in
its weights. The same products, about a third of the copies, and only
concatenations along channels, which the runtimes keep in their blocked
layouts. :func:`plan_pieces` traces which channel goes where.
"""
from typing import Dict, List, NamedTuple, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from ..models.backbones.shufflenet_stem import InvertedResidual

Label = Tuple[int, int]  # (source, channel of that source's output)


class PiecePlan(NamedTuple):
    """Where each channel of a stage goes.

    ``cuts[s]``: per source s, the channel lists of its pieces, in order;
    pieces are numbered over all sources in that order. ``reads[k]``: the
    pieces concatenated as the input of stride-1 unit k, ``read_order[k]``
    the position of each of its channels in the unit's true input half.
    ``out_reads`` and ``out_order``: the same for the stage's output.
    """
    cuts: List[List[List[int]]]
    reads: List[List[int]]
    read_order: List[List[int]]
    out_reads: List[int]
    out_order: List[int]


def plan_pieces(first_widths: Sequence[int], shuffle_first: bool,
                num_units: int) -> PiecePlan:
    """Trace a stage: a first step with one or two sources (a stride-2 unit's
    two branches, shuffled together, or one plain layer), then ``num_units``
    stride-1 units, each its own source, each followed by the shuffle.

    Args:
        first_widths (Sequence[int]): Output channels of the first step's
            sources.
        shuffle_first (bool): Whether the first step's output is shuffled.
        num_units (int): Stride-1 units after it.

    Returns:
        PiecePlan: Sources are numbered: the first step's, then the units'.
    """
    if shuffle_first:  # channel 2j + g is channel j of source g
        y = [(g, j) for j in range(first_widths[0])
             for g in range(len(first_widths))]
    else:
        y = [(0, j) for j in range(first_widths[0])]
    readers: Dict[Label, int] = {}
    inputs: List[List[Label]] = []
    for k in range(num_units):
        half = len(y) // 2
        x1, x2 = y[:half], y[half:]
        inputs.append(x2)
        readers.update((label, k) for label in x2)
        made = [(len(first_widths) + k, j) for j in range(half)]
        y = [c for pair in zip(x1, made) for c in pair]
    readers.update((label, num_units) for label in y)  # the consumer
    widths = list(first_widths) + [len(y) // 2] * num_units
    cuts, piece_of = [], {}  # piece_of[(source, reader)] -> piece number
    for s, width in enumerate(widths):
        by_reader: Dict[int, List[int]] = {}
        for j in range(width):
            by_reader.setdefault(readers[s, j], []).append(j)
        cuts.append([])
        for reader, channels in sorted(by_reader.items()):
            piece_of[s, reader] = sum(map(len, cuts))
            cuts[s].append(channels)
    pieces = [(s, c) for s, source in enumerate(cuts) for c in source]

    def gather(reader: int, true: List[Label]) -> Tuple[List[int], List[int]]:
        got = sorted(p for (s, r), p in piece_of.items() if r == reader)
        labels = [(pieces[p][0], j) for p in got for j in pieces[p][1]]
        position = {label: i for i, label in enumerate(true)}
        return got, [position[label] for label in labels]

    reads, read_order = zip(*(gather(k, x2) for k, x2 in enumerate(inputs)))
    out_reads, out_order = gather(num_units, y)
    return PiecePlan(cuts, list(reads), list(read_order), out_reads, out_order)


def _output_channels(conv: nn.Conv2d, channels: List[int]) -> nn.Conv2d:
    """A copy of ``conv`` that makes only ``channels`` of its output."""
    if conv.groups != 1:
        raise ValueError('only a dense convolution can be cut by output '
                         f'channel, got groups={conv.groups}')
    cut = nn.Conv2d(
        conv.in_channels,
        len(channels),
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        bias=conv.bias is not None).to(conv.weight.device)
    index = torch.tensor(channels, device=conv.weight.device)
    with torch.no_grad():
        cut.weight.copy_(conv.weight[index])
        if conv.bias is not None:
            cut.bias.copy_(conv.bias[index])
    return cut


class PieceSource(nn.Module):
    """A branch whose last convolution is cut into pieces by output channel.

    (B, C_in, H, W) -> one (B, len(channels), H', W') map per piece.

    Args:
        branch (nn.Sequential): Layers ending in a dense convolution and
            what follows it (e.g. an Identity for a folded BatchNorm and a
            ReLU), all element-wise per channel after that convolution.
        cuts (List[List[int]]): The output channels of each piece.
    """

    def __init__(self, branch: nn.Sequential, cuts: List[List[int]]) -> None:
        super().__init__()
        layers = list(branch)
        last = max(i for i, m in enumerate(layers) if isinstance(m, nn.Conv2d))
        self.body = nn.Sequential(*layers[:last])
        self.cuts = nn.ModuleList(
            _output_channels(layers[last], c) for c in cuts)
        self.tail = nn.Sequential(*layers[last + 1:])

    def forward(self, x: Tensor) -> List[Tensor]:
        h = self.body(x)
        return [self.tail(conv(h)) for conv in self.cuts]


def _read_in_order(branch: nn.Sequential, order: List[int]) -> nn.Sequential:
    """``branch`` whose first 1x1 convolution reads input channel j from
    position ``order[j]`` of the original input (weights permuted)."""
    conv = branch[0]
    if not (isinstance(conv, nn.Conv2d) and conv.groups == 1
            and conv.kernel_size == (1, 1)):
        raise TypeError('a stride-1 unit must start with a dense 1x1 '
                        'convolution')
    with torch.no_grad():
        conv.weight.copy_(conv.weight[:, order])  # indexing copies
    return branch


class ShuffleFreeStage(nn.Module):
    """A ShuffleNetV2 stage (a stride-2 unit or a plain layer, then stride-1
    units, each with its channel shuffle) computed without shuffles and
    splits, with BatchNorms already folded.

    (B, C_in, H, W) -> (B, C, H', W'), output channel j being channel
    ``out_order[j]`` of the original stage: the consumer permutes its
    weights to match (:func:`~.fuse.cut_stem_shuffles`).

    Args:
        first (nn.Module): An :class:`InvertedResidual` of stride 2, or an
            ``nn.Sequential`` ending in a dense convolution and a ReLU.
        units (Sequence[InvertedResidual]): The stride-1 units after it.
    """

    def __init__(self, first: nn.Module,
                 units: Sequence[InvertedResidual]) -> None:
        super().__init__()
        if any(u.stride != 1 for u in units):
            raise ValueError('the units after the first must have stride 1')
        if isinstance(first, InvertedResidual):
            if first.stride != 2:
                raise ValueError('a stage starts with a stride-2 unit')
            branches = [first.branch1, first.branch2]
        else:
            branches = [first]
        widths = [_out_channels(b) for b in branches]
        plan = plan_pieces(widths, len(branches) == 2, len(units))
        self.first = nn.ModuleList(
            PieceSource(b, c) for b, c in zip(branches, plan.cuts))
        self.units = nn.ModuleList(
            PieceSource(_read_in_order(u.branch2, order), c) for u, order, c in
            zip(units, plan.read_order, plan.cuts[len(branches):]))
        self.reads = plan.reads
        self.out_reads = plan.out_reads
        self.out_order = plan.out_order

    def forward(self, x: Tensor) -> Tensor:
        pieces: List[Tensor] = []
        for source in self.first:
            pieces += source(x)
        for unit, reads in zip(self.units, self.reads):
            pieces += unit(_cat([pieces[i] for i in reads]))
        return _cat([pieces[i] for i in self.out_reads])


def _out_channels(branch: nn.Sequential) -> int:
    return [m for m in branch if isinstance(m, nn.Conv2d)][-1].out_channels


def _cat(maps: List[Tensor]) -> Tensor:
    return maps[0] if len(maps) == 1 else torch.cat(maps, dim=1)
