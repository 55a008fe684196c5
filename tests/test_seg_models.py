"""Segmentation models: shapes, MultiScale, shipped weights and their recorded accuracy."""

import pytest
import torch

from fastadv import metrics
from fastadv.data import SynthCity
from fastadv.data.synthcity import PERSON
from fastadv.models import (
    SHIPPED,
    DeepLabLite,
    ModelError,
    MultiScale,
    Normalize,
    compact_fcn8s,
    fcn8s_vgg16,
    load,
    save_weights,
)
from fastadv.models.weights import WEIGHTS_DIR

# mIoU and person IoU of the shipped weights on the first 8 SynthCity val scenes at 256x512,
# measured with `python -m fastadv.training evaluate --weights NAME --scenes 8` (docs/weights.md).
RECORDED = {
    "fcn8s-synthcity": (0.8919, 0.7778),
    "deeplab-synthcity": (0.8955, 0.7965),
}
SUBSET = 8


@pytest.mark.parametrize("size", [(37, 61), (17, 23), (64, 128), (1, 1)])
@pytest.mark.parametrize("build", [compact_fcn8s, DeepLabLite])
def test_output_size_equals_input_size(build, size):
    model = build(num_classes=7).eval()
    assert model(torch.rand(2, 3, *size)).shape == (2, 7, *size)


def test_vgg16_fcn8s_architecture():
    model = fcn8s_vgg16().eval()
    convs = [m for m in model.stages.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64] * 2 + [128] * 2 + [256] * 3 + [512] * 6
    assert model.fc[0][0].kernel_size == (7, 7) and model.fc[0][0].out_channels == 4096
    with torch.no_grad():
        assert model(torch.rand(1, 3, 45, 67)).shape == (1, 19, 45, 67)


def test_fcn_upsamplers_start_bilinear():
    up = compact_fcn8s().up2_fr
    flat = up(torch.ones(1, 19, 5, 5))
    assert flat.shape == (1, 19, 10, 10)
    torch.testing.assert_close(flat[..., 1:-1, 1:-1], torch.ones(1, 19, 8, 8))


def test_bad_images_are_rejected():
    model = compact_fcn8s()
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        model(torch.rand(3, 32, 32))
    with pytest.raises(TypeError, match="float"):
        model(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    torch.testing.assert_close(
        Normalize((0.5,) * 3, (0.5,) * 3)(torch.ones(1, 3, 2, 2)), torch.ones(1, 3, 2, 2)
    )


class TinyNet(torch.nn.Module):
    """A float64 convolution, returning torchvision's {"out": logits}."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1).double()

    def forward(self, x):
        return {"out": self.conv(x)}


@pytest.mark.parametrize("fusion", ["mean", "max"])
def test_multiscale_shape_and_gradcheck(fusion):
    model = MultiScale(TinyNet(), scales=(0.5, 1.0, 1.5), fusion=fusion)
    x = torch.rand(1, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    assert model(x).shape == (1, 4, 5, 6)
    assert torch.autograd.gradcheck(model, (x,), eps=1e-6, atol=1e-5, fast_mode=True)


def test_multiscale_fusion():
    net = TinyNet()
    x = torch.rand(2, 3, 8, 10, dtype=torch.float64)
    torch.testing.assert_close(MultiScale(net, scales=(1.0,))(x), net(x)["out"])
    mean = MultiScale(net, (0.5, 1.0))(x)
    top = MultiScale(net, (0.5, 1.0), "max")(x)
    assert (top >= mean - 1e-12).all()
    with pytest.raises(ValueError, match="fusion"):
        MultiScale(net, fusion="sum")
    with pytest.raises(ValueError, match="scales"):
        MultiScale(net, scales=(0.0, 1.0))


@pytest.fixture(scope="module")
def val_subset():
    data = SynthCity("val", SUBSET)
    images, labels = zip(*(data[i] for i in range(SUBSET)), strict=True)
    return torch.stack(images), torch.stack(labels)


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_shipped_weights_reach_recorded_miou(name, val_subset):
    path = WEIGHTS_DIR / SHIPPED[name].file
    assert path.stat().st_size <= 10 * 2**20
    model = load(name)
    assert not model.training
    images, labels = val_subset
    with torch.no_grad():
        pred = torch.cat([model(images[i : i + 4]).argmax(1) for i in range(0, SUBSET, 4)])
    conf = metrics.confusion_matrix(pred, labels, 19)
    miou, person = metrics.mean_iou(conf), float(metrics.per_class_iou(conf)[PERSON])
    recorded_miou, recorded_person = RECORDED[name]
    assert miou == pytest.approx(recorded_miou, abs=0.005)
    assert person == pytest.approx(recorded_person, abs=0.005)


def test_weight_file_errors(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load(tmp_path / "missing.safetensors")
    with pytest.raises(ModelError, match="unknown model 'fcn8s-imagenet'"):
        load("fcn8s-imagenet")
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(ModelError, match="not a readable safetensors"):
        load(corrupt)
    good = tmp_path / "good.safetensors"
    save_weights(compact_fcn8s(5), good, "fcn8s-compact")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:-1000])
    with pytest.raises(ModelError, match="not a readable safetensors"):
        load(truncated)
    wrong = tmp_path / "wrong.safetensors"
    save_weights(compact_fcn8s(5), wrong, "deeplab-lite")
    with pytest.raises(ModelError, match="does not fit deeplab-lite"):
        load(wrong)


def test_save_load_round_trip(tmp_path):
    model = DeepLabLite(6).eval()
    save_weights(model, tmp_path / "m.safetensors", "deeplab-lite", note="test")
    loaded = load(str(tmp_path / "m.safetensors"))
    x = torch.rand(1, 3, 20, 30)
    torch.testing.assert_close(loaded(x), model(x))
