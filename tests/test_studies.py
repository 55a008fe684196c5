"""The papers' studies through their runner, on small subsets with the shipped weights."""

from fastadv.experiments import harness, hide, protect, robustness, study


def run(module, *argv):
    return study.run(module, study.parse(module, [*map(str, argv)]), progress=False)


def test_hiding_headline_on_a_val_subset(tmp_path):
    """Fischer et al.'s Cityscapes figures at eps 10, full-image noise: >= 85 % of person pixels
    hidden with >= 97 % of the background preserved (first 2 val scenes, which show persons)."""
    outcome = run(hide, "--images", 2, "--eps", 10, "--modes", "full", "--batch-size", 2,
                  "--threads", 2, "--out", tmp_path)  # fmt: skip
    rows = outcome.rows
    (row,) = rows
    assert row["images"] == 2
    assert row["hidden_mean"] >= 0.85
    assert row["preserved_mean"] >= 0.97
    assert hide.headline(rows)["smallest_eps"] == 10
    assert hide.plot(rows, tmp_path / "fig2.png").stat().st_size > 0
    assert {p.name for p in outcome.files} == {
        "hide.csv", "hide.md", "hide_fig2.png", "hide_fig1.png"
    }  # fmt: skip
    assert "(2 images that show persons)" in outcome.text


def test_hide_table_counts_only_the_images_that_show_persons():
    """An image without persons has nothing to hide: it counts in neither "images" nor the
    means (its background is all preserved, which would inflate "preserved")."""
    records = [
        {"setting": "full/eps=10", "index": 0, "hidden": 0.5, "preserved": 0.9},
        {"setting": "full/eps=10", "index": 1, "preserved": 1.0},  # no person
        {"setting": "full/eps=10", "index": 2, "hidden": 1.0, "preserved": 0.8},
    ]
    (row,) = hide.table(harness.aggregate(records, ["full/eps=10"]), None)
    assert row["images"] == 2
    assert row["hidden_mean"] == 0.75 and abs(row["preserved_mean"] - 0.85) < 1e-12
    assert abs(row["preserved_std"] - 0.05) < 1e-12


def test_robustness_rows_and_reading(tmp_path):
    outcome = run(robustness, "--images", 1, "--size", 64, 128, "--variants", "plain",
                  "multiscale", "--attacks", "fgsm", "ifgsm-ll", "--eps", 4, "--models",
                  "fcn8s-synthcity", "--threads", 2, "--out", tmp_path)  # fmt: skip
    rows = outcome.rows
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


def test_protect_study_through_the_cli(tmp_path):
    """`fastadv experiment protect` on 2 images: every Table 1 run, the tables and the panel."""
    from fastadv.cli import main

    out = tmp_path / "study"
    argv = ["experiment", "protect", "--out", str(out), "--images", "2", "--size", "64",
            "--batch-size", "2", "--steps", "3"]  # fmt: skip
    assert main(argv) == 0
    table = (out / "protect.md").read_text()
    for run in ("Original", "Top1-L1", "Top1-L1-50", "Top1-noL1", "Top5-L1", "Top5-noL1",
                "uniform:Top1-L1"):  # fmt: skip
        assert f"| {run} |" in table
    assert (out / "protect.csv").exists() and (out / "panel.png").stat().st_size > 0
    assert len((out / protect.RECORDS / "records-0.jsonl").read_text().splitlines()) == 8 * 2
