"""fastadv.compat.torchattacks against torchattacks 3.5.1 itself: the same scenarios run on both
libraries' FGSM, BIM and PGD (the `lib` parameter), and where torchattacks is deterministic the
images must be the same: FGSM and PGD bit for bit from the same seed, BIM within 4e-9 (its
projection rounds in another order).

torchattacks' own test (code_coverage/test_atks.py in Harry24k/adversarial-attacks-pytorch)
attacks a CIFAR-10 ResNet-18 inside torch.no_grad(), with torch.enable_grad() around the call,
expects robust accuracy <= clean accuracy, then does the same in targeted-random mode;
test_torchattacks_own_test runs that scenario on a torchvision ResNet-18 with random weights.
"""

import pytest
import torch
import torchattacks as ta
import torchvision
from _models import classifier, images, segmenter
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fastadv.compat import torchattacks as fa

LIBS = {"torchattacks": ta, "fastadv": fa}
KW = {
    "FGSM": {"eps": 6 / 255},
    "BIM": {"eps": 6 / 255, "alpha": 1 / 255, "steps": 7},
    "PGD": {"eps": 6 / 255, "alpha": 1 / 255, "steps": 7},
}
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


@pytest.fixture(params=list(LIBS))
def lib(request):
    return LIBS[request.param]


def base(lib):
    """The class both libraries' attacks derive from."""
    return ta.attack.Attack if lib is ta else fa.Attack


def assert_same_images(cls, got, want):
    if cls == "BIM":
        torch.testing.assert_close(got, want, atol=4e-9, rtol=0)
    else:
        assert torch.equal(got, want), (got - want).abs().max().item()


def run(atk, x, y, seed=7):
    torch.manual_seed(seed)  # PGD's start and random targets: the same draws in both
    return atk(x, y)


def both(cls, model, setup=None, **kw):
    """The attack cls of each library on model, after setup(atk)."""
    attacks = [getattr(lib, cls)(model, **(KW[cls] | kw)) for lib in (ta, fa)]
    for atk in attacks:
        if setup is not None:
            setup(atk)
    return attacks


def normalized(x):
    return (x - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)


def bn_dropout_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(32, 10),
    )


def predictions(model, x):
    with torch.no_grad():
        return model(x).argmax(1)


def predictions_dense(model, x):
    with torch.no_grad():
        return model(x)["out"].argmax(1)


# --- the same images ---------------------------------------------------------------------------

CASES = [
    ("classifier", classifier, lambda: torch.arange(8) % 10),
    (
        "dense",
        segmenter,
        lambda: torch.randint(0, 5, (8, 16, 16), generator=torch.Generator().manual_seed(0)),
    ),
]


@pytest.mark.parametrize("name, make_model, make_labels", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("cls", ["FGSM", "BIM", "PGD"])
def test_same_images_as_torchattacks(name, make_model, make_labels, cls):
    model, x, y = make_model(), images(8), make_labels()
    theirs, ours = both(cls, model)
    assert_same_images(cls, run(ours, x, y), run(theirs, x, y))


@pytest.mark.parametrize(
    "cls, kw",
    [
        ("PGD", {"random_start": False}),
        ("PGD", {"steps": 0}),
        ("PGD", {"steps": 0, "random_start": False}),
        ("BIM", {"steps": 0, "eps": 0.5 / 255}),  # the schedule gives 0 steps
        ("BIM", {"steps": 0}),  # the schedule gives 7 at eps 6/255
        ("FGSM", {"eps": 0.0}),
    ],
)
def test_same_images_in_corner_settings(cls, kw):
    model, x, y = classifier(), images(16), torch.arange(16) % 10
    theirs, ours = both(cls, model, **kw)
    assert getattr(ours, "steps", None) == getattr(theirs, "steps", None)
    assert_same_images(cls, run(ours, x, y), run(theirs, x, y))


TARGET_MODES = {
    "by_label": lambda atk: atk.set_mode_targeted_by_label(quiet=True),
    "least_likely": lambda atk: atk.set_mode_targeted_least_likely(quiet=True),
    "least_likely_3": lambda atk: atk.set_mode_targeted_least_likely(kth_min=3, quiet=True),
    "random": lambda atk: atk.set_mode_targeted_random(quiet=True),
    "by_function": lambda atk: atk.set_mode_targeted_by_function(lambda x, y: (y + 1) % 10),
}


@pytest.mark.parametrize("mode", list(TARGET_MODES))
@pytest.mark.parametrize("cls", ["FGSM", "BIM", "PGD"])
def test_targeted_modes_same_targets_and_images(mode, cls):
    model, x, y = classifier(), images(16), torch.arange(16) % 10
    theirs, ours = both(cls, model, setup=TARGET_MODES[mode])
    torch.manual_seed(3)
    want = theirs.get_target_label(x, y)
    torch.manual_seed(3)
    assert torch.equal(ours.get_target_label(x, y), want)
    assert ours.targeted and ours.get_mode() == theirs.get_mode()
    assert_same_images(cls, run(ours, x, y), run(theirs, x, y))


def test_least_likely_target_is_never_the_label(lib):
    """Labels that are the least likely class themselves: the target is the next one up (the
    k-th smallest over all classes would be the label, and nothing would be attacked)."""
    model, x = classifier(), images(16)
    with torch.no_grad():
        logits = model(x)
    y = logits.argmin(1)
    atk = lib.FGSM(model)
    atk.set_mode_targeted_least_likely(kth_min=1, quiet=True)
    target = atk.get_target_label(x, y)
    assert torch.equal(target, logits.topk(2, dim=1, largest=False).indices[:, 1])
    assert (target != y).all()


@pytest.mark.parametrize("labels", ["given", "none"])
def test_least_likely_and_random_labels_agree(labels):
    model, x = classifier(), images(16)
    y = torch.arange(16) % 10 if labels == "given" else None
    for k in (1, 2, 9):
        theirs, ours = ta.FGSM(model), fa.FGSM(model)
        for atk in (theirs, ours):
            atk.set_mode_targeted_least_likely(k, quiet=True)
        assert torch.equal(ours.get_least_likely_label(x, y), theirs.get_least_likely_label(x, y))
    torch.manual_seed(5)
    want = theirs.get_random_target_label(x, y)
    torch.manual_seed(5)
    got = ours.get_random_target_label(x, y)
    assert torch.equal(got, want)
    assert (got != (predictions(model, x) if y is None else y)).all()


def test_kth_min_beyond_the_classes_raises(lib):
    """10 classes: 9 besides the label, so kth_min = 9 is the most likely other class."""
    model, x, y = classifier(), images(4), torch.arange(4)
    atk = lib.BIM(model, steps=2)
    atk.set_mode_targeted_least_likely(kth_min=9, quiet=True)
    with torch.no_grad():
        logits = model(x)
    others = logits.clone()
    others[torch.arange(4), y] = -float("inf")
    assert torch.equal(atk.get_target_label(x, y), others.argmax(1))
    atk.set_mode_targeted_least_likely(kth_min=10, quiet=True)
    with pytest.raises(RuntimeError):
        atk(x, y)
    with pytest.raises(AssertionError):
        atk.set_mode_targeted_least_likely(kth_min=0)


def test_dense_target_labels_skip_the_label_and_keep_ignored_pixels():
    """torchattacks' helpers are for classifiers; fastadv's pick per pixel, in the same way."""
    model, x = segmenter(), images(2)
    y = torch.randint(0, 5, (2, 16, 16), generator=torch.Generator().manual_seed(1))
    y[:, :4] = -100
    atk = fa.PGD(model, steps=2)
    with torch.no_grad():
        logits = model(x)
    for setup in (atk.set_mode_targeted_random, atk.set_mode_targeted_least_likely):
        setup(quiet=True)
        target = atk.get_target_label(x, y)
        assert target.shape == y.shape
        assert (target[:, :4] == -100).all() and (target[:, 4:] != y[:, 4:]).all()
    others = logits.masked_fill(nn.functional.one_hot(y.clamp(min=0), 5).movedim(-1, 1) > 0, 1e9)
    assert torch.equal(target[:, 4:], others.argmin(1)[:, 4:])
    adv = atk(x, y)
    assert adv.shape == x.shape and not torch.equal(adv, x)


def test_custom_target_function_sees_images_in_unit_range(lib):
    """With a normalisation set, the target function gets [0, 1] images (un-normalised)."""
    model, x = classifier(), images(4)
    seen = []
    atk = lib.FGSM(model)
    atk.set_normalization_used(MEAN, STD)
    atk.set_mode_targeted_by_function(lambda im, lab: seen.append(im) or lab, quiet=True)
    atk(normalized(x), torch.arange(4))
    torch.testing.assert_close(seen[0], x, atol=1e-6, rtol=0)


# --- normalisation ------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ["FGSM", "BIM", "PGD"])
def test_normalization_used(cls):
    """torchattacks 3.5 takes and returns normalised images once a normalisation is set (its
    un-normalising rounds, and fastadv clamps those few ulp back into [0, 1])."""
    model, x, y = classifier(), normalized(images(8)), torch.arange(8) % 10
    theirs, ours = both(cls, model, setup=lambda atk: atk.set_normalization_used(MEAN, STD))
    want = run(theirs, x, y)
    got = run(ours, x, y)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    assert torch.equal(ours.normalization_used["mean"], theirs.normalization_used["mean"])
    assert torch.equal(ours.normalize(images(2)), theirs.normalize(images(2)))
    assert torch.equal(ours.inverse_normalize(x), theirs.inverse_normalize(x))


def test_normalization_of_a_robmodel(lib):
    """MAIR's RobModel carries mean and std; torchattacks takes them over."""

    class RobModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = classifier()
            self.register_buffer("mean", torch.tensor(MEAN))
            self.register_buffer("std", torch.tensor(STD))

        def forward(self, x):
            return self.net(x)

    atk = lib.PGD(RobModel())
    assert atk.normalization_used is not None
    torch.testing.assert_close(atk.normalization_used["std"].flatten(), torch.tensor(STD))
    assert lib.PGD(classifier()).normalization_used is None


def test_normalize_needs_a_normalization(lib):
    with pytest.raises(TypeError):
        lib.FGSM(classifier()).normalize(images(1))


# --- model mode, device, model -----------------------------------------------------------------

TRAINING = [
    {},
    {"model_training": True},
    {"model_training": True, "batchnorm_training": True},
]


@pytest.mark.parametrize("training", TRAINING, ids=["eval", "train", "train_bn"])
@pytest.mark.parametrize("cls", ["FGSM", "BIM", "PGD"])
def test_model_training_mode_same_images(cls, training):
    """Deterministic settings (dropout in eval): the same images in both libraries. The model
    comes back in train mode either way."""
    x, y = images(8), torch.arange(8) % 10
    out = []
    for lib in (ta, fa):
        model = bn_dropout_model().train()
        atk = getattr(lib, cls)(model, **KW[cls])
        atk.set_model_training_mode(**training)
        out.append(run(atk, x, y))
        assert model.training
    assert_same_images(cls, out[1], out[0])


def test_model_training_mode_is_used(lib):
    """BatchNorm in train mode normalises with the batch's statistics: other images."""
    model, x, y = bn_dropout_model(), images(8), torch.arange(8) % 10
    atk = lib.FGSM(model)
    eval_adv = run(atk, x, y)
    atk.set_model_training_mode(model_training=True, batchnorm_training=True)
    assert not torch.equal(run(atk, x, y), eval_adv)
    atk.set_model_training_mode(model_training=True, dropout_training=True)
    assert not torch.equal(run(atk, x, y, seed=1), run(atk, x, y, seed=2))


@pytest.mark.parametrize("training", TRAINING, ids=["eval", "train", "train_bn"])
def test_every_module_flag_and_parameter_restored(training):
    """A model in train mode with a frozen BatchNorm stays so (torchattacks sets every module to
    train afterwards); requires_grad flags as they were."""
    model = bn_dropout_model().train()
    model[1].eval()
    model[0].weight.requires_grad_(False)
    flags = [m.training for m in model.modules()]
    grads = [p.requires_grad for p in model.parameters()]
    atk = fa.PGD(model, steps=2)
    atk.set_model_training_mode(**training)
    atk(images(4), torch.arange(4))
    atk.get_output_with_eval_nograd(images(2))
    assert [m.training for m in model.modules()] == flags
    assert [p.requires_grad for p in model.parameters()] == grads


def test_get_output_with_eval_nograd(lib):
    model = bn_dropout_model().train()
    x = images(4)
    out = lib.FGSM(model).get_output_with_eval_nograd(x)
    assert model.training and not out.requires_grad
    model.eval()
    with torch.no_grad():
        assert torch.equal(out, model(x))


def test_device_from_the_model_or_set(lib, capsys):
    atk = lib.FGSM(classifier())
    assert atk.device == torch.device("cpu")
    atk.set_device("cpu")
    assert atk.device == "cpu"
    pooled = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())  # no parameters
    atk = lib.FGSM(pooled)
    assert atk.device is None and capsys.readouterr().out  # says so, and still attacks
    adv = atk(images(2), torch.tensor([0, 1]))
    assert adv.device == torch.device("cpu") and not torch.equal(adv, images(2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("cls", ["FGSM", "BIM", "PGD"])
def test_cuda_model_cpu_images(cls):
    """Images and labels go to the attack's device, and come back there."""
    model, x, y = classifier().cuda(), images(8), torch.arange(8) % 10
    theirs, ours = both(cls, model)
    got = run(ours, x, y)
    assert got.device.type == "cuda"
    torch.testing.assert_close(got, run(theirs, x, y), atol=1e-6, rtol=0)


def test_set_model(lib):
    atk = lib.BIM(classifier(seed=0), steps=3)
    other = segmenter(num_classes=10)
    atk.set_model(other)
    assert atk.model is other and atk.model_name == "Sequential"
    x, y = images(2), torch.zeros(2, 16, 16, dtype=torch.long)
    assert torch.equal(atk(x, y), lib.BIM(other, steps=3)(x, y))


# --- modes, representation -----------------------------------------------------------------------


def test_modes_and_repr_as_torchattacks(capsys):
    theirs, ours = both("PGD", classifier())
    steps = [
        lambda atk: None,
        lambda atk: atk.set_mode_targeted_random(),
        lambda atk: atk.set_mode_targeted_least_likely(2),
        lambda atk: atk.set_mode_targeted_by_label(quiet=True),
        lambda atk: atk.set_mode_targeted_by_function(lambda x, y: y),
        lambda atk: atk.set_normalization_used(MEAN, STD),
        lambda atk: atk.set_mode_default(),
    ]
    for step in steps:
        for atk in (theirs, ours):
            step(atk)
        assert repr(ours) == repr(theirs)
        assert (ours.attack_mode, ours.targeted) == (theirs.attack_mode, theirs.targeted)
        assert ours.get_mode() == theirs.get_mode()
    assert ours.supported_mode == theirs.supported_mode == ["default", "targeted"]
    assert (ours.attack, ours.model_name) == ("PGD", "Sequential")
    printed = capsys.readouterr().out
    assert "targeted(random)" in printed and "targeted(label)" not in printed  # quiet=True


def test_targeted_modes_need_support(lib):
    class Untargeted(base(lib)):
        def __init__(self, model):
            super().__init__("Untargeted", model)

    atk = Untargeted(classifier())
    assert atk.supported_mode == ["default"]
    with pytest.raises(ValueError):
        atk.set_mode_targeted_random()


def test_target_label_needs_a_function(lib):
    atk = lib.FGSM(classifier())
    with pytest.raises(ValueError):
        atk.get_target_label(images(2), torch.tensor([0, 1]))


# --- the calls -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cifar_resnet():
    """A torchvision ResNet-18 for 10 classes, random weights, on 10 CIFAR-sized images labelled
    with its own answers (so that clean accuracy is 1)."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).eval()
    x = torch.rand(10, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    return model, x, predictions(model, x)


@pytest.mark.parametrize("cls", ["FGSM", "BIM", "PGD"])
def test_torchattacks_own_test(lib, cls, cifar_resnet):
    """code_coverage/test_atks.py: robust accuracy <= clean accuracy, untargeted and targeted
    random, the attack called with torch.enable_grad() inside torch.no_grad()."""
    model, x, y = cifar_resnet

    def accuracy(adv):
        return (predictions(model, adv) == y).float().mean().item()

    with torch.no_grad():
        atk = getattr(lib, cls)(model)
        with torch.enable_grad():
            adv = run(atk, x, y)
        assert accuracy(adv) < accuracy(x) == 1.0
        assert "targeted" in atk.supported_mode
        atk.set_mode_targeted_random(quiet=True)
        torch.manual_seed(7)
        target = atk.get_target_label(x, y)
        with torch.enable_grad():
            adv = run(atk, x, y)
        assert accuracy(adv) <= accuracy(x)
        assert (predictions(model, adv) == target).sum() >= 3


@pytest.mark.parametrize("cls", ["FGSM", "BIM", "PGD"])
def test_forward_called_directly(cls):
    model, x, y = classifier(), images(8), torch.arange(8) % 10
    theirs, ours = both(cls, model)
    torch.manual_seed(2)
    want = theirs.forward(x, y)
    torch.manual_seed(2)
    assert_same_images(cls, ours.forward(x, y), want)


@pytest.mark.parametrize("cls", ["FGSM", "BIM", "PGD"])
def test_labels_none_attacks_the_prediction(cls):
    """torchattacks fails on labels=None (it clones them); fastadv attacks the prediction."""
    model, x = classifier(), images(8)
    theirs, ours = both(cls, model)
    assert_same_images(cls, run(ours, x, None), run(theirs, x, predictions(model, x)))
    with pytest.raises(AttributeError):
        theirs(x)


@pytest.mark.parametrize("cls", ["FGSM", "BIM", "PGD"])
def test_runs_inside_no_grad(cls):
    """torchattacks needs gradients enabled around the call; fastadv enables them itself."""
    model, x, y = classifier(), images(8), torch.arange(8) % 10
    want = run(getattr(fa, cls)(model, **KW[cls]), x, y)
    with torch.no_grad():
        got = run(getattr(fa, cls)(model, **KW[cls]), x, y)
    assert torch.equal(got, want) and not got.requires_grad


def test_torchvision_segmentation_model():
    """torchvision's segmentation models return {"out": logits}: torchattacks' loss fails on
    that; fastadv reads the logits, and picks least-likely targets per pixel."""
    torch.manual_seed(0)
    model = torchvision.models.segmentation.lraspp_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=5
    ).eval()
    x = images(2, 64, 64)
    atk = fa.PGD(model, steps=2)
    assert torch.equal(atk.get_logits(x), model(x)["out"])
    atk.set_mode_targeted_least_likely(quiet=True)
    target = atk.get_target_label(x)
    assert target.shape == (2, 64, 64) and (target != predictions_dense(model, x)).all()
    adv = atk(x)
    assert adv.shape == x.shape and 0 < (adv - x).abs().max() <= 8 / 255 + 1e-6


def test_empty_batch_returns_it():
    x = torch.rand(0, 3, 8, 8)
    assert fa.PGD(classifier())(x, torch.zeros(0, dtype=torch.long)).shape == x.shape


def test_inside_torchattacks_multiattack():
    model, x, y = classifier(), images(16), torch.arange(16) % 10
    out = []
    for lib in (ta, fa):
        multi = ta.MultiAttack([lib.FGSM(model, eps=1 / 255), lib.PGD(model, eps=2 / 255)])
        out.append(run(multi, x, y))
    assert torch.equal(out[1], out[0])


# --- save, load, to_type -----------------------------------------------------------------------


@pytest.mark.parametrize("normalization", [False, True], ids=["unit", "normalised"])
@pytest.mark.parametrize("save_type", ["float", "int"])
def test_save_and_load(tmp_path, save_type, normalization):
    model, x, y = classifier(), images(20), torch.arange(20) % 10
    norm = {"mean": MEAN, "std": STD} if normalization else None
    inputs = normalized(x) if normalization else x
    loader = DataLoader(TensorDataset(inputs, y), batch_size=8)
    stats, saved, loaded = [], [], []
    for name, lib in LIBS.items():
        atk = lib.PGD(model, **KW["PGD"])
        if normalization:
            atk.set_normalization_used(MEAN, STD)
        path = tmp_path / f"{name}.pt"
        torch.manual_seed(11)
        stats.append(
            atk.save(
                loader,
                save_path=path,
                verbose=True,
                return_verbose=True,
                save_predictions=True,
                save_clean_inputs=True,
                save_type=save_type,
            )
        )
        saved.append(torch.load(path))
        batches = base(lib).load(path, batch_size=6, normalize=norm, load_predictions=True)
        loaded.append([torch.cat(t) for t in zip(*batches, strict=True)])
    (acc_t, l2_t, _), (acc_f, l2_f, seconds) = stats
    assert acc_f == acc_t and seconds > 0
    torch.testing.assert_close(l2_f, l2_t, atol=1e-5, rtol=1e-5)
    keys = {"adv_inputs", "labels", "preds", "clean_inputs", "save_type"}
    assert saved[1].keys() == saved[0].keys() == keys
    assert saved[1]["save_type"] == save_type
    want_dtype = torch.uint8 if save_type == "int" else torch.float32
    assert saved[1]["adv_inputs"].dtype == saved[1]["clean_inputs"].dtype == want_dtype
    for key in ("adv_inputs", "clean_inputs"):
        # saved in [0, 1] (x 255 for int): normalised runs differ by rounding, int by one level
        tol = 1 if save_type == "int" else 1e-5
        diff = (saved[1][key].float() - saved[0][key].float()).abs()
        assert diff.max() <= (tol if normalization else 0)
    assert torch.equal(saved[1]["labels"], y) and torch.equal(saved[1]["preds"], saved[0]["preds"])
    assert len(loaded[1]) == 3 and loaded[1][0].shape == x.shape
    torch.testing.assert_close(
        loaded[1][0], loaded[0][0], atol=1e-5 if normalization else 0, rtol=0
    )


def test_load_needs_what_was_saved(tmp_path):
    loader = DataLoader(TensorDataset(images(4), torch.arange(4)), batch_size=2)
    fa.FGSM(classifier()).save(loader, tmp_path / "a.pt", verbose=False)
    with pytest.raises(KeyError, match="save_clean_inputs"):
        fa.Attack.load(tmp_path / "a.pt", load_clean_inputs=True)
    assert len(fa.Attack.load(tmp_path / "a.pt", batch_size=3)) == 2


def test_to_type(lib):
    x = images(2)
    as_int = base(lib).to_type(x, "int")
    assert torch.equal(as_int, fa.Attack.to_type(x, "int"))
    assert as_int.dtype == torch.uint8 and torch.equal(as_int, (x * 255).to(torch.uint8))
    assert torch.equal(base(lib).to_type(as_int, "float"), as_int.float() / 255)
    assert base(lib).to_type(x.double(), "int").dtype == torch.float64  # only float32 converts
    with pytest.raises(ValueError):
        base(lib).to_type(x, "png")


# --- mistakes ------------------------------------------------------------------------------------


def _normalised_atk():
    atk = fa.FGSM(classifier())
    atk.set_normalization_used(MEAN, STD)
    return atk


MISTAKES = [
    ("steps", ValueError, lambda: fa.PGD(classifier(), steps=-1)(images(2), torch.arange(2))),
    ("steps", TypeError, lambda: fa.BIM(classifier(), steps=2.5)(images(2), torch.arange(2))),
    ("eps", ValueError, lambda: fa.FGSM(classifier(), eps=-1)(images(2), torch.arange(2))),
    ("kth_min", AssertionError, lambda: fa.FGSM(classifier()).set_mode_targeted_least_likely(0)),
    ("kth_min", TypeError, lambda: fa.FGSM(classifier()).set_mode_targeted_least_likely(1.5)),
    (
        "target_map_function",
        TypeError,
        lambda: fa.FGSM(classifier()).set_mode_targeted_by_function(5),
    ),
    ("std", ValueError, lambda: fa.FGSM(classifier()).set_normalization_used(MEAN, STD[:2])),
    ("std", ValueError, lambda: fa.FGSM(classifier()).set_normalization_used(MEAN, [1, 0, 1])),
    ("inputs", ValueError, lambda: fa.FGSM(classifier())(images(2) * 3, torch.arange(2))),
    ("inputs", ValueError, lambda: _normalised_atk()(images(2) * 40, torch.arange(2))),
    ("inputs", TypeError, lambda: fa.FGSM(classifier())(images(2)[0], torch.arange(2))),
    ("labels", ValueError, lambda: fa.FGSM(classifier())(images(2), torch.tensor([0, 10]))),
    (
        "save_type",
        ValueError,
        lambda: fa.FGSM(classifier()).save([(images(2), torch.arange(2))], save_type="png"),
    ),
    ("normalize", TypeError, lambda: fa.FGSM(classifier()).inverse_normalize(images(2))),
]


@pytest.mark.parametrize(
    "name, kind, call", MISTAKES, ids=[f"{m[0]}-{i}" for i, m in enumerate(MISTAKES)]
)
def test_mistakes_are_one_line_errors(name, kind, call):
    with pytest.raises(kind) as info:
        call()
    message = str(info.value)
    assert name in message and "\n" not in message


def test_targeted_by_label_needs_labels():
    atk = fa.FGSM(classifier())
    atk.set_mode_targeted_by_label(quiet=True)
    with pytest.raises(ValueError, match="labels"):
        atk(images(2))


def test_kth_min_beyond_the_classes_message():
    atk = fa.FGSM(classifier())
    atk.set_mode_targeted_least_likely(kth_min=12, quiet=True)
    with pytest.raises(ValueError, match=r"kth_min must be <= 9 .* got 12"):
        atk(images(2), torch.arange(2))


def test_schedule_when_steps_is_zero():
    for eps in (0.5 / 255, 4 / 255, 8 / 255, 16 / 255):
        assert (
            fa.BIM(classifier(), eps=eps, steps=0).steps
            == ta.BIM(classifier(), eps=eps, steps=0).steps
        )
