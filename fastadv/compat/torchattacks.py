"""torchattacks-compatible FGSM, BIM and PGD: existing code changes one import.

    from fastadv.compat.torchattacks import PGD
    atk = PGD(model, eps=8/255, alpha=2/255, steps=10)
    adv_images = atk(images, labels)

Constructor arguments, defaults, targeted modes and normalisation follow torchattacks 3.5;
the work runs through fastadv's attacks (one fused update a step). Targets of the least-likely
and random modes are chosen once from the clean logits, as torchattacks does.
"""

from __future__ import annotations

import torch

from fastadv.attacks import fgsm, ifgsm, pgd
from fastadv.attacks._model import logits_of


class Attack:
    """Mode handling shared by the attacks (torchattacks.attack.Attack's public surface)."""

    def __init__(self, name: str, model):
        self.attack = name
        self.model = model
        self.targeted = False
        self._target_map_function = None
        self._normalization = None

    def set_normalization_used(self, mean, std):
        self._normalization = (
            torch.tensor(mean).view(1, -1, 1, 1),
            torch.tensor(std).view(1, -1, 1, 1),
        )

    def set_mode_default(self):
        self.targeted, self._target_map_function = False, None

    def set_mode_targeted_by_function(self, target_map_function, quiet=False):
        self.targeted, self._target_map_function = True, target_map_function

    def set_mode_targeted_by_label(self, quiet=False):
        self.set_mode_targeted_by_function(lambda images, labels: labels)

    def set_mode_targeted_least_likely(self, kth_min=1, quiet=False):
        def kth_least_likely(images, labels):
            return self.get_logits(images).kthvalue(kth_min, dim=1).indices

        self.set_mode_targeted_by_function(kth_least_likely)

    def set_mode_targeted_random(self, quiet=False):
        def random_other(images, labels):
            k = self.get_logits(images).shape[1]
            shift = torch.randint(1, k, labels.shape, device=labels.device)
            return (labels + shift) % k

        self.set_mode_targeted_by_function(random_other)

    def get_logits(self, images):
        with torch.no_grad():
            return logits_of(self._model_fn(images))

    def get_target_label(self, images, labels):
        return self._target_map_function(images, labels)

    @property
    def _model_fn(self):
        """The model, behind the normalisation when one is set (a module, so the attack can
        put it in eval mode and freeze its parameters)."""
        if self._normalization is None:
            return self.model
        return _Normalized(self.model, *self._normalization)

    def __call__(self, images, labels):
        """With a normalisation set, images come and go normalised (as in torchattacks 3.5);
        the attack itself runs on [0, 1] images."""
        images, labels = images.detach(), labels.detach()
        if self._normalization is not None:
            mean, std = (t.to(images) for t in self._normalization)
            images = images * std + mean
        kw = {"target": self.get_target_label(images, labels)} if self.targeted else {}
        # torchattacks returns the images only: no forward pass for the success flags
        adv = self._run(images, labels, evaluate=False, **kw).adv
        return adv if self._normalization is None else (adv - mean) / std

    def _run(self, images, labels, **kw):
        raise NotImplementedError

    def __repr__(self):
        params = {k: v for k, v in vars(self).items() if not k.startswith("_") and k != "model"}
        return f"{type(self).__name__}({', '.join(f'{k}={v}' for k, v in params.items())})"


class FGSM(Attack):
    def __init__(self, model, eps=8 / 255):
        super().__init__("FGSM", model)
        self.eps = eps

    def _run(self, images, labels, **kw):
        return fgsm(self._model_fn, images, labels, eps=self.eps, ignore_index=-100, **kw)


class BIM(Attack):
    def __init__(self, model, eps=8 / 255, alpha=2 / 255, steps=10):
        super().__init__("BIM", model)
        self.eps, self.alpha = eps, alpha
        # torchattacks' schedule when steps == 0 rounds down (fastadv.attacks.ifgsm rounds up)
        self.steps = int(min(eps * 255 + 4, 1.25 * eps * 255)) if steps == 0 else steps

    def _run(self, images, labels, **kw):
        return ifgsm(
            self._model_fn,
            images,
            labels,
            eps=self.eps,
            alpha=self.alpha,
            steps=self.steps,
            ignore_index=-100,
            **kw,
        )


class PGD(Attack):
    def __init__(self, model, eps=8 / 255, alpha=2 / 255, steps=10, random_start=True):
        super().__init__("PGD", model)
        self.eps, self.alpha, self.steps, self.random_start = eps, alpha, steps, random_start

    def _run(self, images, labels, **kw):
        attack = pgd if self.random_start else ifgsm
        return attack(
            self._model_fn,
            images,
            labels,
            eps=self.eps,
            alpha=self.alpha,
            steps=self.steps,
            ignore_index=-100,
            **kw,
        )


class _Normalized(torch.nn.Module):
    def __init__(self, model, mean, std):
        super().__init__()
        self.model = model
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, images):
        return self.model((images - self.mean.to(images)) / self.std.to(images))
