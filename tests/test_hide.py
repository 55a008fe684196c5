"""fastadv.attacks.hide_classes (Fischer et al.) on a small seeded segmenter."""

import pytest
import torch
from _models import images, segmenter

from fastadv.attacks import attack_mode, hide_classes
from fastadv.ops import nearest_fill

HIDE = 3


@pytest.fixture(scope="module")
def setup():
    model, x = segmenter(num_classes=4, width=16, gain=10.0), images(4, 24, 24)
    with torch.no_grad():
        pred = model(x).argmax(1)
    assert (pred == HIDE).flatten(1).any(1).all(), "every test image should show the class"
    return model, x, pred


def test_target_is_the_nearest_fill_of_the_clean_prediction(setup):
    model, x, pred = setup
    result = hide_classes(model, x, HIDE, eps=4 / 255, steps=2)
    assert torch.equal(result.clean_pred, pred)
    assert torch.equal(result.target, nearest_fill(pred, HIDE).labels)
    assert torch.equal(result.hidden, pred == HIDE)


def test_hiding_lowers_the_class_and_keeps_the_rest(setup):
    model, x, pred = setup
    result = hide_classes(model, x, HIDE, eps=16 / 255, early_stop=False)
    with torch.no_grad():
        adv_pred = model(result.adv).argmax(1)
    assert (adv_pred == HIDE).sum() < 0.8 * (pred == HIDE).sum()
    assert (result.iterations == 20).all()  # Kurakin's schedule for eps 16
    assert (result.linf <= 16 / 255 + 1e-6).all()


@pytest.mark.parametrize("restrict", ["after", "during"])
def test_restricted_noise_stays_on_the_hidden_pixels(setup, restrict):
    model, x, _ = setup
    result = hide_classes(model, x, HIDE, eps=8 / 255, restrict=restrict)
    outside = ~result.hidden[:, None].expand_as(x)
    assert torch.equal(result.adv[outside], x[outside])
    assert (result.adv != x).any()


def test_success_and_early_stopping(setup):
    model, x, _ = setup
    result = hide_classes(model, x, HIDE, eps=16 / 255, steps=30, success_fraction=0.3)
    with torch.no_grad():
        adv_pred = model(result.adv).argmax(1)
    still = ((adv_pred == HIDE) & result.hidden).flatten(1).sum(1)
    fraction_hidden = 1 - still / result.hidden.flatten(1).sum(1)
    assert torch.equal(result.success, fraction_hidden >= 0.3)
    assert result.success.any()
    assert (result.iterations[result.success] < 30).all()


@pytest.mark.parametrize("restrict", [None, "after"])
def test_forward_passes_and_evaluate_false(setup, restrict):
    """The clean pass is the first iteration: steps forward passes, plus one for success."""
    model, x, _ = setup
    calls = []
    hook = model.register_forward_hook(lambda m, inp, out: calls.append(1))
    kw = {"eps": 4 / 255, "steps": 3, "early_stop": False, "restrict": restrict}
    try:
        full = hide_classes(model, x, HIDE, **kw)
        assert len(calls) == 4
        calls.clear()
        bare = hide_classes(model, x, HIDE, evaluate=False, **kw)
        assert len(calls) == 3
    finally:
        hook.remove()
    assert bare.success is None and full.success is not None
    assert torch.equal(bare.adv, full.adv)


def test_images_without_the_class_or_with_nothing_else():
    def constant(label):
        def fixed(x):
            logits = torch.zeros(x.shape[0], 4, *x.shape[2:])
            logits[:, label] = 1 + 0 * x.sum()
            return logits

        return fixed

    x = images(2, 8, 8)
    nothing = hide_classes(constant(0), x, HIDE, eps=4 / 255)
    assert nothing.success.all() and torch.equal(nothing.adv, x)
    everything = hide_classes(constant(HIDE), x, HIDE, eps=4 / 255)
    assert not everything.success.any() and torch.equal(everything.adv, x)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"classes": 7}, r"must lie in \[0, 4\)"),
        ({"classes": []}, "classes is empty"),
        ({"restrict": "before"}, "restrict must be"),
        ({"eps": -1.0}, "eps must be >= 0"),
    ],
)
def test_bad_input(setup, kwargs, match):
    model, x, _ = setup
    args = {"classes": HIDE, "eps": 4 / 255, **kwargs}
    with pytest.raises(ValueError, match=match):
        hide_classes(model, x, args.pop("classes"), **args)


@pytest.mark.parametrize(
    "classes, match",
    [
        ("person", "must be class ids, got the name 'person'"),
        (["car", 1], "got the name 'car'"),
        (1.0, "classes must be an int or a collection of ints, got 1.0"),
        (True, "classes must be an int"),
        (torch.tensor([1.0]), "classes must be an int"),
    ],
)
def test_classes_that_are_not_ids(setup, classes, match):
    model, x, _ = setup
    with pytest.raises(TypeError, match=match) as info:
        hide_classes(model, x, classes, eps=4 / 255)
    assert "\n" not in str(info.value)


def test_ids_of_other_integer_types(setup):
    model, x, _ = setup
    want = hide_classes(model, x, HIDE, eps=4 / 255, steps=2)
    for classes in (torch.tensor([HIDE]), torch.tensor(HIDE), [torch.tensor(HIDE)], range(3, 4)):
        got = hide_classes(model, x, classes, eps=4 / 255, steps=2)
        assert torch.equal(got.adv, want.adv), classes


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"eps": 10}, r"eps=10/255"),
        ({"eps": float("inf")}, r"eps must lie in \[0, 1\]"),
        ({"eps": 4 / 255, "alpha": 2}, r"alpha must lie"),
        ({"eps": torch.full((4,), 4.0)}, r"eps=4/255"),
    ],
)
def test_pixel_units_are_refused(setup, kwargs, match):
    model, x, _ = setup
    with pytest.raises(ValueError, match=match):
        hide_classes(model, x, HIDE, **kwargs)


def test_per_sample_eps_and_a_partial_batch(setup):
    """Per-sample budgets follow the samples that have something to hide."""
    model, x, _ = setup
    x = torch.cat([x[:2], torch.zeros(1, 3, *x.shape[2:]), x[2:]])
    eps = torch.tensor([1.0, 2, 3, 2, 4]) / 255
    result = hide_classes(model, x, HIDE, eps=eps, early_stop=False, steps=4)
    shown = result.hidden.flatten(1).any(1)
    assert shown.tolist() == [True, True, False, True, True]
    torch.testing.assert_close(result.linf[shown], eps[shown], atol=1e-6, rtol=0)
    assert result.linf[2] == 0 and torch.equal(result.adv[2], x[2])


@pytest.fixture(scope="module")
def lraspp():
    """torchvision's LR-ASPP (random weights, a mapping {"out": ...} as output), its
    classifiers' biases zeroed so that the prediction depends on the image; in train mode
    with its BatchNorm layers frozen."""
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(2)
    model = torchvision.models.segmentation.lraspp_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=3
    )
    with torch.no_grad():
        model.classifier.low_classifier.bias.zero_()
        model.classifier.high_classifier.bias.zero_()
    model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.eval()
    return model


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torchvision_segmentation_model(lraspp, dtype):
    x = images(2, 32, 32).to(dtype)
    modes = [m.training for m in lraspp.modules()]
    result = hide_classes(lraspp, x, 0, eps=4 / 255, success_fraction=0.5)
    assert [m.training for m in lraspp.modules()] == modes
    assert result.adv.dtype == dtype
    assert result.hidden.flatten(1).any(1).all() and not result.hidden.all()
    with attack_mode(lraspp), torch.no_grad():
        pred = lraspp(result.adv.float())["out"].argmax(1)
    still = ((pred == 0) & result.hidden).flatten(1).sum(1)
    assert (still <= 0.5 * result.hidden.flatten(1).sum(1)).all()
    assert result.success.all() and (result.iterations < 10).all()
