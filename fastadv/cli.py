"""The `fastadv` command: it assembles the commands and the studies.

fastadv hide IMAGE... --classes person --eps 10 [--restrict after|during]
                        [--model NAME|FILE] --out DIR
fastadv protect IMAGE... [--condition top1|top5|top1-50] [--model NAME|FILE] --out DIR
fastadv experiment hide|robustness|protect|mindseye [...]    (options: fastadv experiment NAME -h)
fastadv demo [--out DIR]

A command declares its arguments in one function and does its work in another; a study is a
module of fastadv.experiments (see fastadv.experiments.study). A user's mistake, from argparse
or from the work (a UsageError), ends in `run` as one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from types import ModuleType

import torch

from fastadv import experiments
from fastadv.errors import UsageError, require_extra
from fastadv.experiments import demo, study
from fastadv.experiments.study import HelpFormatter


class Parser(argparse.ArgumentParser):
    """argparse with a bad argument reported as one line (a UsageError), not a usage block."""

    def error(self, message):
        raise UsageError(f"{message} (see {self.prog} -h)")


def main(argv=None) -> int:
    parser = Parser(
        prog="fastadv",
        description="Fast adversarial attacks and the papers' studies.",
        formatter_class=HelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _hide_arguments(
        _command(commands, "hide", "hide classes from a segmentation model in your images")
    )
    _protect_arguments(_command(commands, "protect", "protect your images from a scene classifier"))
    experiment = commands.add_parser("experiment", help="run a paper's study (resumable)")
    studies = experiment.add_subparsers(dest="study", required=True)
    for name in experiments.STUDIES:
        _add_study(studies, experiments.load_study(name))
    _demo_arguments(
        _command(commands, "demo", "reduced versions of the segmentation studies, with a report")
    )
    return run(parser, argv)


def run(parser: argparse.ArgumentParser, argv=None) -> int:
    """Parses argv and runs its command; a UsageError becomes one line and exit code 2."""
    try:
        args = parser.parse_args(argv)
        return args.run(args)
    except UsageError as error:
        print(f"fastadv: {error}", file=sys.stderr)
        return 2


def run_study(module: ModuleType, argv=None) -> int:
    """`fastadv experiment NAME argv` for a study module that is not in STUDIES."""
    parser = Parser(prog=f"fastadv experiment {module.NAME}")
    _study_arguments(parser, module)
    return run(parser, argv)


def _command(commands, name: str, text: str) -> Parser:
    return commands.add_parser(name, help=text, description=text, formatter_class=HelpFormatter)


def _add_study(studies, module: ModuleType) -> None:
    parser = studies.add_parser(
        module.NAME, help=module.HELP, description=module.__doc__, formatter_class=HelpFormatter
    )
    _study_arguments(parser, module)


def _study_arguments(parser: argparse.ArgumentParser, module: ModuleType) -> None:
    module.add_arguments(parser)
    parser.set_defaults(run=functools.partial(_experiment, module))


def _experiment(module: ModuleType, args: argparse.Namespace) -> int:
    """Runs the study; rank 0 prints its table, reading and files."""
    outcome = study.run(module, args)
    if outcome is not None:
        print(outcome.table)
        print(f"\n{outcome.text}\nwrote {', '.join(map(str, outcome.files))}")
    return 0


def _demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("fastadv-demo"), help="report folder")
    p.add_argument("--images", type=study.positive_int, default=4, help="SynthCity val images")
    p.set_defaults(run=_demo)


def _demo(args: argparse.Namespace) -> int:
    done = demo.run(args.out, args.images)
    if done is not None:
        files, minutes = done
        names = ", ".join(path.name for path in files)
        print(f"\nreport written to {args.out.resolve()}/ ({minutes:.1f} min): {names}")
    return 0


def _hide_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", type=Path)
    p.add_argument(
        "--classes", nargs="+", default=["person"], help="Cityscapes class names or trainIds"
    )
    p.add_argument("--eps", type=float, default=10, help="L-inf budget in pixel units (x / 255)")
    p.add_argument("--restrict", choices=["after", "during"], default=None)
    p.add_argument(
        "--model", default="fcn8s-synthcity", help="shipped weights name or .safetensors file"
    )
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--device", default=None)
    p.set_defaults(run=_hide)


def class_ids(names) -> list[int]:
    from fastadv.data import CLASS_NAMES

    ids = []
    for name in names:
        if str(name).isdigit():
            ids.append(int(name))
        elif name in CLASS_NAMES:
            ids.append(CLASS_NAMES.index(name))
        else:
            raise SystemExit(
                f"fastadv: unknown class {name!r}; choose from {', '.join(CLASS_NAMES)}"
            )
    return ids


def read_image(path: Path) -> torch.Tensor:
    """An RGB image file as [3, H, W] float in [0, 1]."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def free_path(path: Path, protected: set[Path]) -> Path:
    """`path`, or `path` with -1, -2, ... before the suffix: never an input nor an existing file."""
    candidate, n = path, 0
    while candidate.exists() or candidate.resolve() in protected:
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


def _hide(args) -> int:
    from PIL import Image

    from fastadv.attacks import hide_classes
    from fastadv.experiments.panels import hide_panel, to_uint8
    from fastadv.metrics import hidden_fraction
    from fastadv.models import load

    require_extra("studies")  # the panels; before the work
    device = study.device(args.device)
    classes = class_ids(args.classes)
    model = load(args.model, device=device)
    args.out.mkdir(parents=True, exist_ok=True)
    inputs = {p.resolve() for p in args.images}
    failed = 0
    print(f"{'image':40} {'hidden':>8} {'iterations':>10}  output")
    for path in args.images:
        try:
            x = read_image(path)[None].to(device)
        except (OSError, ValueError) as error:
            print(
                f"fastadv: skipping {path}: cannot read it as an image ({error})", file=sys.stderr
            )
            failed += 1
            continue
        result = hide_classes(model, x, classes, args.eps / 255, restrict=args.restrict)
        adv = (
            to_uint8(result.adv[0]).float().permute(2, 0, 1)[None].to(device) / 255
        )  # what the PNG holds
        with torch.no_grad():
            after = model(adv).argmax(1)
        hidden = hidden_fraction(result.clean_pred, after, classes)[0].item()
        out = free_path(args.out / f"{path.stem}_hidden.png", inputs)
        Image.fromarray(to_uint8(result.adv[0]).numpy()).save(out)
        panel = free_path(args.out / f"{path.stem}_panel.png", inputs)
        hide_panel(
            x[0], adv[0], result.target[0], result.clean_pred[0], after[0], panel, title=path.name
        )
        shown = "no class" if hidden != hidden else f"{100 * hidden:.1f}%"
        print(f"{path.name[:40]:40} {shown:>8} {result.iterations[0].item():>10}  {out}")
    return 1 if failed else 0


JPEG_WARNING = (
    "fastadv: the protected images are lossless PNGs; re-encoding them as JPEG (as many sites "
    "do on upload) or resizing them can undo the protection"
)


def _protect_arguments(p: argparse.ArgumentParser) -> None:
    from fastadv.experiments.protect import add_algorithm_arguments

    p.add_argument("images", nargs="+", type=Path)
    p.add_argument("--condition", choices=["top1", "top5", "top1-50"], default="top1")
    p.add_argument("--model", default="scene-cnn", help="shipped weights name or .safetensors file")
    add_algorithm_arguments(p)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--device", default=None)
    p.set_defaults(run=_protect)


def _protect(args) -> int:
    """Sweere et al.'s colour-variance protection of each image; a summary table at the end."""
    from tqdm import tqdm

    from fastadv.models import CLASSIFICATION, describe, load

    device = study.device(args.device)
    model = load(args.model, device, task=CLASSIFICATION)
    classes = describe(model).classes
    args.out.mkdir(parents=True, exist_ok=True)
    inputs = {p.resolve() for p in args.images}
    print(JPEG_WARNING, file=sys.stderr)
    rows, failed = [], 0
    for path in tqdm(args.images, desc="protect", unit="img"):
        try:
            x = read_image(path)[None].to(device)
        except (OSError, ValueError) as error:
            tqdm.write(
                f"fastadv: skipping {path}: cannot read it as an image ({error})", sys.stderr
            )
            failed += 1
            continue
        row = _protect_one(
            model, classes, x, args, free_path(args.out / f"{path.stem}_protected.png", inputs)
        )
        rows.append((path.name, *row))
        failed += not row[2]
    _print_protect_summary(rows)
    done = sum(row[3] for row in rows)
    print(f"{done} of {len(args.images)} images protected ({args.condition}); see {args.out}")
    return 1 if failed else 0


def _protect_one(model, classes, x, args, out: Path) -> tuple:
    """Protects one image [1, 3, H, W], writes the PNG; (before, after, protected, iterations,
    output), the labels as "class (probability)" of what the PNG holds."""
    from PIL import Image

    from fastadv.attacks import color_variance_attack
    from fastadv.attacks.color_variance import condition_met
    from fastadv.experiments.panels import to_uint8
    from fastadv.experiments.protect import algorithm_settings

    result = color_variance_attack(model, x, condition=args.condition, **algorithm_settings(args))
    pixels = to_uint8(result.adv[0])
    Image.fromarray(pixels.numpy()).save(out)
    saved = pixels.permute(2, 0, 1)[None].to(x.device).float() / 255  # what the PNG holds
    with torch.no_grad():
        before, after = model(x), model(saved)
    protected = bool(condition_met(args.condition, after, result.labels)[0])
    return _top1(before, classes), _top1(after, classes), protected, int(result.iterations[0]), out


def _top1(logits, classes) -> str:
    p, k = logits.softmax(1)[0].max(0)
    return f"{classes[k] if classes else int(k)} ({p.item():.2f})"


def _print_protect_summary(rows) -> None:
    print(f"{'image':32} {'before':22} {'after':22} {'protected':>9} {'iter':>5}  output")
    for name, before, after, protected, iterations, out in rows:
        shown = "yes" if protected else "NO"
        print(f"{name[:32]:32} {before:22} {after:22} {shown:>9} {iterations:>5}  {out}")


if __name__ == "__main__":
    sys.exit(main())
