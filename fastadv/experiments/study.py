"""How a study is wired: the options every study shares, and the runner that takes a study from
its arguments to its report on the harness (records, resume, torchrun sharding, one run per
folder, the table and figures written and printed by rank 0).

A study is a module of fastadv.experiments, listed in `fastadv.experiments.STUDIES`, with

    NAME                         `fastadv experiment NAME`; its records go to <out>/NAME
    HELP                         one line for `fastadv experiment -h` (the docstring is its -h)
    COLUMNS                      its table's fields and their headers
    add_arguments(parser)        its options, the shared ones through `shared_arguments`
    plan(args, device) -> Plan   its models and data, settings and the harness's evaluate
    table(summary, args) -> rows               the harness's summary (`harness.aggregate`)
                                               as the rows of its table
    report(plan, summary, rows, args) -> (text, files)   its figures, a few lines of reading

and, when its records folder is not <out>/NAME, RECORDS: that folder's name. The runner writes
the table as <out>/NAME.csv and <out>/NAME.md besides the study's figures.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import torch
import torch.distributed as dist

from fastadv.errors import UsageError, require_extra
from fastadv.experiments import harness
from fastadv.experiments.lock import folder_lock
from fastadv.experiments.report import markdown_table, write_csv
from fastadv.models import CLASSIFICATION, SEGMENTATION, ModelError, ModelInfo, describe, load

SYNTHETIC_MIN_SIDE = 16  # SynthCity's and SynthScenes' smallest images
MODEL_HELP = (
    "a shipped name, a .safetensors file, torchvision:NAME[.WEIGHTS] (e.g. "
    "torchvision:deeplabv3_resnet50, torchvision:resnet50) or package.module:callable"
)
SYNTHETIC = "trained on synthetic scenes, not photographs"
PHOTO_MODELS = {  # what to give --model for photos instead of a shipped model of that task
    SEGMENTATION: "torchvision:deeplabv3_resnet50",
    CLASSIFICATION: "torchvision:resnet50 or a Places365 file (fastadv convert-places365)",
}


@dataclass
class Plan:
    """What the harness evaluates: every setting on every item (image, labels) of dataset;
    `context` keeps what the study's report needs again (its models, its data)."""

    settings: Sequence[str]
    dataset: torch.utils.data.Dataset
    evaluate: harness.Evaluate
    context: dict = field(default_factory=dict)
    models: Sequence[torch.nn.Module] = ()  # the models the study runs, named in its summary


@dataclass
class Outcome:
    """A finished study: its table rows, the table in markdown, the reading, the files."""

    rows: list[dict]
    table: str
    text: str
    files: list[Path]
    models: list[str] = field(default_factory=list)  # model_line of each model that ran


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """-h shows every option's default (an option whose default is None says in its help what
    it does unset), and the study's docstring as it is laid out."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)

    def _format_args(self, action, default_metavar):
        return (
            "H [W]"
            if isinstance(action, SizeAction)
            else super()._format_args(action, default_metavar)
        )


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def number_in(low: float, high: float = math.inf, *, above: bool = False):
    """An argparse type: a finite number in [low, high] ((low, high] when `above`); its
    message shows the text typed."""
    if high < math.inf:
        span = f"in {'(' if above else '['}{low:g}, {high:g}]"
    else:
        span = f"{'>' if above else '>='} {low:g}"

    def number(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and low <= value <= high and not (above and value == low)):
            raise argparse.ArgumentTypeError(f"must be a number {span}, got {text}")
        return value

    return number


# An L-inf budget in pixel units: above 0 (no change at all is no attack), at most the range.
PIXEL_BUDGET = number_in(0, 255, above=True)


def torch_device(text: str) -> str:
    """An argparse type: a torch device this machine has ("cpu", "cuda", "cuda:1", "mps")."""
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a torch device; give cpu, cuda, cuda:N or mps"
        ) from None
    if device.type == "cpu":
        return text
    count = _device_count(device.type)
    if count == 0:
        raise argparse.ArgumentTypeError(
            f"{text!r}: torch finds no {device.type} device on this machine; use --device cpu"
        )
    if device.index is not None and device.index >= count:
        raise argparse.ArgumentTypeError(
            f"{text!r}: this machine has {count} {device.type} device(s), 0 to {count - 1}"
        )
    return text


def _device_count(kind: str) -> int:
    """How many devices of `kind` torch can use here (none of a kind that holds no data)."""
    if kind == "cuda":
        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    if kind == "mps":
        return int(torch.backends.mps.is_available())
    if kind == "xpu":
        return torch.xpu.device_count() if torch.xpu.is_available() else 0
    return 0


class SizeAction(argparse.Action):
    """--size H [W]: stored as (H, W), W = H when only one number is given; `square` studies
    refuse H != W; sides below `minimum` (what the study's data can be made at) are refused."""

    def __init__(self, *args, square: bool = False, minimum: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        self.square, self.minimum = square, minimum

    def __call__(self, parser, namespace, values, option_string=None):
        if len(values) > 2:
            parser.error(f"argument {option_string}: give H, or H W, not {len(values)} numbers")
        if self.square and values[0] != values[-1]:
            parser.error(f"argument {option_string}: this study's images are square; give one N")
        if min(values) < self.minimum:
            parser.error(
                f"argument {option_string}: this study's images are at least {self.minimum} "
                f"pixels a side, got {' x '.join(map(str, values))}"
            )
        setattr(namespace, self.dest, (values[0], values[-1]))


def shared_arguments(
    parser: argparse.ArgumentParser,
    name: str,
    *,
    images: int,
    images_help: str,
    batch_size: int,
    size: tuple[int, int] | None = None,
    square: bool = False,
    min_size: int = 1,
    threads: int | None = None,
) -> None:
    """The options every study spells the same way, with the study's defaults. `size` None:
    the study's images have a fixed size (no --size); `square`: --size takes one number;
    `min_size`: the smallest side the study's data can be made at."""
    parser.add_argument(
        "--out", type=Path, default=Path("runs") / name,
        help="folder of the records, tables and figures; a rerun resumes from its records",
    )  # fmt: skip
    parser.add_argument("--images", type=positive_int, default=images, help=images_help)
    if size is not None:
        parser.add_argument(
            "--size", type=positive_int, nargs="+", action=SizeAction, square=square,
            minimum=min_size, default=size, help="image height and width (one number: square)",
        )  # fmt: skip
    parser.add_argument(
        "--batch-size", type=positive_int, default=batch_size, help="images a batch"
    )
    parser.add_argument(
        "--device", type=torch_device, default=None,
        help="torch device (default: this rank's GPU if there is one, else the CPU)",
    )  # fmt: skip
    parser.add_argument(
        "--threads", type=positive_int, default=threads,
        help="torch CPU threads" + ("" if threads else " (default: torch's own choice)"),
    )  # fmt: skip


def synthcity_arguments(parser: argparse.ArgumentParser, name: str, eps_px) -> None:
    """The shared options with the defaults of the studies on SynthCity's val split, and
    --eps, the budgets in pixel units."""
    shared_arguments(
        parser, name, images=50, images_help="the first N images of SynthCity's val split",
        size=(256, 512), min_size=SYNTHETIC_MIN_SIDE, batch_size=4,
    )  # fmt: skip
    parser.add_argument(
        "--eps", type=PIXEL_BUDGET, nargs="+", default=list(eps_px),
        help="L-inf budgets in pixel units (1 = one grey level of 255)",
    )  # fmt: skip


def load_model(option: str, name: str, device, *, task: str, classes=None) -> torch.nn.Module:
    """`fastadv.models.load(name)` for the command-line option `option`; a model that cannot be
    loaded, of another task, or whose class names are not `classes` (the labels of a study's
    data, when given) is a UsageError naming the option."""
    try:
        model = load(name, device, task=task)
    except ModelError as error:
        raise UsageError(f"{option}: {error}") from None
    known = describe(model).classes
    if classes is not None and known is not None and tuple(known) != tuple(classes):
        raise UsageError(
            f"{option} {name}: its {len(known)} classes ({_some(known)}) are not the "
            f"{len(classes)} of this study's ground truth ({_some(classes)})"
        )
    return model


def _some(names, count: int = 4) -> str:
    return ", ".join(names[:count]) + (", ..." if len(names) > count else "")


def model_line(info: ModelInfo, *, photos: bool = False) -> str:
    """The model's name for a summary; a shipped model trained on synthetic scenes says so
    and, for a command on photos, what to give --model instead."""
    if not info.synthetic:
        return info.name
    if not photos:
        return f"{info.name} (shipped, {SYNTHETIC})"
    return f"{info.name} ({SYNTHETIC}; for photos give --model, e.g. {PHOTO_MODELS[info.task]})"


def parse(study: ModuleType, argv: Sequence[str] = ()) -> argparse.Namespace:
    """The study's arguments from argv with its defaults, as `fastadv experiment NAME` parses
    them (for the demo and for tests)."""
    parser = argparse.ArgumentParser(prog=f"fastadv experiment {study.NAME}")
    study.add_arguments(parser)
    return parser.parse_args(list(argv))


def device(name: str | None) -> str:
    """`name`, else this rank's GPU when there is one, else the CPU."""
    if name:
        return name
    if torch.cuda.is_available():
        return f"cuda:{os.environ.get('LOCAL_RANK', 0)}"
    return "cpu"


def run(study: ModuleType, args: argparse.Namespace, *, progress: bool = True) -> Outcome | None:
    """Runs (or resumes) `study` with its parsed `args`; rank 0's Outcome, None on the other
    ranks (rank 0 alone writes the tables and figures)."""
    require_extra("studies")  # before the work, not at the figures after it
    harness.exit_with_parent()
    harness.init_distributed()
    if args.threads:
        torch.set_num_threads(args.threads)
    where = device(args.device)
    records = args.out / getattr(study, "RECORDS", study.NAME)
    with _run_lock(records):
        plan = study.plan(args, where)
        summary = harness.run(
            plan.settings,
            plan.dataset,
            plan.evaluate,
            records,
            batch_size=args.batch_size,
            device=where,
            progress=progress,
        )
        rows = study.table(summary, args)
        if harness.rank_and_world()[0] != 0:
            return None
        table = markdown_table(rows, study.COLUMNS)
        markdown = args.out / f"{study.NAME}.md"
        markdown.write_text(table + "\n")
        files = [write_csv(rows, args.out / f"{study.NAME}.csv"), markdown]
        text, figures = study.report(plan, summary, rows, args)
        models = [model_line(describe(model)) for model in plan.models]
        return Outcome(rows, table, text, files + figures, models)


@contextlib.contextmanager
def _run_lock(folder: Path):
    """Rank 0 holds the folder's lock (`lock.folder_lock`) for the run; when it cannot, every
    rank stops with its message."""
    rank, world = harness.rank_and_world()
    with contextlib.ExitStack() as held:
        refusal = None
        if rank == 0:
            try:
                held.enter_context(folder_lock(folder))
            except UsageError as error:
                refusal = str(error)
        if world > 1:
            shared = [refusal]
            dist.broadcast_object_list(shared, src=0)
            refusal = shared[0]
        if refusal:
            raise UsageError(refusal)
        yield
