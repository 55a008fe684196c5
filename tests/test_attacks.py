"""fastadv.attacks on small seeded models."""

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from _models import classifier, images, segmenter

import fastadv.attacks
from fastadv.attacks import (
    attack_mode,
    attack_until_flip,
    color_variance_attack,
    fgsm,
    ifgsm,
    kurakin_steps,
    pgd,
)


def ce(model, x, y):
    with torch.no_grad():
        return F.cross_entropy(model(x), y).item()


@pytest.mark.parametrize("make", [classifier, segmenter], ids=["classifier", "dense"])
def test_untargeted_raises_and_targeted_lowers_the_loss(make):
    model, x = make(), images()
    with torch.no_grad():
        y = model(x).argmax(1)
    k = model(x).shape[1]
    target = (y + 1) % k
    for attack in (fgsm, ifgsm, pgd):
        up = attack(model, x, y, eps=4 / 255)
        assert ce(model, up.adv, y) > ce(model, x, y), attack.__name__
        down = attack(model, x, target=target, eps=4 / 255)
        assert ce(model, down.adv, target) < ce(model, x, target), attack.__name__
        assert (down.linf <= 4 / 255 + 1e-6).all()


@pytest.mark.parametrize("eps_px, steps", [(1, 2), (4, 5), (8, 10), (10, 13), (16, 20), (20, 24)])
def test_kurakin_schedule(eps_px, steps):
    assert kurakin_steps(eps_px / 255) == steps


def test_default_steps_follow_the_schedule():
    model, x = classifier(), images()
    result = ifgsm(model, x, eps=10 / 255)
    assert result.iterations.tolist() == [13] * 4


def test_early_stopping_keeps_unfinished_images_and_finished_states():
    model, x = classifier(seed=1), images(8, seed=1)
    kw = {"eps": 4 / 255, "alpha": 0.5 / 255, "steps": 12}
    full = ifgsm(model, x, **kw)
    early = ifgsm(model, x, early_stop=True, **kw)
    finished = early.iterations < 12
    assert finished.any() and (~finished).any()
    torch.testing.assert_close(early.adv[~finished], full.adv[~finished], atol=0, rtol=0)
    for i in torch.nonzero(finished).flatten().tolist():
        n = early.iterations[i].item()
        if n == 0:
            assert torch.equal(early.adv[i], x[i])
            continue
        alone = ifgsm(model, x[i : i + 1], **{**kw, "steps": n})
        torch.testing.assert_close(early.adv[i], alone.adv[0], atol=1e-7, rtol=0)
    assert early.success[finished].all()


def test_early_stopped_samples_leave_the_batch():
    model, x = classifier(seed=1), images(8, seed=1)
    sizes = []
    model.register_forward_hook(lambda m, inp, out: sizes.append(inp[0].shape[0]))
    result = ifgsm(model, x, eps=4 / 255, alpha=0.5 / 255, steps=12, early_stop=True)
    assert (result.iterations < 12).any()
    assert min(sizes[1:-1]) < 8  # after the clean pass, before the final check


def test_least_likely_is_recomputed_every_iteration_per_pixel():
    model, x = segmenter(seed=1), images(2, seed=1)
    result = ifgsm(model, x, eps=6 / 255, alpha=1 / 255, steps=6, least_likely=True)
    want = x.clone()
    for _ in range(6):  # the definition, written out
        xr = want.clone().requires_grad_(True)
        logits = model(xr)
        loss = F.cross_entropy(logits, logits.detach().argmin(1), reduction="sum")
        (g,) = torch.autograd.grad(loss, xr)
        want = torch.clamp(x + torch.clamp(want - g.sign() / 255 - x, -6 / 255, 6 / 255), 0, 1)
    torch.testing.assert_close(result.adv, want, atol=1e-6, rtol=0)


def test_model_is_left_as_found():
    model, x = classifier(), images()
    model.train()
    model[0].weight.requires_grad_(False)
    flags = [p.requires_grad for p in model.parameters()]
    pgd(model, x, eps=4 / 255, steps=3)
    assert model.training
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())


def _count_forwards(model):
    calls = []
    model.register_forward_hook(lambda m, inp, out: calls.append(1))
    return calls


@pytest.mark.parametrize("evaluate", [True, False])
def test_clean_pass_is_the_first_iteration(evaluate):
    """I-FGSM costs its steps in forward passes, plus one for the success flags; PGD one more
    for the clean pass its random start cannot reuse."""
    model, x = classifier(), images()
    calls = _count_forwards(model)
    plain = ifgsm(model, x, eps=4 / 255, steps=5, evaluate=evaluate)
    assert len(calls) == 5 + evaluate
    calls.clear()
    random = pgd(model, x, eps=4 / 255, steps=5, evaluate=evaluate)
    assert len(calls) == 6 + evaluate
    if evaluate:
        assert plain.success.shape == random.success.shape == (4,)
    else:
        assert plain.success is None and random.success is None
        with pytest.raises(ValueError, match="evaluate=False"):
            _ = plain.success_rate


def test_early_stopped_samples_need_no_final_pass():
    model, x = classifier(seed=1), images(8, seed=1)
    calls = _count_forwards(model)
    result = ifgsm(model, x, eps=32 / 255, alpha=4 / 255, steps=30, early_stop=True)
    assert result.success.all(), "every sample should flip within the budget"
    assert len(calls) == int(result.iterations.max()) + 1  # the loop's passes only
    with torch.no_grad():
        flipped = model(result.adv).argmax(1) != model(x).argmax(1)
    assert flipped.all()


def test_evaluate_false_gives_the_same_images():
    model, x = segmenter(seed=2), images(2, seed=2)
    kw = {"eps": 4 / 255, "steps": 4, "least_likely": True}
    torch.testing.assert_close(
        ifgsm(model, x, **kw).adv, ifgsm(model, x, evaluate=False, **kw).adv, atol=0, rtol=0
    )


def test_clean_pass_runs_in_eval_mode():
    """A model left in training mode: batch-norm statistics are neither used nor updated."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3),
        torch.nn.BatchNorm2d(4),
        torch.nn.Flatten(),
        torch.nn.LazyLinear(3),
    )
    x = images(2, h=8, w=8)
    model(x)  # materialises the lazy layer
    model.train()
    stats = model[1].running_mean.clone()
    ifgsm(model, x, eps=2 / 255, steps=2)
    assert torch.equal(model[1].running_mean, stats)
    assert model.training


def test_inputs_are_not_modified():
    model, x = classifier(), images()
    before = x.clone()
    ifgsm(model, x, eps=4 / 255, steps=2)
    assert torch.equal(x, before)


def test_mapping_output_and_per_sample_eps():
    seg = segmenter()

    def model(x):
        return {"out": seg(x), "aux": None}

    x = images()
    eps = torch.tensor([0.0, 1, 2, 4]) / 255
    result = ifgsm(model, x, eps=eps, steps=4)
    assert torch.allclose(result.linf, eps, atol=1e-6)


def test_ignore_index_pixels_do_not_count():
    model, x = segmenter(), images(1)
    with torch.no_grad():
        y = model(x).argmax(1)
    y_ignored = y.clone()
    y_ignored[:, :8] = 255
    a = ifgsm(model, x, y_ignored, eps=4 / 255, steps=3)
    xr = x.clone().requires_grad_(True)
    g = torch.autograd.grad(F.cross_entropy(model(xr), y_ignored, ignore_index=255), xr)[0]
    assert torch.equal(
        torch.sign((a.adv - x)[..., :1, :]), torch.sign(g[..., :1, :])
    )  # a step moved
    assert a.adv.shape == x.shape


def test_until_flip_counts_iterations_on_a_hand_made_model():
    """Class 1 when the mean grey level exceeds 0.5: from 102/255 every step adds 1/255 to every
    pixel, so the decision flips after exactly 26 steps (128/255 > 0.5 > 127/255)."""

    def model(x):
        score = 100 * (x.mean(dim=(1, 2, 3)) - 0.5)
        return torch.stack([torch.zeros_like(score), score], 1)

    x = torch.full((3, 1, 8, 8), 102 / 255)
    x[2] = 140 / 255  # already class 1: no step
    result = attack_until_flip(model, x, 1, max_iters=100)
    assert result.iterations.tolist() == [26, 26, 0]
    assert result.success.all()
    torch.testing.assert_close(result.adv[0], torch.full((1, 8, 8), 128 / 255))
    capped = attack_until_flip(model, x[:1], 1, max_iters=10)
    assert capped.iterations.tolist() == [10] and not capped.success.any()


def test_until_flip_with_a_threshold_decision():
    def model(x):
        return torch.sigmoid(40 * (x.mean(dim=(1, 2, 3), keepdim=False)[:, None] - 0.5)).repeat(
            1, 3
        )

    def decision(scores):  # "None" (3) unless a score passes the threshold
        best = scores.argmax(1)
        return torch.where(scores.max(1).values > 0.45, best, torch.full_like(best, 3))

    x = torch.full((2, 1, 4, 4), 0.8)
    result = attack_until_flip(
        model, x, 3, decision=decision, loss_fn=lambda s, t: s.sum(), max_iters=300
    )
    assert result.success.all()
    assert (decision(model(result.adv)) == 3).all()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"labels": torch.zeros(3, dtype=torch.long)}, ValueError, r"labels must have shape \[4\]"),
        ({"labels": torch.full((4,), 10)}, ValueError, "outside"),
        ({"labels": torch.zeros(4)}, TypeError, "integer tensor"),
        ({"eps": -0.1}, ValueError, "eps must be >= 0"),
        ({"x": images() * 2}, ValueError, r"must lie in \[0, 1\]"),
        ({"x": images().index_fill(0, torch.tensor([0]), float("nan"))}, ValueError, "NaN"),
        ({"x": images(0)}, ValueError, "empty batch"),
        ({"model": lambda x: x.mean(1)}, ValueError, "logits"),
        (
            {"target": torch.zeros(4, dtype=torch.long), "least_likely": True},
            ValueError,
            "not both",
        ),
    ],
)
def test_bad_input(kwargs, error, match):
    args = {"model": classifier(), "x": images(), "eps": 4 / 255}
    args.update(kwargs)
    model, x = args.pop("model"), args.pop("x")
    with pytest.raises(error, match=match):
        ifgsm(model, x, **args)


# --- the model as found ---------------------------------------------------------------------


def _frozen_bn_resnet():
    """A torchvision ResNet-18 (random weights) in train mode with its BatchNorm layers frozen
    by bn.eval(), as fine-tuning code leaves it, and its first convolution frozen."""
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10).train()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.eval()
    model.conv1.weight.requires_grad_(False)
    return model


def _state(model):
    return (
        [m.training for m in model.modules()],
        [p.requires_grad for p in model.parameters()],
        [b.clone() for b in model.buffers()],
    )


@pytest.mark.parametrize(
    "attack",
    [
        lambda m, x: fgsm(m, x, eps=2 / 255),
        lambda m, x: ifgsm(m, x, eps=2 / 255, steps=2, early_stop=True),
        lambda m, x: pgd(m, x, eps=2 / 255, steps=2),
        lambda m, x: attack_until_flip(m, x, 3, max_iters=2),
        lambda m, x: color_variance_attack(m, x, steps=2),
    ],
    ids=["fgsm", "ifgsm", "pgd", "until_flip", "color_variance"],
)
def test_every_submodule_mode_is_restored(attack):
    model, x = _frozen_bn_resnet(), images(2, 32, 32)
    modes, flags, buffers = _state(model)
    assert model.training and not all(modes)
    attack(model, x)
    after = _state(model)
    assert after[0] == modes and after[1] == flags
    assert all(torch.equal(a, b) for a, b in zip(after[2], buffers, strict=True))
    assert all(p.grad is None for p in model.parameters())


def test_attack_mode_restores_after_an_error():
    model = _frozen_bn_resnet()
    modes, flags, _ = _state(model)
    with pytest.raises(RuntimeError, match="inside"), attack_mode(model):
        assert not any(m.training for m in model.modules())
        assert not any(p.requires_grad for p in model.parameters())
        raise RuntimeError("inside")
    assert _state(model)[:2] == (modes, flags)


# --- model outputs of other ecosystems --------------------------------------------------------


@dataclass
class ImageClassifierOutput:
    """The fields of transformers' output of the same name (no transformers import)."""

    logits: torch.Tensor
    hidden_states: tuple | None = None


class HuggingFaceStyle(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, pixel_values):
        return ImageClassifierOutput(logits=self.net(pixel_values), hidden_states=(pixel_values,))


@pytest.mark.parametrize(
    "wrap",
    [
        HuggingFaceStyle,
        lambda net: lambda x: {"logits": net(x), "loss": None},
        lambda net: lambda x: {"scores": net(x)},
        lambda net: lambda x: {"out": net(x), "aux": net(x) * 0},
    ],
    ids=["logits-attribute", "logits-key", "single-tensor", "out-key"],
)
def test_outputs_of_other_ecosystems_give_the_same_images(wrap):
    net, x = classifier(seed=3), images(4, seed=3)
    kw = {"eps": 4 / 255, "steps": 4, "early_stop": True}
    want = ifgsm(net, x, **kw)
    got = ifgsm(wrap(net), x, **kw)
    assert torch.equal(got.adv, want.adv)
    assert torch.equal(got.success, want.success)
    assert torch.equal(got.iterations, want.iterations)


def test_until_flip_reads_logits_of_an_object():
    net, x = classifier(seed=4), images(2, seed=4)
    want = attack_until_flip(net, x, 1, max_iters=5)
    got = attack_until_flip(HuggingFaceStyle(net), x, 1, max_iters=5)
    assert torch.equal(got.adv, want.adv) and torch.equal(got.iterations, want.iterations)


def test_ambiguous_mapping_is_refused():
    net = classifier()
    with pytest.raises(ValueError, match=r"ambiguous \(keys: \['a', 'b'\]\)"):
        ifgsm(lambda x: {"a": net(x), "b": net(x)}, images(), eps=4 / 255, steps=1)
    with pytest.raises(TypeError, match="got list"):
        ifgsm(lambda x: [net(x)], images(), eps=4 / 255, steps=1)


def test_float64_images_on_a_float32_model():
    """The images keep their dtype; the model sees its own (torch would raise inside it)."""
    net, x = classifier(seed=5), images(4, seed=5).double()
    with pytest.raises(RuntimeError):
        net(x)
    result = ifgsm(net, x, eps=4 / 255, steps=3)
    assert result.adv.dtype == torch.float64
    assert ((result.adv - x).abs().amax((1, 2, 3)) <= 4 / 255 + 1e-12).all()
    assert ce(net, result.adv.float(), net(x.float()).argmax(1)) > ce(
        net, x.float(), net(x.float()).argmax(1)
    )
    assert next(net.parameters()).dtype == torch.float32


def test_per_sample_eps_in_fgsm():
    model, x = classifier(), images()
    eps = torch.tensor([0.0, 1, 2, 4]) / 255
    torch.testing.assert_close(fgsm(model, x, eps=eps).linf, eps, atol=1e-6, rtol=0)


# --- argument errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "attack, kwargs, error, match",
    [
        (ifgsm, {"eps": 8}, ValueError, r"eps must lie in \[0, 1\].*eps=8/255"),
        (pgd, {"eps": 8}, ValueError, r"eps=8/255"),
        (fgsm, {"eps": 16}, ValueError, r"eps=16/255"),
        (ifgsm, {"eps": 4 / 255, "alpha": 2}, ValueError, r"alpha=2/255"),
        (pgd, {"eps": torch.tensor([1.0, 2, 3, 4])}, ValueError, r"eps=4/255"),
        (ifgsm, {"eps": float("inf")}, ValueError, r"eps must lie in \[0, 1\].*got inf$"),
        (pgd, {"eps": float("inf")}, ValueError, r"eps must lie in \[0, 1\].*got inf$"),
        (ifgsm, {"eps": float("nan")}, ValueError, "eps is NaN"),
        (ifgsm, {"eps": -1, "alpha": -1}, ValueError, "eps must be >= 0"),
        (ifgsm, {"eps": 0.1, "alpha": float("nan")}, ValueError, "alpha must be >= 0"),
        (ifgsm, {"eps": "8"}, TypeError, "eps must be a float"),
        (ifgsm, {"eps": 0.1, "steps": 0}, ValueError, "steps must be >= 1"),
        (ifgsm, {"eps": 0.1, "steps": 2.5}, TypeError, "steps must be an integer"),
        (ifgsm, {"eps": 0.1, "check_every": 0}, ValueError, "check_every must be >= 1"),
        (attack_until_flip, {"target": 1, "step": 2}, ValueError, r"step=2/255"),
        (attack_until_flip, {"target": 1, "step": 0.0}, ValueError, "step must be > 0"),
        (attack_until_flip, {"target": 1, "max_iters": 0}, ValueError, "max_iters must be >= 1"),
        (attack_until_flip, {"target": "cat"}, TypeError, "target must be class ids"),
        (attack_until_flip, {"target": 1.5}, TypeError, "target must be an int"),
        (attack_until_flip, {"target": [1, 2]}, ValueError, "target must hold one id or one a"),
    ],
)
def test_one_line_errors_name_the_argument(attack, kwargs, error, match):
    calls = []
    model = classifier()
    model.register_forward_hook(lambda m, inp, out: calls.append(1))
    with pytest.raises(error, match=match) as info:
        attack(model, images(), **kwargs)
    assert "\n" not in str(info.value)
    assert not calls, "refused before any work"


def test_meta_tensors_are_refused():
    with pytest.raises(ValueError, match="x is on the meta device"):
        ifgsm(classifier(), images().to("meta"), eps=4 / 255)
    with pytest.raises(ValueError, match="model has parameters on the meta device"):
        ifgsm(classifier().to("meta"), images(), eps=4 / 255)


# --- the layers ---------------------------------------------------------------------------


def test_attacks_use_only_public_ops():
    """The fast path is a public contract: no module of fastadv.attacks imports a private
    module or name of fastadv.ops, nor fastadv.reference or a backend."""
    root = Path(fastadv.attacks.__file__).parent
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[:2] == ["fastadv", "ops"]:
                    assert not any(p.startswith("_") for p in parts[2:]), (path.name, name)
                assert parts[:2] not in (["fastadv", "reference"], ["fastadv", "triton"]), name
