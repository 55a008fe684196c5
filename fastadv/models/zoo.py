"""torchvision's pretrained networks by name: "torchvision:resnet50", "torchvision:fcn_resnet50".

Any classifier of `torchvision.models` and any network of `torchvision.models.segmentation`
(`torchvision.models.list_models(module=...)`), with its DEFAULT weights, or others named after
a dot: "torchvision:resnet50.IMAGENET1K_V1". The returned module takes images in [0, 1] and
returns logits as a plain tensor: the weights' preprocessing (resize, centre crop,
normalisation) is folded in (`Preprocessed`), and a segmentation network's "out" is resized to
the input's size. A plain tensor rather than torchvision's {"out", "aux"}: every consumer
(the attacks, `model(x).argmax(1)`, the metrics) reads it as it is, and the auxiliary head,
which nothing reads, is dropped instead of computed at every attack step.

The weights come from the torch hub cache (`$TORCH_HOME/hub/checkpoints`, where torchvision
keeps them), or are downloaded there. Before torchvision's builder reads the file (it unpickles
in full), `torch.load(weights_only=True)` checks that it holds only tensors and plain
containers, so a tampered cache file is refused instead of run.
"""

from __future__ import annotations

import difflib
import pickle
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from fastadv.models.info import CLASSIFICATION, SEGMENTATION, ModelError, ModelInfo
from fastadv.models.preprocess import Preprocess, Preprocessed
from fastadv.models.weights import one_line

PREFIX = "torchvision:"


def load(spec: str, download: bool = True) -> tuple[nn.Module, ModelInfo]:
    """(model in eval mode, its ModelInfo) for `spec` = "torchvision:NAME[.WEIGHTS]"."""
    tv = _torchvision(spec)
    name, _, member = spec.removeprefix(PREFIX).partition(".")
    task = _task(tv, spec, name)
    weights = _weights(tv, spec, name, member)
    path = _fetch(spec, weights, download)
    net = tv.models.get_model_builder(name)(weights=weights)
    if getattr(net, "aux_classifier", None) is not None:
        net.aux_classifier = None  # trained for the training loss only; nothing reads it
    model = Preprocessed(net, _preprocess(weights.transforms()), dense=task == SEGMENTATION)
    info = ModelInfo(
        name=f"{PREFIX}{name} ({weights.name})",
        task=task,
        classes=tuple(weights.meta["categories"]),
        source=str(path),
        metadata={"weights": str(weights), "url": weights.url},
    )
    return model.eval(), info


def _torchvision(spec: str):
    try:
        import torchvision
    except ImportError as error:
        raise ModelError(
            f"{spec!r} needs torchvision ({one_line(error)}): pip install 'fastadv[torchvision]'"
        ) from error
    return torchvision


def _task(tv, spec: str, name: str) -> str:
    if name in tv.models.list_models(module=tv.models.segmentation):
        return SEGMENTATION
    classifiers = tv.models.list_models(module=tv.models)
    if name in classifiers:
        return CLASSIFICATION
    known = classifiers + tv.models.list_models(module=tv.models.segmentation)
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise ModelError(
        f"{spec!r}: torchvision has no classifier or segmentation model {name!r}; {hint}"
        "(see torchvision.models.list_models())"
    )


def _weights(tv, spec: str, name: str, member: str):
    choices = tv.models.get_model_weights(name)
    if not member:
        return choices.DEFAULT
    if member not in choices.__members__:
        raise ModelError(
            f"{spec!r}: {name} has no weights {member!r}; choose from "
            f"{', '.join(choices.__members__)}"
        )
    return choices[member]


def cache_path(weights) -> Path:
    """Where torchvision keeps (or would download) the file of `weights`."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name


def _fetch(spec: str, weights, download: bool) -> Path:
    """The cached weights file, downloaded if missing and `download`; checked to unpickle with
    weights_only=True (onto the meta device: no tensor data is read)."""
    path = cache_path(weights)
    present = path.is_file()
    if not present and not download:
        raise ModelError(f"{spec!r}: weights file {path} is missing; download {weights.url} there")
    try:
        torch.hub.load_state_dict_from_url(
            weights.url, map_location="meta", check_hash=True, weights_only=True
        )
    except pickle.UnpicklingError as error:
        raise ModelError(
            f"{spec!r}: {path} holds more than tensors, so it is not loaded; delete it to "
            "download it again"
        ) from error
    except Exception as error:  # downloads and torch.load fail with many exception types
        if present:
            raise ModelError(
                f"{spec!r}: {path} is not a readable checkpoint ({one_line(error)}); delete it "
                "to download it again"
            ) from error
        raise ModelError(
            f"{spec!r}: weights file {path} is missing and could not be downloaded "
            f"({one_line(error)}); download {weights.url} to that path"
        ) from error
    return path


def _preprocess(transform) -> Preprocess:
    """The Preprocess equal to torchvision's ImageClassification or SemanticSegmentation
    preset `transform` (crop_size, resize_size: one-element lists or None)."""
    resize = getattr(transform, "resize_size", None)
    crop = getattr(transform, "crop_size", None)
    return Preprocess(
        transform.mean,
        transform.std,
        resize_size=resize[0] if resize else None,
        crop_size=crop[0] if crop else None,
        mode=transform.interpolation.value,
        antialias=bool(transform.antialias),
    )
