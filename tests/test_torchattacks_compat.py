"""fastadv.compat.torchattacks gives torchattacks' own results, with its call shape."""

import pytest
import torch
from _models import classifier, images, segmenter

from fastadv.compat import torchattacks as fa

ta = pytest.importorskip("torchattacks")

CASES = [
    ("classifier", classifier, lambda: torch.arange(6) % 10),
    (
        "dense",
        segmenter,
        lambda: torch.randint(0, 5, (6, 16, 16), generator=torch.Generator().manual_seed(0)),
    ),
]


@pytest.mark.parametrize("name, make_model, make_labels", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("cls", ["BIM", "PGD", "FGSM"])
def test_same_images_as_torchattacks(name, make_model, make_labels, cls):
    model, x, y = make_model(), images(6), make_labels()
    kw = {} if cls == "FGSM" else {"eps": 6 / 255, "alpha": 1 / 255, "steps": 7}
    torch.manual_seed(7)  # PGD's random start: the same RNG calls in both libraries
    want = getattr(ta, cls)(model, **kw)(x, y)
    torch.manual_seed(7)
    got = getattr(fa, cls)(model, **kw)(x, y)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


@pytest.mark.parametrize("mode", ["by_label", "least_likely"])
def test_targeted_modes(mode):
    model, x, y = classifier(), images(6), torch.arange(6) % 10
    theirs, ours = ta.BIM(model, eps=6 / 255, steps=5), fa.BIM(model, eps=6 / 255, steps=5)
    for atk in (theirs, ours):
        getattr(atk, f"set_mode_targeted_{mode}")()
    torch.testing.assert_close(ours(x, y), theirs(x, y), atol=1e-6, rtol=0)
    assert ours.targeted


def test_normalization_used():
    """torchattacks 3.5 takes and returns normalised images once a normalisation is set."""
    model, y = classifier(), torch.arange(6) % 10
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    x = (images(6) - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    theirs, ours = ta.PGD(model, steps=3), fa.PGD(model, steps=3)
    for atk in (theirs, ours):
        atk.set_normalization_used(mean, std)
    torch.manual_seed(1)
    want = theirs(x, y)
    torch.manual_seed(1)
    torch.testing.assert_close(ours(x, y), want, atol=1e-5, rtol=0)


def test_schedule_when_steps_is_zero():
    assert (
        fa.BIM(classifier(), eps=8 / 255, steps=0).steps
        == ta.BIM(classifier(), eps=8 / 255, steps=0).steps
    )
