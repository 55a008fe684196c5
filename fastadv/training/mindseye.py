"""Trains Berntsen et al.'s networks stage by stage, as in the paper:

    python -m fastadv.training mindseye direct          # reduced AlexNet, 4 classes
    python -m fastadv.training mindseye direct-params   # the same + Euler-angle head
    python -m fastadv.training mindseye estimator       # image + class planes -> angles
    python -m fastadv.training mindseye projector       # class + angles -> image, alpha
    python -m fastadv.training mindseye comparator      # needs the estimator and projector

Adam, one CPU thread by default. A checkpoint (fastadv.training.checkpoint) is written after
every epoch to --checkpoints; rerunning the same command resumes from it. The final weights go
to --out as mindseye-<stage>.safetensors. Training images are rendered once and cached as
uint8 under --cache.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save
from tqdm import tqdm

from fastadv.data.rendered import NONE, RenderedObjects, render
from fastadv.models import load
from fastadv.models import mindseye as me
from fastadv.training import checkpoint

DEFAULTS = {  # stage: (epochs, training samples, Adam lr); sized for ~45 min on one CPU thread
    "direct": (6, 12000, 1e-3),
    "direct-params": (6, 24000, 1e-3),
    "estimator": (8, 12000, 3e-4),
    "projector": (15, 12000, 1e-3),
    "comparator": (5, 4000, 1e-3),
}
PARAM_WEIGHT = 10.0  # weight of the angle MSE beside the cross-entropy (direct-params)
# The arguments that define a run: a resumed run must have the checkpoint's (--epochs may change).
SETTINGS = ("stage", "train_size", "batch_size", "lr", "seed")


def train(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    epochs, size, lr = DEFAULTS[args.stage]
    args.epochs = args.epochs or epochs
    args.train_size = args.train_size or size
    args.lr = args.lr or lr
    saved = checkpoint.load(_checkpoint_path(args), _settings(args))
    start = time.time()
    net, data, step = STAGES[args.stage](args)
    if not _fit(net, data, step, saved, args):
        return
    path = me.weights_path(args.stage, args.out)
    checkpoint.atomic_write(path, save({k: v.contiguous() for k, v in net.state_dict().items()}))
    print(f"{args.stage}: wrote {path} after {time.time() - start:.0f} s")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """`python -m fastadv.training mindseye`'s options."""
    p.add_argument("stage", choices=list(DEFAULTS))
    p.add_argument("--epochs", type=int, help="default per stage (see DEFAULTS)")
    p.add_argument("--train-size", type=int, help="rendered training samples")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, help="default per stage")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=me.WEIGHTS, help="folder for the weights")
    p.add_argument("--checkpoints", type=Path, default=Path("/tmp/fastadv-mindseye/ckpt"))
    p.add_argument("--cache", type=Path, default=Path("/tmp/fastadv-mindseye/data"))
    checkpoint.add_arguments(p, "epoch")
    p.set_defaults(train=train)


# ---- stages: each returns (network, tensors to batch over, loss of a batch) -----------------


def _train_set(args) -> RenderedObjects:
    return RenderedObjects("train", args.train_size, seed=args.seed, cache=args.cache)


def _direct(args):
    ds = _train_set(args)
    net = me.DirectClassifier(params=args.stage == "direct-params")

    def step(x, y, angles):
        logits, est = net.forward_all(x)
        loss = F.cross_entropy(logits, y)
        if est is not None:  # angles of None samples are undefined: left out
            pos = y != NONE
            loss = loss + PARAM_WEIGHT * F.mse_loss(est[pos], angles[pos])
        return loss

    return net, (ds.images(), ds.labels, ds.angles), step


def _estimator(args):
    ds = _train_set(args)
    pos = ds.labels != NONE  # trained on the positives only, with their true class planes
    net = me.Estimator()

    def step(x, y, angles):
        return F.mse_loss(net.raw(x, y), angles)

    return net, (ds.images()[pos], ds.labels[pos], ds.angles[pos]), step


def _projector(args):
    ds = _train_set(args)
    pos = (ds.labels != NONE).nonzero().squeeze(1)
    classes, angles = ds.labels[pos], ds.angles[pos]
    # the clean renders (object on black, alpha): what Blender gave the paper's projector
    grey, alpha = zip(
        *(render(classes[s : s + 512], angles[s : s + 512]) for s in range(0, len(pos), 512)),
        strict=True,
    )
    net = me.Projector()

    def step(g, a, c, ang):
        pg, pa = net(c, ang)
        return F.mse_loss(pg * pa, g * a) + F.binary_cross_entropy(pa, a)

    return net, (torch.cat(grey), torch.cat(alpha), classes, angles), step


def _comparator(args):
    """Query images against the projections of all three classes, through the trained
    estimator and projector; balanced: every positive (the true class) and as many negatives
    (another class's projection, or any projection on a None image), drawn anew each epoch."""
    ds = _train_set(args)
    est = load("mindseye-estimator", weights_dir=args.out)
    proj = load("mindseye-projector", weights_dir=args.out)
    x = ds.images()
    queries, grey, alpha, same = [], [], [], []
    with torch.no_grad():
        for c in range(me.NUM_OBJECTS):
            for s in range(0, len(x), 256):
                xb, cb = x[s : s + 256], torch.full((len(x[s : s + 256]),), c)
                g, a = proj(cb, est(xb, cb))
                queries.append(torch.arange(s, s + len(xb)))
                grey.append(g.half())
                alpha.append(a.half())
                same.append(ds.labels[s : s + len(xb)] == c)
    queries, grey, alpha, same = map(torch.cat, (queries, grey, alpha, same))
    net = me.Comparator()

    def step(q, g, a, label):
        logits = net.similarity_logits(x[q], g.float(), a.float())
        w = me.patch_weights(a.float())
        bce = F.binary_cross_entropy_with_logits(
            logits, label.float()[:, None, None].expand_as(logits), reduction="none"
        )
        return ((bce * w).flatten(1).sum(1) / w.flatten(1).sum(1).clamp_min(1e-6)).mean()

    def balanced(generator):
        pos, neg = same.nonzero().squeeze(1), (~same).nonzero().squeeze(1)
        neg = neg[torch.randperm(len(neg), generator=generator)[: len(pos)]]
        return torch.cat([pos, neg])

    return net, (queries, grey, alpha, same.long(), balanced), step


STAGES = {
    "direct": _direct,
    "direct-params": _direct,
    "estimator": _estimator,
    "projector": _projector,
    "comparator": _comparator,
}


# ---- the loop, with resumable checkpoints ----------------------------------------------------


def _fit(net, data, step, saved, args) -> bool:
    """Trains net for args.epochs, from the checkpoint `saved` if there is one; False when
    --stop-after stopped it first."""
    sampler = data[-1] if callable(data[-1]) else None
    tensors = data[:-1] if sampler else data
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    first = checkpoint.restore(saved, net, opt, reseed=args.reseed_on_resume)
    gen = torch.Generator().manual_seed(args.seed)
    stop = min(args.epochs, args.stop_after or args.epochs)
    for epoch in range(stop):
        # the permutations are drawn for finished epochs too, so a resumed run is the same run
        order = sampler(gen) if sampler else torch.arange(len(tensors[0]))
        order = order[torch.randperm(len(order), generator=gen)]
        if epoch < first:
            continue
        net.train()
        bar = tqdm(order.split(args.batch_size), desc=f"{args.stage} {epoch + 1}/{args.epochs}")
        for i, idx in enumerate(bar):
            loss = step(*(t[idx] for t in tensors))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if i % 20 == 0:
                bar.set_postfix(loss=f"{loss.item():.4f}")
        checkpoint.save(_checkpoint_path(args), net, opt, epoch + 1, _settings(args))
    net.eval()
    if stop < args.epochs:
        print(f"stopped after the checkpoint at epoch {stop}; the same command goes on")
    return stop == args.epochs


def _checkpoint_path(args) -> Path:
    return args.checkpoints / f"{args.stage}-seed{args.seed}.safetensors"


def _settings(args) -> dict:
    return {k: getattr(args, k) for k in SETTINGS}
