"""The `fastadv` command.

fastadv hide IMAGE... --classes person --eps 10 [--restrict after|during]
                        [--model NAME|FILE] --out DIR
fastadv protect IMAGE... [--condition top1|top5|top1-50] [--model NAME|FILE] --out DIR
fastadv experiment hide|robustness|mindseye|protect [...]
fastadv demo [--out DIR]
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

import torch

# Studies with their own argument parsers, to which `fastadv experiment NAME ...` hands the rest.
FORWARDED_STUDIES = {
    "mindseye": "Berntsen et al.: the Mind's Eye study",
    "protect": "Sweere et al.: Table 1 of colour-variance protection",
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="fastadv", description="Fast adversarial attacks and the papers' studies."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _hide_parser(
        commands.add_parser("hide", help="hide classes from a segmentation model in your images")
    )
    _protect_parser(
        commands.add_parser("protect", help="protect your images from a scene classifier")
    )
    experiment = commands.add_parser("experiment", help="run a paper's study (resumable)")
    studies = experiment.add_subparsers(dest="study", required=True)
    _hide_study_parser(studies.add_parser("hide", help="Fischer et al.: hiding persons vs eps"))
    _robustness_parser(studies.add_parser("robustness", help="Arnab et al.: IoU ratio vs eps"))
    for name, paper in FORWARDED_STUDIES.items():
        studies.add_parser(name, help=f"{paper} (options: fastadv experiment {name} -h)",
                           add_help=False)  # fmt: skip
    demo = commands.add_parser(
        "demo", help="reduced versions of the segmentation studies, with a report"
    )
    demo.add_argument("--out", type=Path, default=Path("fastadv-demo"), help="report folder")
    demo.add_argument("--images", type=int, default=4)
    args, rest = parser.parse_known_args(argv)
    if args.command == "experiment" and args.study in FORWARDED_STUDIES:
        study = importlib.import_module(f"fastadv.experiments.{args.study}")
        return study.main(rest)
    if rest:
        parser.error(f"unrecognised arguments: {' '.join(rest)}")
    if args.command == "experiment":
        init_distributed()
    return args.func(args) if hasattr(args, "func") else _demo(args)


def _device(name: str | None) -> str:
    if name:
        return name
    if torch.cuda.is_available():
        return f"cuda:{os.environ.get('LOCAL_RANK', 0)}"
    return "cpu"


def _writes_outputs() -> bool:
    """Rank 0 writes the tables and figures (every rank has the reduced results)."""
    from fastadv.experiments.harness import rank_and_world

    return rank_and_world()[0] == 0


def init_distributed() -> None:
    """Under torchrun (WORLD_SIZE > 1), joins the process group: NCCL on GPUs, gloo on CPUs."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def _hide_parser(p):
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
    p.set_defaults(func=_hide)


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

    device = _device(args.device)
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


def _protect_parser(p):
    from fastadv.experiments.protect import add_algorithm_arguments

    p.add_argument("images", nargs="+", type=Path)
    p.add_argument("--condition", choices=["top1", "top5", "top1-50"], default="top1")
    p.add_argument("--model", default="scene-cnn", help="shipped weights name or .safetensors file")
    add_algorithm_arguments(p)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--device", default=None)
    p.set_defaults(func=_protect)


def _protect(args) -> int:
    """Sweere et al.'s colour-variance protection of each image; a summary table at the end."""
    from tqdm import tqdm

    from fastadv.models import CLASSIFICATION, describe, load

    device = _device(args.device)
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


def _study_common(p, out: str):
    p.add_argument(
        "--images", type=int, default=50, help="first N images of the SynthCity val split"
    )
    p.add_argument("--size", type=int, nargs=2, default=[256, 512], metavar=("H", "W"))
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--out", type=Path, default=Path(out))
    p.add_argument("--device", default=None)


def _hide_study_parser(p):
    from fastadv.experiments import hide

    _study_common(p, "fastadv-hide")
    p.add_argument("--eps", type=float, nargs="+", default=list(hide.EPS_PX))
    p.add_argument("--modes", nargs="+", choices=list(hide.MODES), default=list(hide.MODES))
    p.add_argument("--model", default="fcn8s-synthcity")
    p.set_defaults(func=_hide_study)


def _robustness_parser(p):
    from fastadv.experiments import robustness

    _study_common(p, "fastadv-robustness")
    p.add_argument("--eps", type=float, nargs="+", default=list(robustness.EPS_PX))
    p.add_argument(
        "--attacks", nargs="+", choices=robustness.ATTACKS, default=list(robustness.ATTACKS)
    )
    p.add_argument(
        "--variants", nargs="+", choices=robustness.VARIANTS, default=list(robustness.VARIANTS)
    )
    p.add_argument("--models", nargs="+", default=["fcn8s-synthcity", "deeplab-synthcity"])
    p.add_argument("--crf-window", type=int, default=11, help="side of the DenseCRF's local window")
    p.set_defaults(func=_robustness)


def _dataset(args):
    from fastadv.data import SynthCity

    return SynthCity("val", length=args.images, size=tuple(args.size))


def run_hide_study(args) -> tuple[list[dict], dict, list[Path]]:
    from fastadv.experiments import hide
    from fastadv.experiments.report import write_csv
    from fastadv.models import load

    device = _device(args.device)
    model = load(args.model, device=device)
    rows = hide.run(
        model,
        _dataset(args),
        args.out,
        eps_px=args.eps,
        modes=args.modes,
        batch_size=args.batch_size,
        device=device,
    )
    files = []
    if _writes_outputs():
        files = [
            write_csv(rows, args.out / "hide.csv"),
            hide.plot(rows, args.out / "hide_fig2.png"),
        ]
        files.append(_hide_example(model, _dataset(args), args, device))
    return rows, hide.headline(rows), files


def _hide_example(model, dataset, args, device) -> Path:
    """Their Fig. 1 for the first image that shows a person, at eps 10."""
    from fastadv.attacks import hide_classes
    from fastadv.experiments.hide import PERSON
    from fastadv.experiments.panels import hide_panel

    for i in range(len(dataset)):
        x, _ = dataset[i]
        x = x[None].to(device)
        result = hide_classes(model, x, PERSON, 10 / 255, early_stop=False)
        if result.hidden.any():
            with torch.no_grad():
                after = model(result.adv).argmax(1)
            return hide_panel(
                x[0],
                result.adv[0],
                result.target[0],
                result.clean_pred[0],
                after[0],
                args.out / "hide_fig1.png",
                title=f"SynthCity val {i}, eps 10",
            )
    raise SystemExit("fastadv: no image with a person in the chosen images")


def _hide_study(args) -> int:
    from fastadv.experiments.hide import headline_text
    from fastadv.experiments.report import markdown_table

    rows, head, files = run_hide_study(args)
    print(markdown_table(rows, HIDE_COLUMNS))
    print(f"\nheadline: {headline_text(head)}\nwrote {', '.join(map(str, files))}")
    return 0


def run_robustness_study(args) -> tuple[list[dict], str, list[Path]]:
    from fastadv.experiments import robustness
    from fastadv.experiments.report import write_csv
    from fastadv.models import load

    device = _device(args.device)
    models = {name.removesuffix("-synthcity"): load(name, device=device) for name in args.models}
    rows = robustness.run(
        models,
        _dataset(args),
        args.out,
        variants=args.variants,
        attacks=args.attacks,
        eps_px=args.eps,
        crf_window=args.crf_window,
        batch_size=args.batch_size,
        device=device,
    )
    files = []
    if _writes_outputs():
        files = [
            write_csv(rows, args.out / "robustness.csv"),
            robustness.plot(rows, args.out / "robustness.png"),
        ]
    eps = 8 if 8 in args.eps else max(args.eps)
    return rows, robustness.reading(rows, eps), files


def _robustness(args) -> int:
    from fastadv.experiments.report import markdown_table

    rows, reading, files = run_robustness_study(args)
    print(markdown_table(rows, ROBUSTNESS_COLUMNS))
    print(f"\n{reading}\nwrote {', '.join(map(str, files))}")
    return 0


HIDE_COLUMNS = {
    "mode": "noise",
    "eps_px": "eps",
    "images": "images",
    "hidden_mean": "hidden",
    "hidden_std": "± std",
    "preserved_mean": "preserved",
    "preserved_std": "± std",
}
ROBUSTNESS_COLUMNS = {
    "model": "model",
    "variant": "variant",
    "attack": "attack",
    "eps_px": "eps",
    "clean_miou": "clean mIoU",
    "miou": "mIoU",
    "iou_ratio": "IoU ratio",
}


def _demo(args) -> int:
    """Reduced studies on SynthCity with the shipped weights, and a markdown report."""
    import time

    from fastadv.experiments.hide import headline_text
    from fastadv.experiments.report import markdown_table

    start = time.perf_counter()
    common = {"images": args.images, "size": [256, 512], "batch_size": 2, "device": None}
    hide_args = argparse.Namespace(
        **common, out=args.out, eps=[2, 6, 10], modes=["full", "after"], model="fcn8s-synthcity"
    )
    hide_rows, head, hide_files = run_hide_study(hide_args)
    # The CRF costs most: half the resolution and a 5x5 window keep the demo short.
    rob_args = argparse.Namespace(
        **{**common, "images": min(args.images, 2), "size": [128, 256]},
        out=args.out,
        eps=[2, 8],
        attacks=["fgsm", "fgsm-ll", "ifgsm", "ifgsm-ll"],
        variants=["plain", "multiscale", "crf"],
        models=["fcn8s-synthcity"],
        crf_window=5,
    )
    rob_rows, reading, rob_files = run_robustness_study(rob_args)
    minutes = (time.perf_counter() - start) / 60
    report = args.out / "report.md"
    setup = (
        f"SynthCity val images ({args.images} at 256x512 for hiding, {rob_args.images} at 128x256 "
        "for robustness, DenseCRF window 5x5), the shipped compact FCN-8s; "
        f"{minutes:.1f} min on {_device(None)}. Full studies: `fastadv experiment hide` and "
        "`fastadv experiment robustness`."
    )
    theirs = "Their headline (Cityscapes): >= 85 % hidden with >= 97 % preserved at eps 10."
    report.write_text(
        "\n".join(
            [
                "# fastadv demo: the segmentation studies, reduced",
                "\n" + setup,
                "\n## Hiding persons (Fischer et al., their Fig. 2)\n",
                markdown_table(hide_rows, HIDE_COLUMNS),
                f"\n{theirs} Here: {headline_text(head)}",
                "\n![Fig. 2](hide_fig2.png)\n\n![Fig. 1](hide_fig1.png)",
                "\n## Robustness and defences (Arnab et al.)\n",
                markdown_table(rob_rows, ROBUSTNESS_COLUMNS),
                "\n![IoU ratio](robustness.png)\n",
                reading,
            ]
        )
        + "\n"
    )
    print(
        f"\nreport written to {report.resolve().parent}/ ({minutes:.1f} min): report.md, "
        + ", ".join(p.name for p in hide_files + rob_files)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
