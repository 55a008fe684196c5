"""`python -m fastadv.training COMMAND ...`: the trainers' commands (see the package)."""

import argparse
import sys

from fastadv import training
from fastadv.cli import Parser, run
from fastadv.training import mindseye, scenes, segmentation

COMMANDS = {
    "segmentation": (segmentation.add_arguments, "train a segmentation model on SynthCity"),
    "evaluate": (segmentation.add_evaluate_arguments, "mIoU of segmentation weights on SynthCity"),
    "scenes": (scenes.add_arguments, "train the scene classifier on SynthScenes"),
    "mindseye": (mindseye.add_arguments, "train one stage of Berntsen et al.'s networks"),
}


def main(argv=None) -> int:
    parser = Parser(
        prog="python -m fastadv.training",
        description=training.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (add_arguments, text) in COMMANDS.items():
        add_arguments(commands.add_parser(name, help=text, description=text))
    parser.set_defaults(run=_train)
    return run(parser, argv)


def _train(args: argparse.Namespace) -> int:
    args.train(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
