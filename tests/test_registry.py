"""fastadv.models.load: every shipped network, weight files, torchvision's networks through a
temporary torch hub cache (the real architectures with random weights; nothing is downloaded),
a user's factory, the folded-in preprocessing against torchvision's own transforms, and the
one-line errors."""

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torchvision.models import get_model_builder, get_model_weights

from fastadv.attacks import fgsm
from fastadv.models import (
    CLASSIFICATION,
    SCORES,
    SEGMENTATION,
    STAGE,
    ModelError,
    ModelInfo,
    Preprocess,
    SceneNet,
    compact_fcn8s,
    describe,
    load,
    save_weights,
    shipped_names,
)
from fastadv.models import mindseye as me
from fastadv.models.info import attach
from fastadv.models.weights import WEIGHTS_DIR


@pytest.fixture(autouse=True)
def hub(tmp_path, monkeypatch) -> Path:
    """An empty torch hub cache of the test's own: the user's is neither read nor written."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


def cache_random_weights(name: str, hub: Path, **arch):
    """(network, weights): torchvision's `name` with random weights, saved in the hub cache
    under the file name of its DEFAULT weights' URL, as a download would have left it."""
    weights = get_model_weights(name).DEFAULT
    torch.manual_seed(0)
    net = get_model_builder(name)(
        weights=None, num_classes=len(weights.meta["categories"]), **arch
    ).eval()
    hub.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), hub / weights.url.rsplit("/", 1)[1])
    return net, weights


# ---- shipped networks -------------------------------------------------------------------


EXPECTED = {  # name: (class, task, number of classes or None)
    "fcn8s-synthcity": ("FCN8s", SEGMENTATION, 19),
    "deeplab-synthcity": ("DeepLabLite", SEGMENTATION, 19),
    "scene-cnn": ("SceneNet", CLASSIFICATION, 12),
    "mindseye-direct": ("DirectClassifier", CLASSIFICATION, 4),
    "mindseye-direct-params": ("DirectClassifier", CLASSIFICATION, 4),
    "mindseye-estimator": ("Estimator", STAGE, None),
    "mindseye-projector": ("Projector", STAGE, None),
    "mindseye-comparator": ("Comparator", STAGE, None),
    "mindseye-triple": ("TripleStaged", SCORES, 3),
}


def test_every_shipped_network_loads_with_its_description():
    assert shipped_names() == list(EXPECTED)
    for name, (cls, task, classes) in EXPECTED.items():
        model = load(name)
        info = describe(model)
        assert type(model).__name__ == cls and not model.training, name
        assert info.name == name and info.task == task and info.synthetic, name
        assert (len(info.classes) if info.classes else None) == classes, name
    assert describe(load("fcn8s-synthcity")).classes[11] == "person"
    assert describe(load("scene-cnn")).classes[0] == "street"
    assert '"miou": 0.8919' in describe(load("fcn8s-synthcity")).metadata["val_8"]


def test_triple_staged_is_its_three_shipped_stages():
    triple = load("mindseye-triple")
    for stage in ("estimator", "projector", "comparator"):
        single = load(f"mindseye-{stage}").state_dict()
        for key, value in getattr(triple, stage).state_dict().items():
            assert torch.equal(value, single[key])
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        assert triple(x).shape == (2, 3)


def test_weights_dir_holds_retrained_shipped_weights(tmp_path):
    folder = tmp_path / "retrained"
    folder.mkdir()
    retrained = me.Comparator()
    save_weights(retrained, me.weights_path("comparator", folder), "mindseye-comparator")
    loaded = load("mindseye-comparator", weights_dir=folder)
    assert torch.equal(loaded.net[0].weight, retrained.net[0].weight)
    assert describe(loaded).source == str(folder / "mindseye-comparator.safetensors")
    with pytest.raises(ModelError, match=r"shipped model 'mindseye-projector': .* does not exist"):
        load("mindseye-projector", weights_dir=folder)
    # a file of another network under a shipped name is refused, not loaded into the wrong one
    save_weights(me.Comparator(), folder / "scene-cnn.safetensors", "mindseye-comparator")
    with pytest.raises(ModelError, match="holds a mindseye-comparator model, not the expected"):
        load("scene-cnn", weights_dir=folder)


def test_task_is_checked(tmp_path):
    path = tmp_path / "seg.safetensors"
    save_weights(compact_fcn8s(3), path, "fcn8s-compact")
    with pytest.raises(ModelError, match=r"'.*seg\.safetensors' is a segmentation model; a "
                       "classification model is needed here"):  # fmt: skip
        load(path, task=CLASSIFICATION)
    with pytest.raises(ModelError, match="'scene-cnn' is a classification model"):
        load("scene-cnn", task=SEGMENTATION)
    assert describe(load(path, task=SEGMENTATION)).task == SEGMENTATION


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("fcn8s-imagenet", "unknown model 'fcn8s-imagenet': give a shipped name (fcn8s-synthcity"),
        ("nowhere/model.safetensors", "model file 'nowhere/model.safetensors' does not exist"),
        ("model.pth", "model file 'model.pth' does not exist"),
    ],
)
def test_unknown_names_list_the_valid_forms(name, message):
    with pytest.raises(ModelError) as error:
        load(name)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)
    if name == "fcn8s-imagenet":
        for form in ("scene-cnn", "mindseye-triple", ".safetensors", "torchvision:", "callable"):
            assert form in str(error.value)


def test_bad_files_are_refused_in_one_line(tmp_path):
    good = tmp_path / "good.safetensors"
    save_weights(compact_fcn8s(3), good, "fcn8s-compact")
    pickled = tmp_path / "model.pt"
    torch.save(compact_fcn8s(3).state_dict(), pickled)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:5000])
    renamed = tmp_path / "renamed.safetensors"
    renamed.write_bytes(pickled.read_bytes())
    for path, message in [
        (pickled, "is not a .safetensors file; pickled checkpoints are never loaded"),
        (truncated, "is not a readable safetensors file"),
        (renamed, "is not a readable safetensors file"),
    ]:
        with pytest.raises(ModelError, match=message) as error:
            load(path)
        assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_a_state_dict_that_does_not_fit_says_what_differs(tmp_path):
    from safetensors.torch import save_file

    state = compact_fcn8s(3).state_dict()
    state["extra.weight"] = torch.zeros(1)
    del state["up8.weight"]
    path = tmp_path / "edited.safetensors"
    save_file(state, str(path), metadata={"arch": "fcn8s-compact"})
    with pytest.raises(ModelError) as error:
        load(path)
    assert str(error.value) == (
        f"{path} does not fit fcn8s-compact: missing up8.weight; unexpected extra.weight"
    )
    save_file({"x": torch.zeros(1)}, str(path), metadata={"arch": "scenenet"})
    with pytest.raises(ModelError, match="is not a scenenet state_dict: holds none of the tensors"):
        load(path)
    scene = {k: v.contiguous() for k, v in SceneNet().state_dict().items()}
    save_file(scene, str(path), metadata={"arch": "scenenet", "input_size": "12x"})
    with pytest.raises(ModelError, match="metadata 'input_size' is not JSON"):
        load(path)
    save_file({"x": torch.zeros(1)}, str(path), metadata={"arch": "vgg19"})
    with pytest.raises(ModelError, match="unknown architecture 'vgg19'"):
        load(path)


def test_shipped_files_are_untouched():
    """The registry reads the shipped weights as they were committed; nothing writes there."""
    before = {p.name: p.stat().st_mtime_ns for p in WEIGHTS_DIR.glob("*.safetensors")}
    for name in shipped_names():
        load(name)
    assert before == {p.name: p.stat().st_mtime_ns for p in WEIGHTS_DIR.glob("*.safetensors")}
    assert not list(WEIGHTS_DIR.glob("*.partial"))


# ---- torchvision's networks ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "shapes"),
    [
        ("resnet50", [(2, 3, 150, 200), (1, 3, 300, 180), (1, 3, 224, 224)]),  # 232, bilinear
        ("efficientnet_b0", [(1, 3, 150, 200)]),  # bicubic, resize 256, crop 224
        ("vit_b_16", [(1, 3, 100, 90)]),  # upsizing
    ],
)
def test_preprocess_equals_torchvision_transforms(name, shapes):
    """The folded-in preprocessing computes what the weights' own transforms compute."""
    from fastadv.models.zoo import _preprocess

    transform = get_model_weights(name).DEFAULT.transforms()
    preprocess = _preprocess(transform)
    for shape in shapes:
        x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(preprocess(x), transform(x), atol=1e-5, rtol=1e-5)
    segmentation = get_model_weights("fcn_resnet50").DEFAULT.transforms()
    x = torch.rand(1, 3, 40, 60)
    torch.testing.assert_close(_preprocess(segmentation)(x), segmentation(x))


def test_preprocess_is_differentiable_and_checks_its_sizes():
    x = torch.rand(1, 3, 30, 40, dtype=torch.float64, requires_grad=True)
    preprocess = Preprocess(resize_size=20, crop_size=16)
    assert preprocess(x).shape == (1, 3, 16, 16)
    assert torch.autograd.gradcheck(preprocess, (x,), fast_mode=True)
    with pytest.raises(ValueError, match="crop_size"):
        Preprocess(resize_size=20, crop_size=24)


def test_torchvision_classifier_from_the_cache(hub):
    net, weights = cache_random_weights("mobilenet_v3_small", hub)
    model = load("torchvision:mobilenet_v3_small", download=False)
    info = describe(model)
    assert info == ModelInfo(
        name="torchvision:mobilenet_v3_small (IMAGENET1K_V1)",
        task=CLASSIFICATION,
        classes=tuple(weights.meta["categories"]),
        synthetic=False,
        source=str(hub / "mobilenet_v3_small-047dcff4.pth"),
        metadata={"weights": str(weights), "url": weights.url},
    )
    assert len(info.classes) == 1000 and info.classes[1] == "goldfish"
    x = torch.rand(2, 3, 150, 200, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model(x), net(weights.transforms()(x)))


def test_attacks_run_in_pixel_space_on_a_torchvision_classifier(hub):
    """eps bounds the change of the photo's own pixels; the centre crop the network sees is
    where the gradient, and so the perturbation, lands."""
    cache_random_weights("mobilenet_v3_small", hub)
    model = load("torchvision:mobilenet_v3_small", download=False)
    x = torch.rand(1, 3, 120, 200, generator=torch.Generator().manual_seed(2))
    adv = fgsm(model, x, eps=4 / 255).adv
    assert 0 <= adv.min() and adv.max() <= 1
    delta = (adv - x).abs()
    assert delta.max() <= 4 / 255 + 1e-6
    # resized to 256 x 426, the 224 crop spans columns 101..325, i.e. about 47..153 of 200
    assert delta[..., :40].max() == 0 and delta[..., 160:].max() == 0
    assert delta[..., 60:140].max() > 0


@pytest.mark.slow
def test_torchvision_segmentation_from_the_cache(hub):
    """deeplabv3 with its auxiliary head in the weights: logits at the input's size, equal to
    torchvision's "out" on its own transforms, the auxiliary head dropped."""
    net, weights = cache_random_weights(
        "deeplabv3_mobilenet_v3_large", hub, aux_loss=True, weights_backbone=None
    )
    model = load("torchvision:deeplabv3_mobilenet_v3_large", download=False)
    info = describe(model)
    assert info.task == SEGMENTATION and info.classes == tuple(weights.meta["categories"])
    assert info.classes.index("person") == 15  # VOC's label set
    assert model.net.aux_classifier is None and net.aux_classifier is not None
    x = torch.rand(1, 3, 40, 52, generator=torch.Generator().manual_seed(3), requires_grad=True)
    logits = model(x)
    assert isinstance(logits, torch.Tensor) and logits.shape == (1, 21, 40, 52)
    with torch.no_grad():
        out = net(weights.transforms()(x))["out"]
        want = F.interpolate(out, size=(40, 52), mode="bilinear", align_corners=False)
    torch.testing.assert_close(logits.detach(), want, atol=1e-4, rtol=1e-4)
    logits[:, 15].sum().backward()
    assert x.grad.abs().sum() > 0 and x.grad.isfinite().all()


def test_missing_weights_name_the_file_and_the_url(hub):
    url = get_model_weights("mobilenet_v3_small").DEFAULT.url
    with pytest.raises(ModelError) as error:
        load("torchvision:mobilenet_v3_small", download=False)
    message = str(error.value)
    assert message == (
        f"'torchvision:mobilenet_v3_small': weights file {hub / url.rsplit('/', 1)[1]} is "
        f"missing; download {url} there"
    )


def test_a_failed_download_names_the_file_and_the_url(hub, monkeypatch):
    """A download that cannot connect (a closed local port, not the internet)."""
    weights = get_model_weights("mobilenet_v3_small").DEFAULT
    unreachable = "http://127.0.0.1:9/models/mobilenet_v3_small-047dcff4.pth"
    monkeypatch.setattr(weights.value, "url", unreachable)
    with pytest.raises(ModelError) as error:
        load("torchvision:mobilenet_v3_small")
    message = str(error.value)
    assert "\n" not in message and "could not be downloaded" in message
    assert str(hub / "mobilenet_v3_small-047dcff4.pth") in message and unreachable in message
    assert not list(hub.glob("*.pth"))  # no partial file left behind


class Payload:
    """Unpickled in full, creates a file: the proof that a cache file ran code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_cache_files_are_checked_before_torchvision_unpickles_them(hub, tmp_path):
    _, weights = cache_random_weights("mobilenet_v3_small", hub)
    path = hub / weights.url.rsplit("/", 1)[1]
    marker = tmp_path / "code-ran"
    torch.save({"features.0.0.weight": Payload(marker)}, path)
    with pytest.raises(ModelError, match="holds more than tensors, so it is not loaded"):
        load("torchvision:mobilenet_v3_small", download=False)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # what full unpickling would have done
    assert marker.exists()
    path.write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(ModelError, match=r"is not a readable checkpoint \(.*\); delete it"):
        load("torchvision:mobilenet_v3_small", download=False)


def test_torchvision_names_and_weights_are_checked():
    with pytest.raises(ModelError, match="no classifier or segmentation model 'resnet5'; did "
                       "you mean resnet50"):  # fmt: skip
        load("torchvision:resnet5")
    with pytest.raises(ModelError, match="resnet50 has no weights 'IMAGENET2K'; choose from "
                       "IMAGENET1K_V1, IMAGENET1K_V2"):  # fmt: skip
        load("torchvision:resnet50.IMAGENET2K")
    with pytest.raises(ModelError, match=r"resnet50-0676ba61\.pth is missing"):
        load("torchvision:resnet50.IMAGENET1K_V1", download=False)  # the named weights' file


def test_without_torchvision_one_line_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import torchvision fails
    with pytest.raises(
        ModelError, match=r"needs torchvision .*pip install 'fastadv\[torchvision\]'"
    ):
        load("torchvision:resnet50")


# ---- a user's own factory -------------------------------------------------------------------

FACTORY = """
import torch
from fastadv.models import CLASSIFICATION, ModelInfo
from fastadv.models.info import attach


def plain():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2))


def described():
    return attach(plain(), ModelInfo("two-way", CLASSIFICATION, ("cat", "dog")))


def not_a_module():
    return "a model"
"""


@pytest.fixture
def factory_module(tmp_path, monkeypatch):
    (tmp_path / "user_models.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "user_models"
    sys.modules.pop("user_models", None)


def test_a_users_factory(factory_module):
    model = load(f"{factory_module}:plain")
    assert isinstance(model, torch.nn.Sequential) and not model.training
    assert describe(model) == ModelInfo(
        "user_models:plain", None, source="user_models:plain"
    )  # task and classes unknown
    info = describe(load(f"{factory_module}:described", task=CLASSIFICATION))
    assert info.name == "two-way" and info.classes == ("cat", "dog")
    with pytest.raises(ModelError, match="'user_models:described' is a classification model"):
        load(f"{factory_module}:described", task=SEGMENTATION)
    with pytest.raises(ModelError, match=r"returned a str, not a torch\.nn\.Module"):
        load(f"{factory_module}:not_a_module")
    with pytest.raises(ModelError, match="user_models has no callable 'missing'"):
        load(f"{factory_module}:missing")
    with pytest.raises(ModelError, match=r"cannot import no_such_package\.models .*PYTHONPATH"):
        load("no_such_package.models:build")


def test_describe_of_any_module():
    info = describe(torch.nn.Identity())
    assert info.name == "Identity" and info.task is None and info.classes is None
    model = attach(torch.nn.Identity(), ModelInfo("id", CLASSIFICATION, ("a",)))
    assert describe(model).classes == ("a",)
