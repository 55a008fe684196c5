"""Adversarial attacks on classifiers and segmentation networks.

The modules, from the bottom up: `_model` (how a model is called: logits of any output form,
inputs in its dtype, its modes restored), `_inputs` (the attacks' argument checks), `_result`
(AttackResult), `_loop` (the shrinking-batch loop every iterative attack runs), `goals` (what a
sign-gradient attack pursues), `_engine` (the sign-gradient attacks' options and their run on
the loop with `fastadv.ops.SignStep`), then the attacks: `fgsm` (FGSM, I-FGSM, PGD), `hide`
(Fischer et al.), `until_flip` (Berntsen et al.), `color_variance` (Sweere et al., Adam on the
loop).
"""

from fastadv.attacks._engine import kurakin_steps
from fastadv.attacks._model import attack_mode
from fastadv.attacks._result import AttackResult
from fastadv.attacks.color_variance import ProtectResult, color_variance_attack
from fastadv.attacks.fgsm import fgsm, ifgsm, pgd
from fastadv.attacks.hide import HideResult, hide_classes
from fastadv.attacks.until_flip import attack_until_flip

__all__ = [
    "AttackResult",
    "HideResult",
    "ProtectResult",
    "attack_mode",
    "attack_until_flip",
    "color_variance_attack",
    "fgsm",
    "hide_classes",
    "ifgsm",
    "kurakin_steps",
    "pgd",
]
