"""Backends to test each op on, with the device their tensors live on, and GPU conditions."""

import pytest
import torch

from fastadv.ops import available

GPU = torch.cuda.is_available()
DEVICE = torch.device("cuda" if GPU else "cpu")


def compiled_backends():
    """(backend, device) for every non-reference backend; those that cannot run here are skipped.

    Triton runs on the GPU where there is one, else interpreted on the CPU (small tensors only).
    On a machine with a GPU the CUDA cases always run: a fastadv built without its CUDA kernels
    fails them (BackendUnavailableError) rather than skipping them unseen.
    """
    cases = [
        ("cpu", torch.device("cpu")),
        ("triton", DEVICE),
        ("cuda", torch.device("cuda")),
    ]
    params = []
    for backend, device in cases:
        if backend == "cuda":
            runnable = GPU
        else:
            runnable = (device.type != "cuda" or GPU) and backend in available(device)
        marks = [] if runnable else [pytest.mark.skip(reason=f"{backend} cannot run here")]
        params.append(pytest.param(backend, device, marks=marks, id=backend))
    return params


def gpu_backends():
    """The backends that run on CUDA tensors, for the GPU-only tests."""
    return [pytest.param(b, id=b) for b in ("cuda", "triton")]


def free_gpu_gb() -> float:
    return torch.cuda.mem_get_info()[0] / 2**30 if GPU else 0.0


def needs_gpu(free_gb: float = 0.0):
    """Skips a test without a GPU, or with less than `free_gb` GiB free on it."""
    return pytest.mark.skipif(
        not GPU or free_gpu_gb() < free_gb,
        reason=f"needs a GPU with >= {free_gb:g} GiB free" if free_gb else "needs a GPU",
    )


needs_two_gpus = pytest.mark.skipif(
    not GPU or torch.cuda.device_count() < 2, reason="needs two GPUs"
)
