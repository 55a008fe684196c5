"""The papers' segmentation studies on a small SynthCity val subset with the shipped weights."""

import pytest
import torch

from fastadv.data import SynthCity
from fastadv.experiments import hide, robustness
from fastadv.models import load


@pytest.fixture(scope="module")
def fcn():
    torch.set_num_threads(2)
    return load("fcn8s-synthcity")


def test_hiding_headline_on_a_val_subset(fcn, tmp_path):
    """Fischer et al.'s Cityscapes figures at eps 10, full-image noise: >= 85 % of person pixels
    hidden with >= 97 % of the background preserved (first 2 val scenes, which show persons)."""
    data = SynthCity("val", length=2)
    rows = hide.run(fcn, data, tmp_path, eps_px=[10], modes=["full"], batch_size=2, progress=False)
    (row,) = rows
    assert row["images"] == 2
    assert row["hidden_mean"] >= 0.85
    assert row["preserved_mean"] >= 0.97
    assert hide.headline(rows)["smallest_eps"] == 10
    assert hide.plot(rows, tmp_path / "fig2.png").stat().st_size > 0


def test_robustness_rows_and_reading(fcn, tmp_path):
    data = SynthCity("val", length=1, size=(64, 128))
    rows = robustness.run(
        {"fcn8s": fcn},
        data,
        tmp_path,
        variants=["plain", "multiscale"],
        attacks=["fgsm", "ifgsm-ll"],
        eps_px=[4],
        progress=False,
    )
    assert {(r["variant"], r["attack"]) for r in rows} == {
        ("plain", "fgsm"),
        ("plain", "ifgsm-ll"),
        ("multiscale", "fgsm"),
        ("multiscale", "ifgsm-ll"),
    }
    for r in rows:
        assert 0 < r["clean_miou"] <= 1
        assert r["iou_ratio"] < 1  # the attacks hurt
    assert "multiscale" in robustness.reading(rows, 4)
    assert robustness.plot(rows, tmp_path / "rob.png").stat().st_size > 0
