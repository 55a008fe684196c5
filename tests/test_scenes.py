"""SynthScenes, the shipped scene classifier, its weight files and the ResNet-50 names."""

import json

import pytest
import torch
from safetensors.torch import save_file

from fastadv.data import SynthScenes
from fastadv.data.scenes import CLASSES
from fastadv.models import ModelError, describe, load, save_weights
from fastadv.models.resnet import resnet50
from fastadv.models.scene import SceneNet, shorter_side_to


def test_classes_cover_outdoor_and_indoor_scenes():
    assert len(CLASSES) >= 10
    for name in ("street", "highway", "park", "forest", "beach", "desert", "snowfield", "lake",
                 "mountains", "room"):  # fmt: skip
        assert name in CLASSES


def test_deterministic_by_seed_and_split():
    a, b = SynthScenes("train", 30, 32), SynthScenes("train", 30, 32)
    x, y = a[17]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and y == 17 % len(CLASSES)
    assert 0 <= x.min() and x.max() <= 1
    assert torch.equal(x, b[17][0])
    assert not torch.equal(x, SynthScenes("train", 30, 32, seed=1)[17][0])
    assert not torch.equal(x, SynthScenes("val", 30, 32)[17][0])


def test_tensors_are_balanced():
    x, y = SynthScenes("val", 2 * len(CLASSES), 24).tensors()
    assert x.shape == (2 * len(CLASSES), 3, 24, 24)
    assert torch.equal(y.bincount(), torch.full((len(CLASSES),), 2))


def test_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        SynthScenes("test")
    with pytest.raises(ValueError, match="size"):
        SynthScenes("val", size=8)
    with pytest.raises(IndexError):
        SynthScenes("val", 4, 32)[4]


@pytest.mark.parametrize("size", [128, 256])
def test_shipped_classifier_is_accurate_on_val(size):
    """At its working resolution and on renders twice as large, which it shrinks itself."""
    model = load("scene-cnn")
    classes = describe(model).classes
    assert classes == CLASSES and isinstance(model, SceneNet) and model.input_size == 128
    x, y = SynthScenes("val", 96, size).tensors()
    with torch.no_grad():
        accuracy = (model(x).argmax(1) == y).float().mean().item()
    assert accuracy >= 0.9


def test_layout_alone_does_not_name_the_class():
    """Scenes whose layout is another category's still carry their own class's ripple, so the
    shipped classifier, which reads it, names them; the mirror image (whose ripple runs the other
    way, another class's orientation) it does not. Checks that the texture cue is what it uses."""
    model = load("scene-cnn")
    x, y = SynthScenes("val", 48, 128).tensors()
    with torch.no_grad():
        plain = (model(x).argmax(1) == y).float().mean().item()
        mirrored = (model(x.flip(-1)).argmax(1) == y).float().mean().item()
    assert plain >= 0.9 and mirrored < 0.5


def test_scenenet_shrinks_inputs_to_its_working_resolution():
    torch.manual_seed(0)
    model = SceneNet(num_classes=5, input_size=32).eval()
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(shorter_side_to(x, 32)))
    assert shorter_side_to(x, 32).shape == (2, 3, 32, 48)
    assert shorter_side_to(x, 64) is x
    x.requires_grad_(True)
    model(x).sum().backward()  # differentiable through the resize
    assert x.grad.abs().sum() > 0


def test_resnet50_has_torchvision_names():
    state = resnet50(num_classes=365).state_dict()
    assert len(state) == 320  # torchvision's resnet50().state_dict() has 320 entries
    for key in ("conv1.weight", "bn1.running_var", "layer1.0.downsample.0.weight",
                "layer4.2.bn3.num_batches_tracked", "fc.bias"):  # fmt: skip
        assert key in state
    assert state["fc.weight"].shape == (365, 2048)
    assert sum(v.numel() for k, v in state.items() if "num_batches" not in k) > 23_000_000


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = SceneNet(num_classes=7, input_size=24).eval()
    path = tmp_path / "m.safetensors"
    save_weights(model, path, "scenenet", classes=[str(i) for i in range(7)])
    loaded = load(path)
    classes = describe(loaded).classes
    assert loaded.input_size == 24
    x = torch.rand(2, 3, 40, 40)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    assert classes == tuple(str(i) for i in range(7))


def test_load_refuses_pickles_and_unknown_archs(tmp_path):
    pickled = tmp_path / "model.pth"
    torch.save(SceneNet().state_dict(), pickled)
    with pytest.raises(ModelError, match="pickled"):
        load(pickled)
    with pytest.raises(ModelError, match="does not exist"):
        load(tmp_path / "missing.safetensors")
    path = tmp_path / "noarch.safetensors"
    save_file({"fc.weight": torch.zeros(2, 2)}, str(path), metadata={"classes": json.dumps([])})
    with pytest.raises(ModelError, match="arch"):
        load(path)
