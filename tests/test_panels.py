"""Label-map colours and the hide panel's legend, in the model's own label set."""

import pytest
import torch

from fastadv.data import CLASS_NAMES
from fastadv.experiments.palette import colorize, palette, voc_colors
from fastadv.experiments.panels import LEGEND_ENTRIES, _legend, hide_panel, pyplot

pytest.importorskip("matplotlib")

VOC = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip


def test_voc_colors_are_the_voc_datasets_own():
    # PASCAL VOC 2012 SegmentationClass colours (the devkit's colour map)
    colors = voc_colors(21)
    assert colors[0] == (0, 0, 0)
    assert colors[1] == (128, 0, 0)  # aeroplane
    assert colors[15] == (192, 128, 128)  # person
    assert colors[20] == (0, 64, 128)  # tvmonitor


def test_voc_colors_are_distinct_for_every_id():
    assert len(set(voc_colors(256))) == 256


def test_palette_follows_the_label_set():
    person = torch.tensor([[11]])
    cityscapes_person = colorize(person, palette(CLASS_NAMES))[:, 0, 0]
    assert cityscapes_person.mul(255).round().tolist() == [220, 20, 60]
    voc_person = torch.tensor([[15]])
    assert colorize(voc_person, palette(VOC))[:, 0, 0].mul(255).round().tolist() == [192, 128, 128]
    # past the label set (e.g. ignore = 255) is black; unknown names: every id has a colour
    assert palette(VOC)[21:].abs().sum() == 0
    assert palette(None)[1:].abs().sum(1).gt(0).all()


def _legend_labels(label_maps, classes):
    plt = pyplot()
    fig, ax = plt.subplots()
    try:
        _legend(ax, label_maps, classes, palette(classes))
        return [text.get_text() for text in ax.get_legend().get_texts()]
    finally:
        plt.close(fig)


def test_legend_names_the_classes_shown_most_pixels_first():
    before = torch.tensor([[15, 15, 15, 0], [0, 0, 0, 0]])
    after = torch.tensor([[9, 9, 0, 0], [0, 0, 0, 0]])
    assert _legend_labels((before, after), VOC) == ["background", "person", "chair"]
    assert _legend_labels((before,), None) == ["class 0", "class 15"]


def test_legend_is_capped_and_skips_ids_past_the_label_set():
    many = torch.arange(40).reshape(5, 8)
    labels = _legend_labels((many, torch.full((2, 2), 255)), VOC)
    assert len(labels) == LEGEND_ENTRIES and all(label in VOC for label in labels)


def test_hide_panel_writes_a_figure(tmp_path):
    x = torch.rand(3, 16, 24)
    labels = torch.randint(0, 21, (16, 24))
    path = hide_panel(x, x.flip(1), labels, labels, labels.flip(0), tmp_path / "p.png", classes=VOC)
    assert path.stat().st_size > 0
