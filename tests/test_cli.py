"""The fastadv command, end to end on a few synthetic street scenes."""

import numpy as np
import pytest
from PIL import Image

from fastadv.cli import class_ids, free_path, main
from fastadv.data import SynthCity


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scenes")
    data = SynthCity("val", length=2, size=(64, 128))
    paths = []
    for i in range(2):
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


def test_outputs_never_replace_inputs_or_earlier_outputs(tmp_path):
    existing = tmp_path / "a_hidden.png"
    existing.write_bytes(b"x")
    assert free_path(existing, set()) == tmp_path / "a_hidden-1.png"
    fresh = tmp_path / "b.png"
    assert free_path(fresh, {fresh.resolve()}) == tmp_path / "b-1.png"


def test_class_names_and_ids():
    assert class_ids(["person", "13"]) == [11, 13]
    with pytest.raises(SystemExit, match="unknown class 'people'"):
        class_ids(["people"])


def test_unknown_arguments_are_refused():
    with pytest.raises(SystemExit):
        main(["hide"])
