"""Prints, ;-separated for CMake, the nvcc flags torch's BuildExtension compiles fastadv's CUDA
kernels with (its own COMMON_NVCC_FLAGS and setup.py's NVCC_FLAGS), so that the CMake compile
check of kernels/ sees what a GPU user's build sees."""

import importlib.util
from pathlib import Path

from torch.utils.cpp_extension import COMMON_NVCC_FLAGS

spec = importlib.util.spec_from_file_location(
    "fastadv_setup", Path(__file__).parents[1] / "setup.py"
)
setup = importlib.util.module_from_spec(spec)
spec.loader.exec_module(setup)
print(";".join([*COMMON_NVCC_FLAGS, *setup.NVCC_FLAGS]))
