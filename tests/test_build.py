"""What was built: on a CUDA build of torch with nvcc present (as in CI), the extension holds
the CUDA kernels, and every compiled op has both a CPU and a CUDA kernel registered."""

import shutil

import pytest
import torch

import fastadv
from fastadv import _ext

CUDA_EXPECTED = torch.version.cuda is not None and shutil.which("nvcc") is not None


def compiled_ops() -> list[str]:
    """The schemas of torch.ops.fastadv that the C++ extension defines (not the Triton ops)."""
    names = {s.name for s in torch._C._jit_get_all_schemas() if s.name.startswith("fastadv::")}
    return sorted(n for n in names if not n.endswith(("_triton", "_triton_")))


def test_extension_imports():
    assert _ext.has_extension(), _ext.extension_error()
    assert len(compiled_ops()) >= 5


@pytest.mark.skipif(not CUDA_EXPECTED, reason="torch without CUDA, or no nvcc: CUDA not built")
def test_cuda_kernels_built():
    info = fastadv.build_info()
    assert info["cuda"] is True
    assert info["cuda_archs"]


@pytest.mark.parametrize("key", ["CPU", "CUDA"])
def test_every_op_has_a_kernel(key):
    if key == "CUDA" and not _ext.has_cuda_kernels():
        pytest.skip("fastadv was built without CUDA kernels")
    for name in compiled_ops():
        assert torch._C._dispatch_has_kernel_for_dispatch_key(name, key), f"{name} lacks {key}"
