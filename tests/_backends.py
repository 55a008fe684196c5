"""Backends to test each op on, with the device their tensors live on."""

import pytest
import torch

from fastadv.ops import available

GPU = torch.cuda.is_available()
DEVICE = torch.device("cuda" if GPU else "cpu")


def compiled_backends():
    """(backend, device) for every non-reference backend; those that cannot run here are skipped.

    Triton runs on the GPU where there is one, else interpreted on the CPU (small tensors only).
    """
    cases = [
        ("cpu", torch.device("cpu")),
        ("triton", DEVICE),
        ("cuda", torch.device("cuda")),
    ]
    params = []
    for backend, device in cases:
        runnable = device.type != "cuda" or GPU
        runnable = runnable and backend in available(device)
        marks = [] if runnable else [pytest.mark.skip(reason=f"{backend} cannot run here")]
        params.append(pytest.param(backend, device, marks=marks, id=backend))
    return params
