"""An exploratory recipe sweep for the ``tiny`` preset (results: docs/science.md).

One run = one recipe on one screen (a `make-demo` screen, packed): the whole image cache is
held in (GPU) memory and a small backbone is trained supervised on the labelled training
wells, outside the engine's trainer, so that many recipes fit in one device call:

- backbones: ``cnn5``, ``cnn7``, ``cnn5s2`` (stride-2 first conv) or the engine's Xception as
  ``xc_<stride>_<kernel>_<middle>`` (first-conv stride and kernel, middle blocks), all scaled
  by ``--width``; a softmax or ArcFace head (``--s`` 0 = the automatic scale);
- Adam with cosine (or constant) learning rate, the screen's per-site normalisation with
  +-10 % jitter, flips and transposes, one random site per well (``--both``: both sites);
- controls capped at the median treatment count per epoch (``--balctrl``);
- optionally (``--mt`` > 0) an EMA teacher (``--ema``) and a squared-error consistency loss
  between student and teacher probabilities, also on the unlabelled (test) wells.

At half and at the end of training, the model (and the teacher) is evaluated with 2 sites x
8-fold test-time augmentation over the treatment classes, on the validation experiments and
on the unlabelled test experiments (truth from ``answers/test_answers.csv``): raw accuracy
(argmax) and plate-balanced accuracy (each plate assigned one-to-one to the best of the
screen's siRNA groups). Prints one JSON line: tag, data, args, params, time and hist (per
evaluation: ep, val, test [, t_val, t_test], each [raw, balanced]).

    python benchmarks/bench_recipe_sweep.py SCREEN [--arch cnn5] [--head softmax]
        [--epochs 30] [--mt 0] [--tag NAME] [--device cuda] ...

benchmarks/gpu_sweep.sh runs a list of recipes on the device machine.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import nn

from deepnoise_engine.model.registry import DeepNoiseNet
from deepnoise_engine.model.xception import XceptionBackbone
from deepnoise_engine.train import config as cfgmod
from deepnoise_engine.train.data import ScreenData, build_screen_data, open_data

PREDICT_CHUNK = 512  # wells per evaluation batch
# channel plans of the plain CNNs ("M" = 2x2 max pool); cnn5s2 starts with a stride-2 conv
CNN_PLANS: dict[str, list[int | str]] = {
    "cnn5": [32, 32, "M", 64, "M", 128, "M", 256],
    "cnn7": [32, 32, "M", 64, 64, "M", 128, 128, "M", 256],
    "cnn5s2": [64, "M", 128, "M", 256],
}
STRIDED_STEM = 32  # cnn5s2's first (stride-2) conv


@dataclass
class SweepData:
    """A screen held in memory, with the well index sets a run needs.

    ``images`` (sites, C, H, W) and the per-site ``mean``/``std`` are on the device;
    ``labels`` (class index, -1 unlabelled) and ``test_labels`` (truth of the test wells,
    -1 elsewhere) are per well; ``train``/``val``/``test``/``unlabelled`` are well indices
    (val and test: treatment wells only); ``treat`` the treatment class indices; ``groups``
    the distinct sets of treatment classes found on one plate.
    """

    screen: ScreenData
    images: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    labels: np.ndarray
    test_labels: np.ndarray
    plates: np.ndarray
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    unlabelled: np.ndarray
    treat: np.ndarray
    groups: list[np.ndarray]
    num_classes: int
    channels: int
    device: torch.device


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (the JSON line echoes it as ``args``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="a packed screen folder")
    parser.add_argument("--arch", default="cnn5",
                        help="cnn5 | cnn7 | cnn5s2 | xc_<stride>_<kernel>_<middle>")
    parser.add_argument("--head", default="softmax", help="softmax | arcface")
    parser.add_argument("--s", type=float, default=0, help="ArcFace scale (0 = automatic)")
    parser.add_argument("--m", type=float, default=0.1, help="ArcFace margin")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--bs", type=int, default=32, help="batch size (wells)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--wd", type=float, default=2e-4, help="Adam weight decay")
    parser.add_argument("--width", type=float, default=1.0, help="channel width multiplier")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sched", default="cos", help="cos (cosine decay) | anything: constant")
    parser.add_argument("--balctrl", type=int, default=1,
                        help="1: cap each control at the median treatment count per epoch")
    parser.add_argument("--mt", type=float, default=0.0,
                        help="consistency weight on unlabelled (0=off)")
    parser.add_argument("--ema", type=float, default=0.99, help="teacher EMA decay")
    parser.add_argument("--both", type=int, default=0, help="1: train on both sites per well")
    parser.add_argument("--tag", default="", help="a name echoed in the JSON line")
    parser.add_argument("--device", default="cuda", help="cuda | cpu (cpu without CUDA)")
    return parser.parse_args(argv)


def plate_groups(wells: pd.DataFrame, keep: np.ndarray) -> list[np.ndarray]:
    """The distinct sets of class labels on one plate among the ``keep`` wells, sorted."""
    seen: dict[frozenset[int], None] = {}
    for _plate, plate_wells in wells[keep].groupby("plate"):
        seen.setdefault(frozenset(int(label) for label in plate_wells.label), None)
    return [np.array(sorted(group)) for group in seen]


def load_data(data: str, device: torch.device) -> SweepData:
    """Open the screen at ``data`` with the ``tiny`` preset and load every site."""
    cfg = cfgmod.resolve("tiny", None, [])
    screen, cache = open_data(data)
    screen_data = build_screen_data(screen, cache, cfg)
    sites = [np.asarray(cache.read(row)) for row in range(len(cache.sites))]
    images = torch.from_numpy(np.stack(sites)).to(device)
    answers = pd.read_csv(f"{data}/answers/test_answers.csv")
    class_index = {name: index for index, name in enumerate(screen_data.classes)}
    truth = dict(zip(answers.id_code, [class_index[str(sirna)] for sirna in answers.sirna],
                     strict=True))
    wells = screen_data.wells
    labels = wells.label.to_numpy()
    test_labels = np.array([truth.get(id_code, -1) for id_code in wells.id_code])
    control = wells.well_type.str.lower().ne("treatment").to_numpy()
    val = screen_data.select("val")
    labelled_treatment = (labels >= 0) & ~control
    return SweepData(
        screen=screen_data,
        images=images,
        mean=torch.from_numpy(screen_data.mean).to(device),
        std=torch.from_numpy(screen_data.std).to(device),
        labels=labels,
        test_labels=test_labels,
        plates=wells.plate.to_numpy(),
        train=screen_data.select("train", labelled=True),
        val=val[~control[val]],
        test=np.flatnonzero((test_labels >= 0) & ~control),
        unlabelled=screen_data.select("train", labelled=False),
        treat=np.array(sorted({int(label) for label in labels[labelled_treatment]})),
        groups=plate_groups(wells, labelled_treatment),
        num_classes=len(screen_data.classes),
        channels=images.shape[1],
        device=device,
    )


def conv_block(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    """3x3 conv (no bias) -> batch norm -> ReLU."""
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True)]


def scaled(channels: int, width: float) -> int:
    """A channel count scaled by the width multiplier, at least 8."""
    return max(8, round(channels * width))


def plain_cnn(arch: str, in_chans: int, width: float) -> nn.Sequential:
    """``cnn5``/``cnn7``/``cnn5s2`` as a Sequential with ``num_features`` set."""
    layers: list[nn.Module] = []
    cin = in_chans
    if arch == "cnn5s2":
        cin = scaled(STRIDED_STEM, width)
        layers += conv_block(in_chans, cin, stride=2)
    for step in CNN_PLANS[arch]:
        if step == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            cout = scaled(int(step), width)
            layers += conv_block(cin, cout)
            cin = cout
    backbone = nn.Sequential(*layers)
    backbone.num_features = cin
    return backbone


def build_backbone(arch: str, in_chans: int, width: float) -> nn.Module:
    """The backbone named by ``--arch`` (exits on an unknown name)."""
    if arch in CNN_PLANS:
        return plain_cnn(arch, in_chans, width)
    if arch.startswith("xc"):  # xc_<stride>_<kernel>_<middle>
        _, stride, kernel, middle = arch.split("_")
        return XceptionBackbone(in_chans, width=width, middle_blocks=int(middle),
                                first_kernel=int(kernel), first_stride=int(stride))
    raise SystemExit(arch)


def build_model(args: argparse.Namespace, data: SweepData) -> DeepNoiseNet:
    """Backbone + the engine's pooled head (ArcFace scale: ``--s`` or sqrt(2) ln(K - 1))."""
    scale = args.s if args.s > 0 else float(np.sqrt(2) * np.log(data.num_classes - 1))
    backbone = build_backbone(args.arch, data.channels, args.width)
    model = DeepNoiseNet(backbone, spatial=True, num_classes=data.num_classes, head=args.head,
                         arcface_s=scale, arcface_m=args.m, embedding_dim=None,
                         spec={"name": args.arch, "kwargs": {"in_chans": data.channels}})
    return model.to(data.device)


def make_teacher(model: nn.Module) -> nn.Module:
    """A frozen copy of ``model``, updated by EMA only."""
    teacher = copy.deepcopy(model)
    for param in teacher.parameters():
        param.requires_grad_(False)
    return teacher


def random_flags(count: int, device: torch.device) -> torch.Tensor:
    """(count, 1, 1, 1) booleans, each true with probability 1/2."""
    return (torch.rand(count, device=device) < 0.5)[:, None, None, None]


def batch_images(data: SweepData, rows: np.ndarray, augment: bool) -> torch.Tensor:
    """Normalised site images; ``augment``: +-10 % jittered mean/std, flips, transpose."""
    rows_t = torch.as_tensor(rows, device=data.device)
    count = len(rows)
    images = data.images[rows_t].float()
    mean, std = data.mean[rows_t], data.std[rows_t]
    if augment:
        jitter = torch.rand(count, data.channels, device=data.device) * 2 - 1
        mean = mean * (1 + 0.1 * jitter)
        jitter = torch.rand(count, data.channels, device=data.device) * 2 - 1
        std = std * (1 + 0.1 * jitter)
    images = (images - mean[..., None, None]) / std[..., None, None]
    if augment:
        images = torch.where(random_flags(count, data.device), images.flip(3), images)
        images = torch.where(random_flags(count, data.device), images.flip(2), images)
        images = torch.where(random_flags(count, data.device), images.transpose(2, 3), images)
    return images


def site_rows(data: SweepData, wells: np.ndarray, rng: np.random.Generator,
              site: int | None = None) -> np.ndarray:
    """One cache row per well: a random site, or ``site`` (clipped to the well's last)."""
    rows = []
    for well in wells:
        sites = data.screen.well_sites[well]
        pick = rng.integers(len(sites)) if site is None else min(site, len(sites) - 1)
        rows.append(sites[pick])
    return np.array(rows)


def predict(net: nn.Module, data: SweepData, wells: np.ndarray,
            rng: np.random.Generator) -> np.ndarray:
    """Mean logits over 2 sites x 4 rotations x 2 flips, (wells, K); leaves ``net`` in train."""
    net.eval()
    out = np.zeros((len(wells), data.num_classes))
    with torch.no_grad():
        for start in range(0, len(wells), PREDICT_CHUNK):
            chunk = wells[start:start + PREDICT_CHUNK]
            total = 0
            for site in range(2):
                images = batch_images(data, site_rows(data, chunk, rng, site), False)
                for quarter_turns in range(4):
                    for flip in (False, True):
                        view = torch.rot90(images, quarter_turns, (2, 3))
                        view = view.flip(3) if flip else view
                        total = total + net(view).float()
            out[start:start + PREDICT_CHUNK] = (total / 16).cpu().numpy()
    net.train()
    return out


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax."""
    shifted = logits - logits.max(1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(1, keepdims=True))


def raw_predictions(logp: np.ndarray, treat: np.ndarray) -> np.ndarray:
    """Argmax over the treatment classes."""
    return treat[logp[:, treat].argmax(1)]


def balanced_predictions(logp: np.ndarray, data: SweepData, wells: np.ndarray) -> np.ndarray:
    """Per plate, the one-to-one assignment to the likeliest siRNA group's classes."""
    pred = raw_predictions(logp, data.treat).copy()
    plates = data.plates[wells]
    for plate in np.unique(plates):
        idx = np.flatnonzero(plates == plate)
        best = None
        for group in data.groups:
            cost = -logp[np.ix_(idx, group)]
            rows, cols = linear_sum_assignment(cost)
            value = cost[rows, cols].sum()
            if best is None or value < best[0]:
                best = (value, rows, group[cols])
        pred[idx[best[1]]] = best[2]
    return pred


def evaluate(net: nn.Module, data: SweepData, wells: np.ndarray, truth: np.ndarray,
             rng: np.random.Generator) -> tuple[float, float]:
    """(raw, plate-balanced) treatment accuracy of ``net`` on ``wells``."""
    logp = log_softmax(predict(net, data, wells, rng))
    raw = (raw_predictions(logp, data.treat) == truth).mean()
    balanced = (balanced_predictions(logp, data, wells) == truth).mean()
    return float(raw), float(balanced)


def epoch_items(args: argparse.Namespace, data: SweepData,
                rng: np.random.Generator) -> np.ndarray:
    """This epoch's training wells: all, or (``--balctrl``) each control class subsampled
    to the median treatment-class count."""
    if not args.balctrl:
        return data.train
    labels = data.labels[data.train]
    is_control = ~np.isin(labels, data.treat)
    counts = np.bincount(labels[~is_control])
    cap = max(1, int(np.median(counts[counts > 0])))
    keep = ~is_control
    for label in np.unique(labels[is_control]):
        idx = np.flatnonzero(labels == label)
        keep[rng.choice(idx, min(cap, len(idx)), replace=False)] = True
    return data.train[keep]


def learning_rate(args: argparse.Namespace, step: int, total: int) -> float:
    """Cosine decay from ``--lr`` to 0 over ``total`` steps, or constant."""
    if args.sched == "cos":
        return args.lr * 0.5 * (1 + np.cos(np.pi * step / total))
    return args.lr


def consistency_loss(args: argparse.Namespace, data: SweepData, model: nn.Module,
                     teacher: nn.Module, images: torch.Tensor, wells: np.ndarray, epoch: int,
                     rng: np.random.Generator) -> torch.Tensor:
    """Weighted squared distance between student and teacher probabilities on the batch
    plus as many unlabelled wells (fresh views for the teacher), ramped up over 5 epochs."""
    unlabelled = rng.choice(data.unlabelled, args.bs)
    student_x = torch.cat([images[:len(wells)],
                           batch_images(data, site_rows(data, unlabelled, rng), True)])
    teacher_x = torch.cat([batch_images(data, site_rows(data, wells, rng), True),
                           batch_images(data, site_rows(data, unlabelled, rng), True)])
    with torch.no_grad():
        teacher_p = F.softmax(teacher(teacher_x).float(), 1)
    student_p = F.softmax(model(student_x).float(), 1)
    ramp = float(np.exp(-5 * (1 - min(epoch / 5, 1)) ** 2))
    return args.mt * ramp * ((student_p - teacher_p) ** 2).sum(1).mean()


def ema_update(teacher: nn.Module, model: nn.Module, alpha: float) -> None:
    """teacher = alpha teacher + (1 - alpha) model; integer buffers are copied."""
    with torch.no_grad():
        for t_param, s_param in zip(teacher.parameters(), model.parameters(), strict=True):
            t_param.mul_(alpha).add_(s_param, alpha=1 - alpha)
        for t_buf, s_buf in zip(teacher.buffers(), model.buffers(), strict=True):
            if t_buf.dtype.is_floating_point:
                t_buf.mul_(alpha).add_(s_buf, alpha=1 - alpha)
            else:
                t_buf.copy_(s_buf)


def train_batch(args: argparse.Namespace, data: SweepData, model: nn.Module,
                teacher: nn.Module | None, wells: np.ndarray, epoch: int,
                rng: np.random.Generator) -> torch.Tensor:
    """The loss of one batch of wells (cross-entropy [+ consistency])."""
    y = torch.as_tensor(data.labels[wells], device=data.device)
    if args.both:
        images = torch.cat([batch_images(data, site_rows(data, wells, rng, 0), True),
                            batch_images(data, site_rows(data, wells, rng, 1), True)])
        y = torch.cat([y, y])
    else:
        images = batch_images(data, site_rows(data, wells, rng), True)
    logits = model(images, y) if args.head == "arcface" else model(images)
    loss = F.cross_entropy(logits, y)
    if teacher is not None and len(data.unlabelled):
        loss = loss + consistency_loss(args, data, model, teacher, images, wells, epoch, rng)
    return loss


def evaluation(data: SweepData, model: nn.Module, teacher: nn.Module | None, epoch: int,
               rng: np.random.Generator) -> dict[str, object]:
    """One ``hist`` entry: val/test (and teacher t_val/t_test) (raw, balanced) accuracy."""
    entry: dict[str, object] = {
        "ep": epoch,
        "val": evaluate(model, data, data.val, data.labels[data.val], rng),
        "test": evaluate(model, data, data.test, data.test_labels[data.test], rng),
    }
    if teacher is not None:
        entry["t_val"] = evaluate(teacher, data, data.val, data.labels[data.val], rng)
        entry["t_test"] = evaluate(teacher, data, data.test, data.test_labels[data.test], rng)
    return entry


def train(args: argparse.Namespace, data: SweepData, model: nn.Module,
          teacher: nn.Module | None) -> tuple[list[dict[str, object]], float]:
    """Train for ``--epochs``, evaluating at half and at the end: (hist, seconds)."""
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.wd)
    rng = np.random.default_rng(args.seed)
    steps = max(1, len(epoch_items(args, data, rng)) // args.bs)
    total = steps * args.epochs
    step = 0
    start = time.time()
    hist = []
    for epoch in range(args.epochs):
        perm = rng.permutation(epoch_items(args, data, rng))
        for batch in range(steps):
            wells = perm[batch * args.bs:(batch + 1) * args.bs]
            lr = learning_rate(args, step, total)
            step += 1
            for group in opt.param_groups:
                group["lr"] = lr
            loss = train_batch(args, data, model, teacher, wells, epoch, rng)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if teacher is not None:
                ema_update(teacher, model, min(1 - 1 / (step + 1), args.ema))
        if (epoch + 1) in (args.epochs // 2, args.epochs):
            hist.append(evaluation(data, model, teacher, epoch + 1, rng))
    return hist, time.time() - start


def main(argv: list[str] | None = None) -> None:
    """Run one recipe and print its JSON line."""
    args = parse_args(argv)
    device = torch.device(args.device if torch.cuda.is_available() else "cpu")
    torch.manual_seed(args.seed)
    data = load_data(args.data, device)
    model = build_model(args, data)
    params = sum(param.numel() for param in model.parameters())
    teacher = make_teacher(model) if args.mt > 0 else None
    hist, seconds = train(args, data, model, teacher)
    result = {"tag": args.tag, "data": args.data, "args": vars(args), "params": params,
              "time": round(seconds, 1), "hist": hist}
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
