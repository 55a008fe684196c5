"""Train and evaluate segmentation models on SynthCity.

    python -m fastadv.training segmentation --arch fcn8s-compact --out runs/fcn8s
    python -m fastadv.training evaluate --weights fcn8s-synthcity --scenes 200

Training draws random crops from a fixed set of training scenes rendered at full resolution
(cached as a safetensors file, so renders happen once), with cross-entropy weighted by inverse
class frequency to the power ``--class-weight-power``, AdamW and a cosine learning-rate decay.
Every step's batch is a function of (seed, step), and ``--out``/checkpoint.safetensors (see
fastadv.training.checkpoint) is written every ``--checkpoint-every`` steps, so the same command
run again continues exactly where a run stopped. On a GPU it uses automatic mixed precision.
docs/weights.md has the commands that made the shipped weights.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from fastadv._outputs import logits_of
from fastadv.data.synthcity import IGNORE_INDEX, PERSON, SynthCity
from fastadv.metrics import confusion_matrix, mean_iou, per_class_iou
from fastadv.models import SEGMENTATION, load
from fastadv.models.weights import architectures, create, save_weights
from fastadv.training import checkpoint

# The arguments that define a run: a resumed run must have the checkpoint's (--steps may change).
SETTINGS = ("arch", "batch", "crop", "lr", "warmup", "weight_decay", "class_weight_power",
            "scenes", "size", "data_seed", "seed")  # fmt: skip


def scene_cache(path: Path, scenes: int, size, seed: int):
    """Training scenes ``[0, scenes)`` as uint8 tensors, rendered once and cached at ``path``."""
    from safetensors.torch import load_file, save_file

    if path.is_file():
        cached = load_file(str(path))
        if cached["images"].shape[0] == scenes and tuple(cached["labels"].shape[1:]) == size:
            return cached["images"], cached["labels"]
    images, labels = SynthCity("train", scenes, size, seed).tensors(progress=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"images": images, "labels": labels}, str(path))
    return images, labels


def class_weights(labels: torch.Tensor, num_classes: int, power: float) -> torch.Tensor:
    """``w_c ∝ f_c^(−power)`` for pixel frequencies ``f_c``, scaled to mean 1 over present classes.

    power = 0 is plain cross-entropy; 0.5 lifts rare classes (pole, person) a good deal.
    """
    counts = torch.bincount(labels.reshape(-1).long(), minlength=256)[:num_classes].double()
    present = counts > 0
    weights = torch.zeros(num_classes, dtype=torch.float64)
    weights[present] = (counts[present] / counts.sum()) ** -power
    return (weights / weights[present].mean()).float()


def sample_batch(images, labels, batch: int, crop, step: int, seed: int):
    """Random crops (and horizontal flips) of random cached scenes; a pure function of ``step``."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    n, _, h, w = images.shape
    ch, cw = crop
    index = torch.randint(n, (batch,), generator=g)
    ys = torch.randint(h - ch + 1, (batch,), generator=g)
    xs = torch.randint(w - cw + 1, (batch,), generator=g)
    flips = torch.rand(batch, generator=g) < 0.5
    boxes = list(zip(index, ys, xs, strict=True))
    x = torch.stack([images[i, :, y : y + ch, x0 : x0 + cw] for i, y, x0 in boxes])
    y = torch.stack([labels[i, y : y + ch, x0 : x0 + cw] for i, y, x0 in boxes])
    x, y = x.float() / 255, y.long()
    x[flips], y[flips] = x[flips].flip(-1), y[flips].flip(-1)
    return x, y


def learning_rate(step: int, total: int, base: float, warmup: int) -> float:
    """Linear warm-up to ``base`` over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if step < warmup:
        return base * (step + 1) / warmup
    return 0.5 * base * (1 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1)))


@torch.no_grad()
def evaluate(model, dataset, batch: int = 4, device="cpu", progress: bool = True) -> torch.Tensor:
    """Confusion matrix (19 trainIds) of ``model``'s argmax predictions over ``dataset``."""
    was_training = model.training
    model.eval()
    conf = torch.zeros(19, 19, dtype=torch.int64)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch)
    for x, y in tqdm(loader, desc="evaluate", disable=not progress, leave=False):
        pred = logits_of(model(x.to(device))).argmax(1)
        conf += confusion_matrix(pred.cpu(), y, 19, IGNORE_INDEX)
    model.train(was_training)
    return conf


def summary(conf: torch.Tensor) -> dict:
    """mIoU over the classes present, person IoU and every class's IoU, rounded for logs."""
    per_class = per_class_iou(conf)
    return {
        "miou": round(mean_iou(conf), 4),
        "person_iou": round(float(per_class[PERSON]), 4),
        "iou": {c: round(float(v), 4) for c, v in enumerate(per_class) if not math.isnan(v)},
    }


def train(args) -> dict | None:
    """Runs (or resumes) one training; returns the final val summary (None when stopped by
    --stop-after)."""
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    out = Path(args.out)
    settings = {k: getattr(args, k) for k in SETTINGS}
    path = out / "checkpoint.safetensors"
    saved = checkpoint.load(path, settings)
    out.mkdir(parents=True, exist_ok=True)
    size = tuple(args.size)
    images, labels = scene_cache(Path(args.cache), args.scenes, size, args.data_seed)
    weight = class_weights(labels, 19, args.class_weight_power).to(device)

    torch.manual_seed(args.seed)
    model = create(args.arch).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    val = SynthCity("val", args.val_scenes, size, args.data_seed)
    # last before the loop, so that the random-number state it restores is the loop's
    start = checkpoint.restore(saved, model, optimizer, reseed=args.reseed_on_resume)
    if saved and saved.extra.get("scaler"):
        scaler.load_state_dict(saved.extra["scaler"])
    stop = min(args.steps, args.stop_after or args.steps)
    log = (out / "log.jsonl").open("a")
    bar = tqdm(range(start, stop), initial=start, total=args.steps, desc=args.arch)
    started = time.time()
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args.steps, args.lr, args.warmup)
        x, y = sample_batch(images, labels, args.batch, args.crop, step, args.seed)
        with torch.autocast(device.type, enabled=amp):
            logits = logits_of(model(x.to(device)))
            loss = F.cross_entropy(logits.float(), y.to(device), weight, ignore_index=IGNORE_INDEX)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        bar.set_postfix(loss=f"{loss.item():.3f}")
        done = step + 1
        # evaluation draws from torch's random numbers (its DataLoader's seed): before the
        # checkpoint, so that a resumed run's stream is the uninterrupted run's
        if done % args.eval_every == 0 or done == args.steps:
            record = {
                "step": done,
                "loss": round(loss.item(), 4),
                "seconds": round(time.time() - started),
            }
            record.update(summary(evaluate(model, val, device=device)))
            log.write(json.dumps(record) + "\n")
            log.flush()
            bar.write(json.dumps(record))
        if done % args.checkpoint_every == 0 or done in (stop, args.steps):
            extra = {"scaler": scaler.state_dict()}
            checkpoint.save(path, model, optimizer, done, settings, extra)
    if stop < args.steps:
        print(f"stopped after the checkpoint at step {stop}; the same command goes on")
        return None
    result = summary(evaluate(model, val, device=device))
    save_weights(
        model,
        out / "model.safetensors",
        args.arch,
        val=result,
        command=" ".join(["python -m fastadv.training", *sys.argv[1:]]),
    )
    return result


def run_evaluation(args) -> dict:
    """Clean mIoU and person IoU of ``--weights`` on the first ``--scenes`` val scenes."""
    torch.set_num_threads(args.threads)
    model = load(args.weights, args.device)
    dataset = SynthCity(args.split, args.scenes, tuple(args.size), args.data_seed)
    result = summary(evaluate(model, dataset, args.batch, args.device))
    print(json.dumps(result))
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`python -m fastadv.training segmentation`'s options."""
    parser.add_argument("--arch", choices=architectures(SEGMENTATION), default="fcn8s-compact")
    parser.add_argument("--out", required=True, help="run directory: checkpoint, log, model")
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, nargs=2, default=(128, 256), metavar=("H", "W"))
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--class-weight-power", type=float, default=0.25)
    parser.add_argument("--scenes", type=int, default=2000, help="cached training scenes")
    parser.add_argument("--cache", default="/tmp/synthcity_train_2000_256x512.safetensors")
    parser.add_argument("--val-scenes", type=int, default=32, help="val scenes for progress")
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--checkpoint-every", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0, help="initialisation and batch sampling")
    checkpoint.add_arguments(parser, "step")
    _data_arguments(parser)
    parser.set_defaults(train=train)


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """`python -m fastadv.training evaluate`'s options."""
    parser.add_argument("--weights", default="fcn8s-synthcity", help="shipped name or file")
    parser.add_argument("--split", default="val")
    parser.add_argument("--scenes", type=int, default=200)
    parser.add_argument("--batch", type=int, default=4)
    _data_arguments(parser)
    parser.set_defaults(train=run_evaluation)


def _data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, nargs=2, default=(256, 512), metavar=("H", "W"))
    parser.add_argument("--data-seed", type=int, default=0, help="SynthCity's seed")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
