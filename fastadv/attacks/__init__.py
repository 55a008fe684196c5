"""Adversarial attacks on classifiers and segmentation networks (see DESIGN.md, Attacks)."""

from fastadv.attacks._engine import AttackResult
from fastadv.attacks.color_variance import ProtectResult, color_variance_attack
from fastadv.attacks.fgsm import fgsm, ifgsm, kurakin_steps, pgd
from fastadv.attacks.hide import HideResult, hide_classes
from fastadv.attacks.until_flip import attack_until_flip

__all__ = [
    "AttackResult",
    "HideResult",
    "ProtectResult",
    "attack_until_flip",
    "color_variance_attack",
    "fgsm",
    "hide_classes",
    "ifgsm",
    "kurakin_steps",
    "pgd",
]
