"""`fastadv hide` and `fastadv protect` on real photo files (scikit-image's photos, written here
as PNG and JPEG with real metadata) with every form of --model: the shipped models, torchvision
architectures with random weights in a temporary hub cache, a converted Places365-format
checkpoint and a user's factory; the working resolution, the memory check and every user
mistake as one line with exit code 2, before any work."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import ExifTags, Image, ImageCms
from skimage import data
from test_registry import cache_random_weights

import fastadv
from fastadv.cli import main
from fastadv.cli.memory import AttackMemory, host_available, saved_bytes
from fastadv.errors import UsageError
from fastadv.models import compact_fcn8s, describe, load, save_weights

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
ORIENTATION = ExifTags.Base.Orientation
NETS = "_user_nets"  # tests/_user_nets.py: a user's factories for --model package.module:callable


@pytest.fixture(autouse=True)
def hub(tmp_path, monkeypatch) -> Path:
    """An empty torch hub cache of the test's own: the user's is neither read nor written."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


def save(array: np.ndarray, path: Path, **options) -> Path:
    Image.fromarray(array).save(path, **options)
    return path


def shrunk(name: str, size: tuple[int, int]) -> np.ndarray:
    """scikit-image's photo `name` resized to (width, height)."""
    return np.asarray(Image.fromarray(getattr(data, name)()).resize(size, Image.LANCZOS))


@pytest.fixture
def astronaut(tmp_path) -> Path:
    return save(data.astronaut(), tmp_path / "astronaut.png")


def one_line_error(capsys) -> str:
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith("fastadv: "), err
    assert "Traceback" not in err and out == ""
    return err


# ---- photos in and out -------------------------------------------------------------------


def test_protect_keeps_what_a_photo_tool_keeps(tmp_path, capsys):
    """16-bit greyscale stays 16-bit greyscale, alpha is kept untouched, a JPEG's EXIF
    orientation is applied (the output upright, without the tag) and its ICC profile and EXIF
    kept; every output at its photo's full size, attacked at --max-side."""
    grey16 = save((shrunk("camera", (96, 80)).astype(np.uint16) * 257), tmp_path / "grey16.png")
    rgba = np.dstack([shrunk("coffee", (90, 60)), np.linspace(0, 255, 90 * 60).reshape(60, 90)])
    rgba = save(rgba.astype(np.uint8), tmp_path / "rgba.png")
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # stored turned a quarter: shown 60 wide and 80 high
    exif[ExifTags.Base.Make] = "fastadv test camera"
    turned = save(shrunk("chelsea", (80, 60)), tmp_path / "turned.jpg", exif=exif, icc_profile=SRGB)
    out = tmp_path / "out"
    argv = ["protect", str(grey16), str(rgba), str(turned), "--steps", "3", "--max-side", "48"]
    assert main([*argv, "--out", str(out)]) in (0, 1)  # the verdict is the model's
    printed = capsys.readouterr().out

    with Image.open(out / "grey16_protected.png") as image:
        assert image.mode == "I;16" and image.size == (96, 80)
        deep = np.asarray(image)
    assert (deep % 257 != 0).any() or (deep != np.asarray(Image.open(grey16))).any()
    with Image.open(out / "rgba_protected.png") as image:
        assert image.mode == "RGBA" and image.size == (90, 60)
        assert (np.asarray(image)[..., 3] == np.asarray(Image.open(rgba))[..., 3]).all()
    with Image.open(out / "turned_protected.png") as image:
        assert image.size == (60, 80)  # upright
        assert image.info.get("icc_profile") == SRGB
        kept = image.getexif()
        assert ORIENTATION not in kept and kept[ExifTags.Base.Make] == "fastadv test camera"
    for row in ("96x80", "90x60", "60x80", "48x40", "48x32", "36x48"):
        assert row in printed  # each photo's size and the size its attack ran at


def test_jpeg_output_is_flagged_and_alpha_refused(astronaut, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["protect", str(astronaut), "--steps", "1", "--max-side", "32", "--format", "jpg"]
    main([*argv, "--out", str(out)])
    assert "JPEG is lossy" in capsys.readouterr().err
    assert Image.open(out / "astronaut_protected.jpg").size == (512, 512)
    rgba = save(np.dstack([data.astronaut()[:40, :40], np.full((40, 40), 200, np.uint8)]),
                tmp_path / "rgba.png")  # fmt: skip
    assert main([*argv[:1], str(rgba), *argv[2:], "--out", str(tmp_path / "o2")]) == 2
    assert "--format jpg" in one_line_error(capsys) and not (tmp_path / "o2").exists()


# ---- the user's models ---------------------------------------------------------------------


def test_hide_with_the_shipped_model_names_it_and_points_to_photo_models(astronaut, capsys):
    out = astronaut.parent / "out"
    code = main(["hide", str(astronaut), "--eps", "4", "--max-side", "64", "--out", str(out)])
    printed = capsys.readouterr().out
    summary = printed.splitlines()[-1]
    assert "model: fcn8s-synthcity (trained on synthetic scenes" in summary
    assert "give --model, e.g. torchvision:deeplabv3_resnet50" in summary
    assert "512x512" in printed and "64x64" in printed
    # the shipped model sees a "person" in the flag; the verdict is on the file written
    assert code in (0, 1) and Image.open(out / "astronaut_hidden.png").size == (512, 512)


def test_classes_by_the_models_own_names(hub):
    """'person' is 11 of the shipped models' Cityscapes classes and 15 of torchvision's VOC
    segmentation weights; an unknown name lists the model's own."""
    from fastadv.cli.hide import class_ids

    cache_random_weights("lraspp_mobilenet_v3_large", hub, weights_backbone=None)
    voc = describe(load("torchvision:lraspp_mobilenet_v3_large", download=False)).classes
    assert class_ids(["person"], voc, len(voc), "v") == [15]
    assert class_ids(["person"], describe(load("fcn8s-synthcity")).classes, 19, "c") == [11]


@pytest.mark.slow
def test_hide_with_a_torchvision_segmentation_model(astronaut, hub, capsys):
    """torchvision's LR-ASPP (random weights, its classifier's biases zeroed so that the
    prediction varies over the photo) from the hub cache, --classes by its VOC name."""
    net, _ = cache_random_weights("lraspp_mobilenet_v3_large", hub, weights_backbone=None)
    with torch.no_grad():
        net.classifier.low_classifier.bias.zero_()
        net.classifier.high_classifier.bias.zero_()
    torch.save(net.state_dict(), next(hub.glob("lraspp*.pth")))
    model = load("torchvision:lraspp_mobilenet_v3_large", download=False)
    x = torch.nn.functional.interpolate(
        torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None] / 255.0, size=(40, 40),
        mode="area",
    )  # fmt: skip
    with torch.no_grad():
        counts = torch.bincount(model(x).argmax(1).flatten(), minlength=21)
    assert (counts > 0).sum() >= 2  # something to hide, and another class to take over
    name = describe(model).classes[int(counts.argmax())]
    out = astronaut.parent / "out"
    argv = ["hide", str(astronaut), "--model", "torchvision:lraspp_mobilenet_v3_large"]
    argv += ["--classes", name, "--eps", "2", "--max-side", "40", "--out", str(out)]
    code = main(argv)
    printed = capsys.readouterr().out
    assert printed.splitlines()[-1].endswith(
        "model: torchvision:lraspp_mobilenet_v3_large (COCO_WITH_VOC_LABELS_V1)"
    )
    assert "of those pixels hidden" in printed and "%" in printed.splitlines()[1]
    assert code in (0, 1) and Image.open(out / "astronaut_hidden.png").size == (512, 512)


def test_protect_with_a_torchvision_classifier(astronaut, hub, capsys):
    cache_random_weights("mobilenet_v3_small", hub)
    out = astronaut.parent / "out"
    argv = ["protect", str(astronaut), "--model", "torchvision:mobilenet_v3_small", "--steps", "1"]
    code = main([*argv, "--max-side", "96", "--out", str(out)])
    printed = capsys.readouterr().out
    summary = printed.splitlines()[-1]
    assert summary.endswith("model: torchvision:mobilenet_v3_small (IMAGENET1K_V1)")
    assert "synthetic" not in printed
    assert code in (0, 1) and Image.open(out / "astronaut_protected.png").size == (512, 512)


@pytest.mark.slow
def test_places365_checkpoint_converted_then_used(astronaut, tmp_path, capsys):
    """`fastadv convert-places365` on a checkpoint in the authors' format (random weights),
    then `fastadv protect --model` with the file written, and its 365 class names."""
    import torchvision
    from test_places365 import authors_checkpoint

    torch.manual_seed(0)
    src = authors_checkpoint(torchvision.models.resnet50(num_classes=365), tmp_path / "r.pth.tar")
    places = tmp_path / "places.safetensors"
    assert main(["convert-places365", str(src), str(places)]) == 0
    assert f"wrote {places}" in capsys.readouterr().out
    assert main(["convert-places365", str(src), str(places)]) == 2  # never overwritten
    assert "exists" in one_line_error(capsys)
    argv = ["protect", str(astronaut), "--model", str(places), "--steps", "2"]
    code = main([*argv, "--max-side", "64", "--out", str(tmp_path / "out")])
    printed = capsys.readouterr().out
    assert printed.splitlines()[-1].endswith("model: places.safetensors")
    classes = describe(load(places)).classes
    assert any(f" {name[:10]}" in printed for name in classes)  # labels by Places365 name
    assert code in (0, 1)


def test_hide_with_a_users_factory_by_class_name(tmp_path, capsys):
    """A factory's own class names; the red pixels hidden, reported against --min-hidden."""
    pixels = np.zeros((24, 24, 3), np.uint8)
    pixels[:, :12] = (200, 150, 150)  # reddish: "red", within reach of eps 40
    pixels[:, 12:] = (40, 40, 200)
    photo = save(pixels, tmp_path / "halves.png")
    argv = ["hide", str(photo), "--model", f"{NETS}:three_classes", "--classes", "red"]
    code = main([*argv, "--eps", "40", "--out", str(tmp_path / "out")])
    printed = capsys.readouterr().out
    assert code == 0 and "100.0%" in printed
    assert "1 of 1 images that show red have at least 90% of those pixels hidden" in printed
    assert printed.splitlines()[-1].endswith("model: rgb-namer")
    argv = ["hide", str(photo), "--model", f"{NETS}:three_classes", "--classes", "red"]
    code = main([*argv, "--eps", "1", "--min-hidden", "1", "--out", str(tmp_path / "o2")])
    assert code == 1 and "(short)" in capsys.readouterr().out


def test_nothing_or_everything_to_hide_is_said_and_nothing_written(tmp_path, capsys):
    blue = save(np.full((16, 16, 3), (20, 20, 220), np.uint8), tmp_path / "blue.png")
    argv = ["hide", str(blue), "--model", f"{NETS}:three_classes", "--classes", "red"]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "none: the model sees no red to hide" in printed
    assert "1 show no red (nothing written)" in printed
    assert not list((tmp_path / "out").glob("blue_hidden*"))
    red = save(np.full((16, 16, 3), (220, 20, 20), np.uint8), tmp_path / "red.png")
    argv = ["hide", str(red), "--model", f"{NETS}:three_classes", "--classes", "red"]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 1  # nothing can be hidden
    assert "every pixel is red: no other class can take over" in capsys.readouterr().out


def test_eps_below_one_is_warned_as_pixel_units(astronaut, capsys):
    argv = ["hide", str(astronaut), "--model", f"{NETS}:three_classes", "--classes", "red"]
    main([*argv, "--eps", "0.03", "--max-side", "16", "--out", str(astronaut.parent / "out")])
    err = capsys.readouterr().err
    assert "--eps 0.03 is in pixel units" in err and "give --eps 7.65" in err


def test_progress_bar_counts_the_models_passes(astronaut, monkeypatch, capsys):
    from fastadv.cli import photo_jobs

    monkeypatch.setattr(photo_jobs, "PROGRESS_DELAY", 0)  # shown at once, not after 2 s
    argv = ["hide", str(astronaut), "--model", f"{NETS}:three_classes", "--classes", "red"]
    main([*argv, "--eps", "8", "--max-side", "16", "--out", str(astronaut.parent / "out")])
    err = capsys.readouterr().err
    assert "astronaut.png: " in err and "/11 [" in err  # kurakin_steps(8) + 1 passes


# ---- large photos and the memory check -----------------------------------------------------


@pytest.fixture(scope="module")
def big_jpeg(tmp_path_factory) -> Path:
    """A 6000x4000 JPEG (smooth, so that it codes fast)."""
    y, x = np.mgrid[0:4000, 0:6000]
    pixels = np.stack([x * 255 // 6000, y * 255 // 4000, (x + y) % 256], -1).astype(np.uint8)
    return save(pixels, tmp_path_factory.mktemp("big") / "big.jpg", quality=90)


def test_a_6000x4000_photo_that_will_not_fit_is_refused_first(big_jpeg, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["hide", str(big_jpeg), "--model", f"{NETS}:huge", "--classes", "0"]
    assert main([*argv, "--max-side", "6000", "--out", str(out)]) == 2
    err = one_line_error(capsys)
    assert "big.jpg: the attack at 6000x4000 needs about" in err and "give --max-side" in err
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's VmHWM")
def test_a_6000x4000_photo_is_attacked_at_the_working_size_in_bounded_memory(big_jpeg, tmp_path):
    """In a process of its own, whose peak resident memory (VmHWM: getrusage's would include
    this test process's, kept across exec) is read at its end: the photo is written at
    6000x4000 after an attack at 64x43, in 1.7 GB at its peak with torch loaded (0.5 GB) and
    the photo's float pixels (0.29 GB); the attack at full size grew to 18.5 GB before it ran
    out (issue 17)."""
    out = tmp_path / "out"
    script = (
        "import runpy, sys\n"
        f"sys.argv = ['fastadv', 'hide', {str(big_jpeg)!r}, '--max-side', '64', '--eps', '2',"
        f" '--out', {str(out)!r}]\n"
        "try:\n    runpy.run_module('fastadv.cli', run_name='__main__')\n"
        "finally:\n"
        "    peak = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
        "    print('peak', peak.split()[1], file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(Path(fastadv.__file__).parents[1])},
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    assert "6000x4000       64x43" in done.stdout
    peak_kb = int(done.stderr.rsplit("peak ", 1)[1].split()[0])
    assert peak_kb * 1024 < 2.2e9, peak_kb
    assert Image.open(out / "big_hidden.png").size == (6000, 4000)


def test_the_meta_count_is_the_real_count():
    """The bytes autograd saves, counted on data-less tensors, are those counted on real ones
    (or a few % more: 4 % on this mobilenet at 56 px), for a network that keeps its input's
    size and one that resizes it (torchvision's mobilenet_v3_small behind a preprocessing,
    random weights)."""
    import torchvision

    from fastadv.models import Preprocess, Preprocessed

    mobilenet = Preprocessed(
        torchvision.models.mobilenet_v3_small().eval(), Preprocess(resize_size=64, crop_size=56),
        dense=False,
    )  # fmt: skip
    for model, size in ((load("fcn8s-synthcity"), (40, 72)), (mobilenet, (90, 60))):
        meta, real = saved_bytes(model, size, "meta"), saved_bytes(model, size, "cpu")
        assert meta[1] == real[1]
        assert real[0] <= meta[0] <= 1.05 * real[0], (meta, real)


def test_a_model_the_meta_device_cannot_run_is_probed_for_real():
    """A model that reads its data: two real probes and their line (exact for a network whose
    activations grow with the image)."""

    class Reads(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)

        def forward(self, x):
            return self.conv(x) * (2.0 if x.mean().item() > 0.5 else 1.0)

    model = Reads()
    memory = AttackMemory(model, "cpu", copies=8)
    estimated = memory.count((300, 200))[0]
    assert not memory._meta and memory.count((300, 200))[1] == (1, 8, 300, 200)
    assert abs(estimated - saved_bytes(model, (300, 200), "cpu")[0]) <= 0.02 * estimated


def test_host_memory_is_read():
    room = host_available()
    assert room is not None and 0 < room <= os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


# ---- every mistake a clear error ----------------------------------------------------------


def unwritable_folder(tmp_path) -> Path:
    """A folder the test cannot write in: read-only permission bits for a user; for root,
    whom permission bits do not stop, sysfs."""
    if os.geteuid() != 0:
        folder = tmp_path / "locked"
        folder.mkdir(mode=0o500)
        return folder
    folder = Path("/sys/kernel")
    try:
        (folder / "fastadv-probe").touch()
    except OSError:
        return folder
    pytest.skip("no folder here that root cannot write")


@pytest.fixture
def wrong_files(tmp_path):
    """A segmentation weight file and a pickled checkpoint, each wrong for protect."""
    seg = tmp_path / "seg.safetensors"
    save_weights(compact_fcn8s(3), seg, "fcn8s-compact", classes=["a", "b", "c"])
    pickled = tmp_path / "model.pth"
    torch.save(compact_fcn8s(3).state_dict(), pickled)
    return seg, pickled


MISTAKES = [  # argv (PHOTO: the photo, OUT: a fresh folder), the argument named
    (["hide", "PHOTO", "--classes", "99"], "--classes 99: fcn8s-synthcity has 19 classes"),
    (["hide", "PHOTO", "--classes", "255"], "--classes 255"),
    (["hide", "PHOTO", "--classes", "people"], "11 person"),
    (["hide", "PHOTO", "--eps", "-5"], "argument --eps: must be a number in (0, 255], got -5"),
    (["hide", "PHOTO", "--eps", "nan"], "argument --eps: must be a number in (0, 255], got nan"),
    (["hide", "PHOTO", "--eps", "0"], "argument --eps"),
    (["hide", "PHOTO", "--min-hidden", "1.5"], "argument --min-hidden"),
    (["hide", "PHOTO", "--max-side", "0"], "argument --max-side"),
    (["hide", "PHOTO", "--model", "nosuch"], "--model: unknown model 'nosuch'"),
    (["hide", "PHOTO", "--model", "nosuch.safetensors"], "--model: model file"),
    (["protect", "PHOTO", "--model", "SEG"], "--model: 'SEG' is a segmentation model"),
    (["protect", "PHOTO", "--model", "PICKLED"], "pickled checkpoints are never loaded"),
    (["hide", "PHOTO", "--model", "scene-cnn"], "--model: 'scene-cnn' is a classification"),
    (["hide", "PHOTO", "--model", f"{NETS}:unnamed"], "names no classes; give ids 0 to 1"),
    (["hide", "PHOTO", "--device", "banana"], "argument --device: 'banana' is not a torch"),
    (["protect", "PHOTO", "--multiplier", "-0.1"], "argument --multiplier: must be a number"),
    (["protect", "PHOTO", "--multiplier", "1000"], "in (0, 1], got 1000"),
    (["protect", "PHOTO", "--steps", "-3"], "argument --steps: must be a positive integer"),
    (["protect", "PHOTO", "--lr", "0.001"], "argument --lr"),
    (["protect", "PHOTO", "--l1-weight", "inf"], "argument --l1-weight"),
    (["experiment", "hide", "--size", "8", "8"], "at least 16 pixels a side, got 8 x 8"),
    (["experiment", "hide", "--images", "-2"], "argument --images"),
    (["experiment", "hide", "--eps", "nan"], "argument --eps"),
    (["experiment", "protect", "--model", "fcn8s-synthcity"], "is a segmentation model"),
    (["experiment", "protect", "--model", "SEG"], "--model"),
    (["experiment", "robustness", "--models", "SEG"], "its 3 classes (a, b, c) are not the 19"),
    (["convert-places365", "nowhere.pth.tar", "OUT/p.safetensors"], "does not exist"),
]


@pytest.mark.parametrize(("argv", "message"), MISTAKES)
def test_a_mistake_is_one_line_naming_it_before_any_work(
    argv, message, astronaut, wrong_files, tmp_path, capsys
):
    out = tmp_path / "fresh"
    seg, pickled = wrong_files
    where = {"PHOTO": str(astronaut), "SEG": str(seg), "PICKLED": str(pickled)}
    argv = [where.get(a, a).replace("OUT", str(out)) for a in argv]
    if "OUT" not in " ".join(argv) and argv[0] != "convert-places365":
        argv += ["--out", str(out)]
    assert main(argv) == 2
    err = one_line_error(capsys)
    assert message.replace("SEG", str(seg)) in err, err
    if argv[0] == "experiment":  # a study's records folder is locked before its models load
        assert not list(out.rglob("*.jsonl"))
    else:
        assert not out.exists()  # refused before any work


def test_device_cuda_without_cuda(astronaut, tmp_path, capsys):
    if torch.cuda.is_available():
        argv = ["--device", f"cuda:{torch.cuda.device_count()}"]
        message = f"this machine has {torch.cuda.device_count()} cuda device(s)"
    else:
        argv, message = ["--device", "cuda"], "torch finds no cuda device on this machine"
    assert main(["hide", str(astronaut), *argv, "--out", str(tmp_path / "o")]) == 2
    assert message in one_line_error(capsys)


@pytest.mark.parametrize("where", ["the input", "under the input", "unwritable"])
def test_out_that_cannot_hold_the_outputs(where, astronaut, tmp_path, capsys):
    out = {
        "the input": astronaut,
        "under the input": astronaut / "sub",
        "unwritable": unwritable_folder(tmp_path),
    }[where]
    before = astronaut.read_bytes()
    argv = ["hide", str(astronaut), "--eps", "2", "--max-side", "16", "--out", str(out)]
    assert main(argv) == 2
    err = one_line_error(capsys)
    assert f"--out {out}: " in err
    assert astronaut.read_bytes() == before and not list(tmp_path.glob("**/*_hidden*"))


def test_the_studies_take_a_users_weight_file(tmp_path, capsys):
    """`fastadv experiment hide --model FILE` and `robustness --models FILE`: a segmentation
    file of the Cityscapes classes, named in the summaries."""
    from fastadv.data.cityscapes import CLASS_NAMES

    mine = tmp_path / "mine.safetensors"
    save_weights(load("fcn8s-synthcity"), mine, "fcn8s-compact", classes=list(CLASS_NAMES))
    argv = ["experiment", "hide", "--model", str(mine), "--images", "3", "--size", "64", "128"]
    assert main([*argv, "--eps", "2", "--modes", "full", "--out", str(tmp_path / "o")]) == 0
    assert "model: mine.safetensors" in capsys.readouterr().out
    argv = ["experiment", "robustness", "--models", str(mine), "--images", "1", "--size", "32"]
    argv += ["--eps", "2", "--attacks", "fgsm", "--variants", "plain"]
    assert main([*argv, "--out", str(tmp_path / "r")]) == 0  # a folder in the name: one model
    printed = capsys.readouterr().out
    assert "| mine | plain | fgsm |" in printed and "model: mine.safetensors" in printed


def test_the_hide_study_hides_the_models_own_person(tmp_path):
    """VOC's person is 15; a model without one is refused in one line naming --model."""
    from fastadv.experiments.hide import person_id
    from fastadv.experiments.study import load_model
    from fastadv.models import SEGMENTATION

    voc = ["__background__", *(f"c{k}" for k in range(1, 15)), "person", *"abcde"]
    for classes, expected in ((voc, 15), (["sky", "road"], None)):
        path = tmp_path / f"{len(classes)}.safetensors"
        save_weights(compact_fcn8s(len(classes)), path, "fcn8s-compact", classes=classes)
        model = load_model("--model", str(path), "cpu", task=SEGMENTATION)
        if expected is None:
            with pytest.raises(
                UsageError, match=r"^--model .*2\.safetensors: has no class 'person'"
            ):
                person_id(model, str(path))
        else:
            assert person_id(model, str(path)) == expected
