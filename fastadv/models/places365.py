"""Sweere et al.'s classifier, the Places365 ResNet-50, converted to a safetensors file.

Its authors (github.com/CSAILVision/places365) publish `resnet50_places365.pth.tar`, a pickled
dict: 'state_dict' (torchvision's ResNet-50 names behind DataParallel's 'module.' prefix; saved
by PyTorch 0.2, so without BatchNorm's num_batches_tracked), 'epoch', 'arch', 'best_prec1'.
`convert` reads it with torch.load(weights_only=True), so nothing but tensors and plain
containers is ever unpickled, and writes a weight file that `fastadv.models.load` rebuilds with
the 365 class names and the authors' evaluation preprocessing (their run_placesCNN_basic.py:
shorter side 256, centre 224 crop, ImageNet normalisation), folded into the model:

    python -m fastadv.models.places365 resnet50_places365.pth.tar places.safetensors
    model = fastadv.models.load("places.safetensors")

The class names come from places365_categories.txt beside this module (the authors'
categories_places365.txt; its header names the source), or from `--categories FILE`.
"""

from __future__ import annotations

import argparse
import pickle
import re
import sys
from pathlib import Path

import torch

from fastadv.models.info import ModelError
from fastadv.models.resnet import resnet50
from fastadv.models.weights import one_line, save_weights, state_mismatch

RESIZE, CROP = 256, 224  # the authors' evaluation transform
CATEGORIES = Path(__file__).with_name("places365_categories.txt")
SOURCE = "CSAILVision/places365 resnet50_places365.pth.tar"
_LETTER_FOLDER = re.compile(r"^/[a-z]/")  # "/a/airfield" -> "airfield"


def read_categories(path=CATEGORIES) -> list[str]:
    """Class names, one a line in class order, in the authors' format ("/a/airfield 0": the
    letter folder and the index dropped); lines starting with '#' are comments."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"categories file {path} does not exist")
    lines = path.read_text(encoding="utf-8").splitlines()
    entries = [line.split() for line in lines if line.strip() and not line.startswith("#")]
    for i, entry in enumerate(entries):
        if len(entry) > 1 and entry[1] != str(i):
            raise ModelError(f"categories file {path}: class {i} is numbered {entry[1]}")
    return [_LETTER_FOLDER.sub("", entry[0]) for entry in entries]


def convert(src, dst, categories=None, *, overwrite: bool = False) -> Path:
    """Write the Places365 ResNet-50 checkpoint `src` as the safetensors file `dst`, with the
    class names of `categories` (default: the shipped Places365 list). Returns `dst`.

    Raises ModelError (one line naming the argument) for a missing, unreadable or foreign
    checkpoint, a class list of another length, and an existing `dst` unless `overwrite`.
    """
    src, dst = Path(src), Path(dst)
    if dst.suffix != ".safetensors":
        raise ModelError(f"output {dst} must end in .safetensors")
    if dst.exists() and not overwrite:
        raise ModelError(f"output {dst} exists; give another path or overwrite it (--force)")
    names = read_categories(categories or CATEGORIES)
    checkpoint = _read_checkpoint(src)
    state = _state_dict(checkpoint, src)
    model = resnet50(num_classes=len(names), resize_size=RESIZE, crop_size=CROP)
    # PyTorch 0.2 had no num_batches_tracked; it only matters to training with momentum=None
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            state.setdefault(key, torch.zeros_like(value))
    mismatch = state_mismatch(model, state)
    if mismatch:
        raise ModelError(
            f"checkpoint {src} does not fit a ResNet-50 of {len(names)} classes: {mismatch}"
        )
    model.load_state_dict(state)
    records = {k: _plain(checkpoint[k]) for k in ("epoch", "best_prec1") if k in checkpoint}
    save_weights(model, dst, "resnet50", classes=names, source=SOURCE, **records)
    return dst


def _read_checkpoint(src: Path) -> dict:
    if not src.is_file():
        raise ModelError(f"checkpoint {src} does not exist")
    try:
        checkpoint = torch.load(src, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ModelError(
            f"checkpoint {src} holds more than tensors and plain values, so it is not loaded"
        ) from error
    except Exception as error:  # torch.load fails with many types on foreign or cut files
        raise ModelError(f"checkpoint {src} is not readable ({one_line(error)})") from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ModelError(f"checkpoint {src} has no 'state_dict'; not a Places365 checkpoint")
    return checkpoint


def _state_dict(checkpoint: dict, src: Path) -> dict:
    arch = checkpoint.get("arch", "resnet50")
    if arch != "resnet50":
        raise ModelError(f"checkpoint {src} holds a {arch}; the converter takes the ResNet-50")
    return {k.removeprefix("module."): v for k, v in checkpoint["state_dict"].items()}


def _plain(value):
    """A record as JSON can hold it (best_prec1 may be a one-element tensor)."""
    return value.item() if isinstance(value, torch.Tensor) else value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="resnet50_places365.pth.tar")
    parser.add_argument("out", type=Path, help="the .safetensors file to write")
    parser.add_argument(
        "--categories",
        type=Path,
        default=None,
        help="categories_places365.txt (default: the copy shipped with fastadv)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite OUT if it exists")


def run(args: argparse.Namespace) -> int:
    """Convert; one line on stdout, or one error line on stderr and exit status 2."""
    try:
        path = convert(args.checkpoint, args.out, args.categories, overwrite=args.force)
    except ModelError as error:
        print(f"fastadv: {error}", file=sys.stderr)
        return 2
    print(f"wrote {path}: the Places365 ResNet-50 and its class names (--model {path})")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fastadv.models.places365",
        description="Convert the Places365 ResNet-50 checkpoint to safetensors.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
