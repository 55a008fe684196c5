"""The Places365 ResNet-50 converter, on checkpoints in the authors' format made here: a dict with
'state_dict' (torchvision's ResNet-50 names behind 'module.', no num_batches_tracked, as PyTorch
0.2 saved it), 'epoch', 'arch' and 'best_prec1', written by torch.save (legacy and zip formats)."""

from pathlib import Path

import pytest
import torch
import torchvision
from torchvision.transforms import v2

from fastadv.models import CLASSIFICATION, SEGMENTATION, ModelError, describe, load
from fastadv.models.places365 import CATEGORIES, convert, main, read_categories


@pytest.fixture(scope="module")
def places_net():
    """torchvision's ResNet-50 with 365 outputs and random weights, BatchNorm statistics too."""
    torch.manual_seed(0)
    net = torchvision.models.resnet50(num_classes=365).eval()
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return net


def authors_checkpoint(net, path: Path, legacy: bool = True, **fields) -> Path:
    state = {f"module.{k}": v for k, v in net.state_dict().items() if "num_batches" not in k}
    checkpoint = {"epoch": 90, "arch": "resnet50", "state_dict": state, "best_prec1": 54.65}
    checkpoint.update(fields)
    torch.save(checkpoint, path, _use_new_zipfile_serialization=not legacy)
    return path


def test_shipped_class_names():
    names = read_categories()
    assert len(names) == 365
    assert names[:2] == ["airfield", "airplane_cabin"] and names[-1] == "zen_garden"
    assert "apartment_building/outdoor" in names and "street" in names
    assert "CSAILVision/places365" in CATEGORIES.read_text().splitlines()[1]


@pytest.mark.slow
@pytest.mark.parametrize("legacy", [True, False])
def test_converted_model_is_the_checkpoints_network(places_net, tmp_path, legacy):
    """The converted file loads as a classifier with the Places365 names, and its logits are
    torchvision's ResNet-50 on the authors' preprocessing (shorter side 256, centre 224)."""
    src = authors_checkpoint(places_net, tmp_path / "resnet50_places365.pth.tar", legacy)
    dst = convert(src, tmp_path / "places.safetensors")
    model = load(dst, task=CLASSIFICATION)
    info = describe(model)
    assert info.name == "places.safetensors" and info.task == CLASSIFICATION
    assert info.classes == tuple(read_categories()) and not info.synthetic
    assert info.metadata["epoch"] == "90" and info.metadata["best_prec1"] == "54.65"
    authors = v2.Compose([v2.Resize(256), v2.CenterCrop(224), v2.Normalize(
        [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])  # fmt: skip
    x = torch.rand(1, 3, 240, 320, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model(x), places_net(authors(x)), atol=1e-4, rtol=1e-4)
    with pytest.raises(ModelError, match="is a classification model; a segmentation model"):
        load(dst, task=SEGMENTATION)


def test_pickled_code_is_never_run(places_net, tmp_path):
    class Payload:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "code-ran",))

    src = authors_checkpoint(places_net, tmp_path / "evil.pth.tar", extra=Payload())
    with pytest.raises(ModelError, match="holds more than tensors and plain values"):
        convert(src, tmp_path / "places.safetensors")
    assert not (tmp_path / "code-ran").exists() and not (tmp_path / "places.safetensors").exists()
    torch.load(src, weights_only=False)  # what full unpickling would have done
    assert (tmp_path / "code-ran").exists()


def test_foreign_checkpoints_are_refused(places_net, tmp_path):
    out = tmp_path / "out.safetensors"
    resnet18 = authors_checkpoint(places_net, tmp_path / "r18.pth.tar", arch="resnet18")
    with pytest.raises(ModelError, match="holds a resnet18; the converter takes the ResNet-50"):
        convert(resnet18, out)
    bare = tmp_path / "bare.pth"
    torch.save(places_net.state_dict(), bare)
    with pytest.raises(ModelError, match="has no 'state_dict'; not a Places365 checkpoint"):
        convert(bare, out)
    cut = tmp_path / "cut.pth.tar"
    cut.write_bytes(authors_checkpoint(places_net, tmp_path / "whole.pth.tar").read_bytes()[:9999])
    with pytest.raises(ModelError, match="is not readable"):
        convert(cut, out)
    with pytest.raises(ModelError, match="does not exist"):
        convert(tmp_path / "missing.pth.tar", out)
    assert not out.exists()


def test_categories_option_and_a_mismatch(places_net, tmp_path):
    src = authors_checkpoint(places_net, tmp_path / "ckpt.pth.tar")
    ten = tmp_path / "ten.txt"
    ten.write_text("".join(f"/c/class{i} {i}\n" for i in range(10)))
    with pytest.raises(ModelError, match="does not fit a ResNet-50 of 10 classes: shape: "
                       r"fc.weight is \[365, 2048\], not \[10, 2048\]"):  # fmt: skip
        convert(src, tmp_path / "out.safetensors", ten)
    plain = tmp_path / "plain.txt"
    plain.write_text("".join(f"s{i}\n" for i in range(365)))  # names alone, no indices
    names = describe(load(convert(src, tmp_path / "out.safetensors", plain))).classes
    assert names[:2] == ("s0", "s1")
    shuffled = tmp_path / "shuffled.txt"
    shuffled.write_text("/a/x 1\n/b/y 0\n")
    with pytest.raises(ModelError, match="class 0 is numbered 1"):
        read_categories(shuffled)


def test_command_line(places_net, tmp_path, capsys):
    src = authors_checkpoint(places_net, tmp_path / "resnet50_places365.pth.tar")
    out = tmp_path / "places.safetensors"
    assert main([str(src), str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    written = out.stat().st_mtime_ns
    assert main([str(src), str(out)]) == 2  # nothing overwritten without --force
    err = capsys.readouterr().err
    assert err == f"fastadv: output {out} exists; give another path or overwrite it (--force)\n"
    assert out.stat().st_mtime_ns == written
    assert main([str(src), str(out), "--force"]) == 0
    assert main([str(src), str(tmp_path / "places.pth")]) == 2
    assert "must end in .safetensors" in capsys.readouterr().err
