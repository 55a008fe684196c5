"""The fastadv command, end to end on a few synthetic street scenes; the studies' options."""

import sys

import numpy as np
import pytest
from PIL import Image

from fastadv.cli import main
from fastadv.cli.hide import class_ids
from fastadv.data import SynthCity
from fastadv.errors import MissingExtra, UsageError, optional_import
from fastadv.experiments import STUDIES, load_study, study


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scenes")
    data = SynthCity("val", length=4, size=(64, 128))
    paths = []
    for i in (2, 3):  # the shipped model sees persons in these
        image = (data[i][0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        paths.append(folder / f"scene{i}.png")
        Image.fromarray(image).save(paths[-1])
    broken = folder / "broken.png"
    broken.write_text("not an image")
    return folder, paths, broken


def test_hide_writes_lossless_pngs_and_panels(scenes, capsys):
    folder, paths, broken = scenes
    before = {p: p.read_bytes() for p in paths}
    code = main(
        [
            "hide",
            *map(str, paths),
            str(broken),
            "--classes",
            "person",
            "--eps",
            "6",
            "--out",
            str(folder),
        ]
    )
    assert code == 1  # one input could not be read; the others were done
    assert "skipping" in capsys.readouterr().err
    for p in paths:
        assert p.read_bytes() == before[p]  # inputs untouched, though the output folder is theirs
        adv = np.asarray(Image.open(folder / f"{p.stem}_hidden.png"))
        original = np.asarray(Image.open(p))
        assert adv.shape == original.shape
        assert np.abs(adv.astype(int) - original.astype(int)).max() <= 6
        assert (folder / f"{p.stem}_panel.png").exists()


def test_outputs_never_replace_inputs_or_earlier_outputs(scenes, tmp_path, capsys):
    _, paths, _ = scenes
    out = tmp_path / "out"
    out.mkdir()
    earlier = out / f"{paths[0].stem}_hidden.png"
    earlier.write_bytes(b"an earlier output")
    argv = ["hide", str(paths[0]), "--eps", "1", "--min-hidden", "0.01", "--out", str(out)]
    main(argv)
    assert earlier.read_bytes() == b"an earlier output"
    assert (out / f"{paths[0].stem}_hidden-1.png").exists()
    assert f"{paths[0].stem}_hidden-1.png" in capsys.readouterr().out


def test_class_names_and_ids():
    from fastadv.data.cityscapes import CLASS_NAMES

    assert class_ids(["person", "13", "Rider"], CLASS_NAMES, 19, "m") == [11, 13, 12]
    assert class_ids(["2"], None, 3, "m") == [2]
    for wanted, names, listed in (
        ("people", CLASS_NAMES, "m has 19 classes: 0 road, 1 sidewalk,"),
        ("19", CLASS_NAMES, "11 person, 12 rider"),
        ("-1", CLASS_NAMES, "18 bicycle"),
        ("person", None, "m names no classes; give ids 0 to 2"),
        ("3", None, "give ids 0 to 2"),
    ):
        with pytest.raises(UsageError, match=f"^--classes {wanted}: ") as error:
            class_ids([wanted], names, 3 if names is None else 19, "m")
        assert listed in str(error.value)


def test_unknown_arguments_are_refused(capsys):
    assert main(["hide"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_study_help_names_the_command_and_shows_the_defaults(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["experiment", "protect", "-h"])
    assert exit.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: fastadv experiment protect ")
    assert "--size H [W]" in out and "(default: 96)" in out and "(default: runs/protect)" in out
    words = " ".join(out.split())  # argparse wraps the help
    assert "has the measured sweep (default: 0.1)" in words  # the attack's own, not None


@pytest.mark.parametrize("name", STUDIES)
def test_every_study_speaks_one_vocabulary(name):
    """--out, --images, --batch-size, --device, --threads for every study; --size H [W] for
    those whose images have a size; nothing else spelled two ways."""
    module = load_study(name)
    args = study.parse(module, [])
    for option in ("out", "images", "batch_size", "device", "threads"):
        assert hasattr(args, option), option
    assert not hasattr(args, "batch") and not hasattr(args, "eval_size")
    if name != "mindseye":  # its rendered objects are always 64x64
        assert study.parse(module, ["--size", "64"]).size == (64, 64)
    if name in ("hide", "robustness"):
        assert study.parse(module, ["--size", "64", "128"]).size == (64, 128)


@pytest.mark.parametrize(
    "argv, named",
    [
        (["experiment", "hide", "--size", "8", "16", "32"], "--size"),
        (["experiment", "protect", "--size", "64", "32"], "--size"),
        (["experiment", "robustness", "--images", "0"], "--images"),
        (["experiment", "mindseye", "--batch-size", "-2"], "--batch-size"),
    ],
)
def test_a_bad_study_argument_is_one_line_naming_it(argv, named, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and named in err
    assert not any(tmp_path.iterdir())  # refused before any work


def test_a_missing_extra_is_one_line_naming_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    assert main(["experiment", "hide", "--images", "1", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'fastadv[studies]'" in err
    assert not any(tmp_path.iterdir())  # refused before any work
    monkeypatch.setitem(sys.modules, "scipy.stats", None)
    with pytest.raises(MissingExtra, match=r"scipy is not installed.*fastadv\[studies\]"):
        optional_import("scipy.stats")
