"""The `fastadv` command: it assembles the commands and the studies.

fastadv hide PHOTO... --classes person --eps 10 [--model NAME] --out DIR
fastadv protect PHOTO... [--condition top1|top5|top1-50] [--model NAME] --out DIR
fastadv convert-places365 resnet50_places365.pth.tar places.safetensors
fastadv experiment hide|robustness|protect|mindseye [...]    (options: fastadv experiment NAME -h)
fastadv demo [--out DIR]

--model takes every form of `fastadv.models.load`: a shipped name, a .safetensors file,
torchvision:NAME[.WEIGHTS] or package.module:callable.

A command declares its arguments in one function and does its work in another; a study is a
module of fastadv.experiments (see fastadv.experiments.study). A user's mistake, from argparse
or from the work (a UsageError, or a ModelError: a model argument that cannot be loaded), ends
in `run` as one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from types import ModuleType

from fastadv.errors import UsageError
from fastadv.experiments.study import HelpFormatter, positive_int


class Parser(argparse.ArgumentParser):
    """argparse with a bad argument reported as one line (a UsageError), not a usage block."""

    def error(self, message):
        raise UsageError(f"{message} (see {self.prog} -h)")


def main(argv=None) -> int:
    from fastadv import experiments
    from fastadv.cli import hide, protect
    from fastadv.models import places365

    parser = Parser(
        prog="fastadv",
        description="Fast adversarial attacks and the papers' studies.",
        formatter_class=HelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, module in (("hide", hide), ("protect", protect)):
        module.add_arguments(_command(commands, name, module.HELP))
    places = _command(
        commands, "convert-places365", "convert the Places365 ResNet-50 checkpoint to safetensors"
    )
    places365.add_arguments(places)
    places.set_defaults(run=places365.run)
    experiment = commands.add_parser("experiment", help="run a paper's study (resumable)")
    studies = experiment.add_subparsers(dest="study", required=True)
    for name in experiments.STUDIES:
        _add_study(studies, experiments.load_study(name))
    _demo_arguments(
        _command(commands, "demo", "reduced versions of the segmentation studies, with a report")
    )
    return run(parser, argv)


def run(parser: argparse.ArgumentParser, argv=None) -> int:
    """Parses argv and runs its command; a user's mistake becomes one line and exit code 2."""
    from fastadv.models import ModelError

    try:
        args = parser.parse_args(argv)
        return args.run(args)
    except (UsageError, ModelError) as error:
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
    """Runs the study; rank 0 prints its table, reading, models and files."""
    from fastadv.experiments import study

    outcome = study.run(module, args)
    if outcome is not None:
        print(outcome.table)
        print(f"\n{outcome.text}")
        for line in outcome.models:
            print(f"model: {line}")
        print(f"wrote {', '.join(map(str, outcome.files))}")
    return 0


def _demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("fastadv-demo"), help="report folder")
    p.add_argument("--images", type=positive_int, default=4, help="SynthCity val images")
    p.set_defaults(run=_demo)


def _demo(args: argparse.Namespace) -> int:
    from fastadv.experiments import demo
    from fastadv.experiments.study import model_line
    from fastadv.models import describe, load

    done = demo.run(args.out, args.images)
    if done is not None:
        files, minutes = done
        names = ", ".join(path.name for path in files)
        print(f"\nreport written to {args.out.resolve()}/ ({minutes:.1f} min): {names}")
        print(f"model: {model_line(describe(load(demo.MODEL)))}")
    return 0
