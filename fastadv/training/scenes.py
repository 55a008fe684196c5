"""Trains the default scene classifier (SceneNet) on SynthScenes; resumable.

    python -m fastadv.training scenes --out fastadv/weights/scene-cnn.safetensors

SceneNet classifies at a fixed working resolution (--size, its input_size) and resizes larger
images to it. Half the training images are rendered at that size, half at twice it and shrunk
by the model's own resize, so the network knows both what a native render and what a shrunk
photo look like. They are rendered once and cached as uint8 .npy files (never pickles) under
--cache. Every epoch ends with a checkpoint (fastadv.training.checkpoint) in --cache;
re-running the same command resumes from it.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from fastadv.data.scenes import CLASSES, SynthScenes
from fastadv.models.scene import SceneNet, shorter_side_to
from fastadv.models.weights import save_weights
from fastadv.training import checkpoint

# The arguments that define a run: a resumed run must have the checkpoint's (--epochs may change).
SETTINGS = ("train_images", "size", "width", "batch", "lr", "label_smoothing", "seed")


def cached(split: str, length: int, size: int, seed: int, cache: Path, *, scales=(1,)):
    """(uint8 images [N, 3, size, size], int64 labels [N]) of SynthScenes, rendered once: image
    i at scales[(i // 12) % len(scales)] times `size`, then shrunk to `size` as SceneNet does.
    (Not i % len(scales): labels cycle with i, so the scale would give the label away.)"""
    tag = "x".join(map(str, scales))
    path = cache / f"synthscenes-{split}-{length}-{size}-{seed}-{tag}.npy"
    if not path.exists():
        renders = [SynthScenes(split, length, scale * size, seed) for scale in scales]
        images = np.empty((length, 3, size, size), dtype=np.uint8)
        for i in tqdm(range(length), desc=f"render {split}", leave=False):
            scale = (i // len(CLASSES)) % len(scales)
            image = shorter_side_to(renders[scale][i][0][None], size)[0]
            images[i] = (image.clamp(0, 1) * 255).round().byte().numpy()
        cache.mkdir(parents=True, exist_ok=True)
        np.save(path, images)
    images = torch.from_numpy(np.load(path, allow_pickle=False))
    return images, torch.arange(length) % len(CLASSES)


def accuracy(model, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy on uint8 images."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(images), 200):
            x = images[i : i + 200].float() / 255
            correct += (model(x).argmax(1) == labels[i : i + 200]).sum().item()
    return correct / len(images)


def lr_at(step: int, total: int, peak: float) -> float:
    """Linear warm-up over the first 5 % of steps, then cosine decay to zero."""
    warm = max(1, total // 20)
    if step < warm:
        return peak * (step + 1) / warm
    return 0.5 * peak * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


def train_epoch(model, opt, images, labels, epoch, args, steps_per_epoch) -> float:
    model.train()
    gen = torch.Generator().manual_seed(args.seed * 1000 + epoch)  # same order when resumed
    order = torch.randperm(len(images), generator=gen)
    total, seen = 0.0, 0
    bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{args.epochs}", leave=False)
    for b in bar:
        idx = order[b * args.batch : (b + 1) * args.batch]
        x = images[idx].float() / 255
        for group in opt.param_groups:
            group["lr"] = lr_at(epoch * steps_per_epoch + b, args.epochs * steps_per_epoch, args.lr)
        loss = F.cross_entropy(model(x), labels[idx], label_smoothing=args.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total, seen = total + loss.item() * len(idx), seen + len(idx)
        bar.set_postfix(loss=f"{total / seen:.3f}")
    return total / seen


def add_arguments(p: argparse.ArgumentParser) -> None:
    """`python -m fastadv.training scenes`'s options."""
    p.add_argument("--out", type=Path, default=Path("fastadv/weights/scene-cnn.safetensors"))
    p.add_argument("--cache", type=Path, default=Path("/tmp/fastadv-cache"))
    p.add_argument("--train-images", type=int, default=9600)
    p.add_argument("--val-images", type=int, default=600)
    p.add_argument("--size", type=int, default=128, help="rendered size = the model's input_size")
    p.add_argument("--width", type=int, default=16, help="SceneNet's first-layer channels")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    checkpoint.add_arguments(p, "epoch")
    p.set_defaults(train=train)


def train(args: argparse.Namespace) -> None:
    path = args.cache / f"{args.out.stem}.ckpt.safetensors"
    settings = {k: getattr(args, k) for k in SETTINGS}
    saved = checkpoint.load(path, settings)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    train_x, train_y = cached("train", args.train_images, args.size, args.seed, args.cache,
                              scales=(1, 2))  # fmt: skip
    val_x, val_y = cached("val", args.val_images, args.size, args.seed, args.cache)
    val2_x, _ = cached("val", args.val_images, args.size, args.seed, args.cache, scales=(2,))
    model = SceneNet(len(CLASSES), args.width, input_size=args.size)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True,
                          weight_decay=5e-4)  # fmt: skip
    done = checkpoint.restore(saved, model, opt, reseed=args.reseed_on_resume)
    steps_per_epoch = len(train_x) // args.batch
    stop = min(args.epochs, args.stop_after or args.epochs)
    for epoch in range(done, stop):
        loss = train_epoch(model, opt, train_x, train_y, epoch, args, steps_per_epoch)
        checkpoint.save(path, model, opt, epoch + 1, settings)
        acc = accuracy(model, val_x, val_y)
        print(f"epoch {epoch + 1}: loss {loss:.4f}, val top-1 {acc:.4f} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)  # fmt: skip
    if stop < args.epochs:
        print(f"stopped after the checkpoint at epoch {stop}; the same command goes on")
        return
    save_weights(model.eval(), args.out, "scenenet", CLASSES)
    print(f"wrote {args.out}; val top-1 at {args.size} px: {accuracy(model, val_x, val_y):.4f}, "
          f"rendered at {2 * args.size} px: {accuracy(model, val2_x, val_y):.4f}; "
          f"{time.perf_counter() - start:.0f} s this run")  # fmt: skip
