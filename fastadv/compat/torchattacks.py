"""torchattacks-compatible FGSM, BIM and PGD: existing code changes one import.

    from fastadv.compat.torchattacks import PGD
    atk = PGD(model, eps=8/255, alpha=2/255, steps=10)
    adv_images = atk(images, labels)

The classes have torchattacks 3.5's public surface (`Attack`: modes, normalisation, device,
model training mode, save/load, the target-label helpers) and give its images: FGSM and PGD
bit for bit from the same seed, BIM within rounding. The work runs through fastadv's attacks
(one fused update a step); this module only translates the call.

Where torchattacks fails or leaves state behind, these classes do better and say so:
`labels=None` attacks the model's own prediction; the attack runs with gradients even inside
`torch.no_grad()`; every submodule's train/eval flag is restored as it was found (torchattacks
only restores the top module's, and only when it was training); bad arguments raise a one-line
error before any work, of the type torchattacks raises where it raises one.
"""

from __future__ import annotations

import operator
import time

import torch
from torch.utils.data import DataLoader, TensorDataset
from tqdm import tqdm

from fastadv._outputs import logits_of
from fastadv.attacks import attack_mode, fgsm, ifgsm, pgd

# torch.nn.CrossEntropyLoss's default, which torchattacks' losses use
IGNORE_INDEX = -100
# inverse normalisation rounds: un-normalised images may leave [0, 1] by a few ulp
ROUNDING = 1e-6


class KthMinRangeError(ValueError, AssertionError):
    """kth_min below 1 (torchattacks asserts kth_min > 0)."""


class KthMinClassesError(ValueError, RuntimeError):
    """kth_min above the number of classes other than the label (torchattacks' kthvalue raises
    a RuntimeError)."""


class Attack:
    """torchattacks.attack.Attack's public surface, for attacks that run on fastadv."""

    def __init__(self, name: str, model):
        # attributes in torchattacks' order: __repr__ lists them in this order
        self.attack = name
        self.set_model(model)
        self.device = _device_of(model)
        if self.device is None:
            print(f"{name}: the model has no parameters to take the device from; call set_device")
        self.attack_mode = "default"
        self.supported_mode = ["default"]
        self.targeted = False
        self._target_map_function = None
        self.normalization_used = None
        self._normalization_applied = None
        if self.model_name == "RobModel":
            self._use_robmodel_normalization(model)
        self._model_training = False
        self._batchnorm_training = False
        self._dropout_training = False

    # --- the attack ---------------------------------------------------------------------------

    def forward(self, inputs, labels=None, *args, **kwargs):
        """The attack on images in [0, 1]; each attack defines it."""
        raise NotImplementedError

    def __call__(self, inputs, labels=None, *args, **kwargs):
        """With a normalisation set, images come and go normalised; the attack itself runs on
        [0, 1] images, the model seeing them normalised."""
        with attack_mode(self.model, self._set_attack_training):
            if self._normalization_applied is not True:
                return self.forward(inputs, labels, *args, **kwargs)
            inputs = self.inverse_normalize(inputs)
            self._normalization_applied = False
            try:
                adv_inputs = self.forward(inputs, labels, *args, **kwargs)
            finally:
                self._normalization_applied = True
            return self.normalize(adv_inputs)

    def get_logits(self, inputs, labels=None, *args, **kwargs):
        """The model's logits on inputs, normalised first while an attack runs on [0, 1]."""
        if self._normalization_applied is False:
            inputs = self.normalize(inputs)
        return logits_of(self.model(inputs))

    @torch.no_grad()
    def get_output_with_eval_nograd(self, inputs):
        with attack_mode(self.model, freeze=False):
            return self.get_logits(inputs)

    def _sign_attack(self, attack, images, labels, **kw):
        """Runs fastadv's `attack` on the images with torchattacks' loss (cross-entropy,
        towards the target labels in the targeted modes)."""
        images = self._unit_images(images)
        if images.numel() == 0:
            return images
        if torch.is_tensor(labels):
            labels = labels.detach().to(self.device)
        target = self.get_target_label(images, labels) if self.targeted else None
        if self.targeted and target is None:
            raise ValueError(f"labels: the {self.attack_mode} mode attacks towards them; give them")
        with torch.enable_grad():
            result = attack(
                self.get_logits,
                images,
                labels,
                target=target,
                ignore_index=IGNORE_INDEX,
                evaluate=False,
                **kw,
            )
        return result.adv

    def _iterate(self, images, labels, random_start: bool):
        """BIM, or PGD with a random start; steps=0 returns the start (one step of size 0, so
        the arguments are checked the same way)."""
        steps = _checked_steps(self.steps)
        alpha = self.alpha if steps else 0.0
        return self._sign_attack(
            pgd if random_start else ifgsm,
            images,
            labels,
            eps=self.eps,
            alpha=alpha,
            steps=max(steps, 1),
        )

    # --- device, model, normalisation ---------------------------------------------------------

    def set_model(self, model):
        self.model = model
        self.model_name = type(model).__name__

    def set_device(self, device):
        self.device = device

    def set_normalization_used(self, mean, std):
        mean, std = _per_channel(mean, "mean"), _per_channel(std, "std")
        if mean.shape != std.shape:
            raise ValueError(
                f"std must have one value a channel like mean ({mean.shape[1]}), got {std.shape[1]}"
            )
        if (std == 0).any():
            raise ValueError("std must be nonzero in every channel")
        self.normalization_used = {"mean": mean, "std": std}
        self._normalization_applied = True

    def normalize(self, inputs):
        mean, std = self._normalization(inputs, "normalize")
        return (inputs - mean) / std

    def inverse_normalize(self, inputs):
        mean, std = self._normalization(inputs, "inverse_normalize")
        return inputs * std + mean

    def _normalization(self, inputs, caller: str):
        if self.normalization_used is None:
            raise TypeError(f"{caller}: no normalisation is set; call set_normalization_used first")
        return (self.normalization_used[k].to(inputs.device) for k in ("mean", "std"))

    def _unit_images(self, images):
        """The images an attack runs on: float [B, C, H, W] in [0, 1] (within rounding when
        __call__ has just un-normalised them), on the attack's device."""
        if not torch.is_tensor(images) or not images.is_floating_point() or images.dim() != 4:
            got = list(images.shape) if torch.is_tensor(images) else type(images).__name__
            raise TypeError(f"inputs must be a float tensor [B, C, H, W], got {got}")
        images = images.detach().to(self.device)
        if images.numel() == 0:
            return images
        unnormalised = self._normalization_applied is False
        slack = ROUNDING if unnormalised else 0.0
        lo, hi = (v.item() for v in torch.aminmax(images))
        if not (lo >= -slack and hi <= 1 + slack):
            hint = (
                ", un-normalised with the mean and std of set_normalization_used,"
                if unnormalised
                else " (normalised inputs: give their mean and std to set_normalization_used)"
            )
            raise ValueError(f"inputs{hint} must lie in [0, 1], got [{lo:.4g}, {hi:.4g}]")
        return images.clamp(0, 1) if unnormalised else images

    def _use_robmodel_normalization(self, model):
        """MAIR's RobModel carries its mean and std; torchattacks takes them over when every
        mean is nonzero or every std differs from 1 (its test, kept)."""
        mean, std = getattr(model, "mean", None), getattr(model, "std", None)
        if mean is None or std is None:
            return
        mean, std = _per_channel(mean, "mean"), _per_channel(std, "std")
        if (mean != 0).all() or (std != 1).all():
            self.set_normalization_used(mean.flatten(), std.flatten())

    # --- modes --------------------------------------------------------------------------------

    def get_mode(self):
        return self.attack_mode

    def set_mode_default(self):
        """Untargeted; the target function stays for get_target_label, as in torchattacks."""
        self.attack_mode = "default"
        self.targeted = False
        print(f"{self.attack}: attack mode is now 'default'")

    def set_mode_targeted_by_function(self, target_map_function, quiet=False):
        """Targets from target_map_function(images, labels), images in [0, 1]."""
        if target_map_function is not None and not callable(target_map_function):
            raise TypeError(
                "target_map_function must be callable as f(images, labels), "
                f"got {type(target_map_function).__name__}"
            )
        self._set_mode_targeted("targeted(custom)", target_map_function, quiet)

    def set_mode_targeted_random(self, quiet=False):
        self._set_mode_targeted("targeted(random)", self.get_random_target_label, quiet)

    def set_mode_targeted_least_likely(self, kth_min=1, quiet=False):
        """Towards the class with the kth_min-th smallest logit among those other than the
        label (the clean prediction when no labels are given)."""
        kth_min = _checked_int(kth_min, "kth_min")
        if kth_min < 1:
            raise KthMinRangeError(f"kth_min must be >= 1, got {kth_min}")
        self._set_mode_targeted("targeted(least-likely)", self.get_least_likely_label, quiet)
        self._kth_min = kth_min

    def set_mode_targeted_by_label(self, quiet=False):
        """The labels given to the attack are its targets."""
        self._set_mode_targeted("targeted(label)", "the labels themselves", quiet)

    def _set_mode_targeted(self, mode, target_map_function, quiet):
        if "targeted" not in self.supported_mode:
            raise ValueError(
                f"{self.attack} supports the modes {self.supported_mode}, not targeted ones"
            )
        self.targeted = True
        self.attack_mode = mode
        self._target_map_function = target_map_function
        if not quiet:
            print(f"{self.attack}: attack mode is now '{mode}'")

    def set_model_training_mode(
        self, model_training=False, batchnorm_training=False, dropout_training=False
    ):
        """The model's mode while attacking: eval (default), or train with the BatchNorm and
        Dropout layers in eval unless their flags say train."""
        self._model_training = model_training
        self._batchnorm_training = batchnorm_training
        self._dropout_training = dropout_training

    def _set_attack_training(self):
        if not self._model_training:
            self.model.eval()
            return
        self.model.train()
        # torchattacks tells the layers apart by their class names
        for module in self.model.modules():
            name = type(module).__name__
            if ("BatchNorm" in name and not self._batchnorm_training) or (
                "Dropout" in name and not self._dropout_training
            ):
                module.eval()

    # --- target labels ------------------------------------------------------------------------

    def get_target_label(self, inputs, labels=None):
        if self._target_map_function is None:
            raise ValueError(
                "target_map_function is None: give one with set_mode_targeted_by_function"
            )
        if self.attack_mode == "targeted(label)":
            return labels
        return self._target_map_function(inputs, labels)

    @torch.no_grad()
    def get_least_likely_label(self, inputs, labels=None):
        logits = self.get_output_with_eval_nograd(inputs)
        others, known = _other_classes(logits, labels)
        kth_min = getattr(self, "_kth_min", 1)
        if kth_min > others.shape[1]:
            raise KthMinClassesError(
                f"kth_min must be <= {others.shape[1]} (the classes other than the label), "
                f"got {kth_min}"
            )
        pick = _by_sample(logits).gather(1, others).kthvalue(kth_min, dim=1).indices
        return _targets(others, pick, known, logits).to(self.device)

    @torch.no_grad()
    def get_random_target_label(self, inputs, labels=None):
        """A class other than the label, uniformly; torch's global generator draws one number
        a sample, in torchattacks' order, so both libraries pick the same classes."""
        logits = self.get_output_with_eval_nograd(inputs)
        others, known = _other_classes(logits, labels)
        if others.shape[1] == 0:
            raise ValueError("a random target needs a model with 2 classes or more")
        pick = (others.shape[1] * torch.rand(others.shape[0])).long().to(others.device)
        return _targets(others, pick, known, logits).to(self.device)

    # --- save and load ------------------------------------------------------------------------

    def save(
        self,
        data_loader,
        save_path=None,
        verbose=True,
        return_verbose=False,
        save_predictions=False,
        save_clean_inputs=False,
        save_type="float",
    ):
        """Attacks every batch of data_loader; with save_path, writes a dict of the adversarial
        inputs ([0, 1], or uint8 with save_type="int"), labels and optionally predictions and
        clean inputs. verbose prints, return_verbose returns: robust accuracy (%), mean L2 of the
        successful perturbations, and seconds of the last batch."""
        if save_type not in ("float", "int"):
            raise ValueError(f"save_type must be 'float' or 'int', got {save_type!r}")
        if len(data_loader) == 0:
            raise ValueError("data_loader has no batches")
        stats = _RobustStats() if verbose or return_verbose or save_predictions else None
        parts = {"adv_inputs": [], "labels": [], "preds": [], "clean_inputs": []}
        batches = tqdm(data_loader, desc=f"{self.attack} save", disable=not verbose)
        for inputs, labels in batches:
            start = time.time()
            adv_inputs = self(inputs, labels)
            if stats is not None:
                preds = self._predictions(adv_inputs)
                stats.add(preds, labels, adv_inputs, inputs)
                elapsed_time = time.time() - start
                batches.set_postfix_str(str(stats))
            if save_path is not None:
                parts["adv_inputs"].append(adv_inputs.detach().cpu())
                parts["labels"].append(labels.detach().cpu())
                if save_predictions:
                    parts["preds"].append(preds.cpu())
                if save_clean_inputs:
                    parts["clean_inputs"].append(inputs.detach().cpu())
        if save_path is not None:
            torch.save(self._saved(parts, save_type), save_path)
        if return_verbose:
            return stats.robust_accuracy, stats.mean_l2, elapsed_time
        return None

    def _predictions(self, adv_inputs):
        logits = self.get_output_with_eval_nograd(adv_inputs)
        if logits.dim() != 2:
            raise ValueError(
                "save: the robust accuracy and predictions need classifier logits [B, K], got "
                f"{list(logits.shape)}; pass verbose=False and save_predictions=False"
            )
        return logits.max(1).indices

    def _saved(self, parts, save_type):
        saved = {key: torch.cat(values) for key, values in parts.items() if values}
        for key in ("adv_inputs", "clean_inputs"):
            if key in saved and self.normalization_used is not None:
                saved[key] = self.inverse_normalize(saved[key])
            if key in saved and save_type == "int":
                saved[key] = self.to_type(saved[key], "int")
        saved["save_type"] = save_type
        return saved

    @staticmethod
    def load(
        load_path,
        batch_size=128,
        shuffle=False,
        normalize=None,
        load_predictions=False,
        load_clean_inputs=False,
    ):
        """A DataLoader over what save wrote: (adv_inputs, labels[, preds][, clean_inputs]),
        the inputs normalised with normalize={"mean": ..., "std": ...} when given."""
        saved = torch.load(load_path)
        keys = ["adv_inputs", "labels"]
        for key, wanted, flag in (
            ("preds", load_predictions, "save_predictions"),
            ("clean_inputs", load_clean_inputs, "save_clean_inputs"),
        ):
            if wanted and key not in saved:
                raise KeyError(f"{load_path} has no {key}: save it with {flag}=True")
            if wanted:
                keys.append(key)
        for key in {"adv_inputs", "clean_inputs"} & set(keys):
            if saved["save_type"] == "int":
                saved[key] = saved[key].float() / 255
            if normalize is not None:
                mean = _per_channel(normalize["mean"], "normalize['mean']")
                std = _per_channel(normalize["std"], "normalize['std']")
                saved[key] = (saved[key] - mean) / std
        print(f"load: the batches hold {keys}")
        return DataLoader(
            TensorDataset(*(saved[k] for k in keys)), batch_size=batch_size, shuffle=shuffle
        )

    @staticmethod
    def to_type(inputs, type):  # the keyword is torchattacks'
        """Images as type "int" (float32 in [0, 1] to uint8: x * 255, truncated) or "float"
        (uint8 to float32 in [0, 1]); other dtypes come back unchanged."""
        if type == "int":
            return (inputs * 255).to(torch.uint8) if inputs.dtype == torch.float32 else inputs
        if type == "float":
            return inputs.float() / 255 if inputs.dtype == torch.uint8 else inputs
        raise ValueError(f"type must be 'float' or 'int', got {type!r}")

    def __repr__(self):
        info = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        for key in ("model", "attack", "supported_mode"):
            info.pop(key)
        info["normalization_used"] = self.normalization_used is not None
        return f"{self.attack}({', '.join(f'{k}={v}' for k, v in info.items())})"


class FGSM(Attack):
    """Goodfellow et al.'s fast gradient sign method: one step of size eps."""

    def __init__(self, model, eps=8 / 255):
        super().__init__("FGSM", model)
        self.eps = eps
        self.supported_mode = ["default", "targeted"]

    def forward(self, images, labels=None):
        return self._sign_attack(fgsm, images, labels, eps=self.eps)


class BIM(Attack):
    """Kurakin et al.'s basic iterative method; steps=0 takes their schedule."""

    def __init__(self, model, eps=8 / 255, alpha=2 / 255, steps=10):
        super().__init__("BIM", model)
        self.eps = eps
        self.alpha = alpha
        # torchattacks' schedule rounds down (fastadv.attacks.kurakin_steps rounds up)
        self.steps = int(min(eps * 255 + 4, 1.25 * eps * 255)) if steps == 0 else steps
        self.supported_mode = ["default", "targeted"]

    def forward(self, images, labels=None):
        return self._iterate(images, labels, random_start=False)


class PGD(Attack):
    """Madry et al.'s projected gradient descent: BIM from a uniform random start (torch's
    global generator, drawn as torchattacks draws it)."""

    def __init__(self, model, eps=8 / 255, alpha=2 / 255, steps=10, random_start=True):
        super().__init__("PGD", model)
        self.eps = eps
        self.alpha = alpha
        self.steps = steps
        self.random_start = random_start
        self.supported_mode = ["default", "targeted"]

    def forward(self, images, labels=None):
        return self._iterate(images, labels, random_start=self.random_start)


class _RobustStats:
    """Robust accuracy (%) and the mean L2 of the successful perturbations, over the batches
    seen so far (torchattacks' save statistics)."""

    def __init__(self):
        self.correct, self.total, self.l2 = 0, 0, []

    def add(self, preds, labels, adv_inputs, inputs):
        right = preds == labels.to(preds.device)
        self.correct, self.total = self.correct + int(right.sum()), self.total + len(labels)
        delta = (adv_inputs - inputs.to(adv_inputs.device)).flatten(1)
        self.l2.append(delta[~right].norm(p=2, dim=1))

    @property
    def robust_accuracy(self) -> float:
        return 100 * self.correct / self.total

    @property
    def mean_l2(self) -> float:
        return torch.cat(self.l2).mean().item()

    def __str__(self):
        return f"robust accuracy {self.robust_accuracy:.2f} %, L2 {self.mean_l2:.5f}"


def _device_of(model):
    try:
        return next(model.parameters()).device
    except (AttributeError, TypeError, StopIteration):
        return None


def _checked_int(value, name: str) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {value}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None


def _checked_steps(steps) -> int:
    steps = _checked_int(steps, "steps")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    return steps


def _per_channel(values, name: str) -> torch.Tensor:
    """mean or std as a [1, C, 1, 1] tensor (the dtype torch gives the values)."""
    t = values.detach().cpu().clone() if torch.is_tensor(values) else torch.tensor(values)
    if t.dim() != 1 or t.numel() == 0:
        raise ValueError(f"{name} must hold one value a channel, got shape {list(t.shape)}")
    return t.reshape(1, -1, 1, 1)


def _by_sample(logits: torch.Tensor) -> torch.Tensor:
    """Logits [B, K] or [B, K, H, W] as [N, K]: one row a sample (or pixel)."""
    return logits.movedim(1, -1).reshape(-1, logits.shape[1])


def _other_classes(logits, labels):
    """For each sample (or pixel), the class ids other than its label, ascending: [N, K - 1];
    and which have a label (rows of ignore_index get a target of ignore_index). Labels default
    to the prediction, as in torchattacks."""
    if labels is None:
        labels = logits.max(1).indices
    want = [logits.shape[0], *logits.shape[2:]]
    if not torch.is_tensor(labels) or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise TypeError(f"labels must be an integer tensor of shape {want}")
    if list(labels.shape) != want:
        raise ValueError(f"labels must have shape {want}, got {list(labels.shape)}")
    k = logits.shape[1]
    flat = labels.reshape(-1).to(logits.device, torch.long)
    known = flat != IGNORE_INDEX
    if ((flat[known] < 0) | (flat[known] >= k)).any():
        raise ValueError(f"labels holds class ids outside [0, {k}) (ignore_index={IGNORE_INDEX})")
    classes = torch.arange(k, device=logits.device).expand(flat.numel(), k)
    label_or_0 = torch.where(known, flat, 0)[:, None]
    return classes[classes != label_or_0].view(-1, k - 1), known


def _targets(others, pick, known, logits):
    """The picked class of every row, shaped as the labels."""
    target = others.gather(1, pick[:, None]).squeeze(1)
    target = torch.where(known, target, IGNORE_INDEX)
    return target.view(logits.shape[0], *logits.shape[2:])
