"""Adversarial attacks on classifiers and segmentation networks (see DESIGN.md, Attacks)."""

from fastadv.attacks._engine import AttackResult
from fastadv.attacks.fgsm import fgsm, ifgsm, kurakin_steps, pgd
from fastadv.attacks.until_flip import attack_until_flip

__all__ = ["AttackResult", "attack_until_flip", "fgsm", "ifgsm", "kurakin_steps", "pgd"]
