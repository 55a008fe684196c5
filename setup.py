"""Builds fastadv._C: the C++ (CPU) kernels always, the CUDA kernels when they can be built.

CUDA is built when torch has CUDA and nvcc is found, or when FASTADV_FORCE_CUDA=1;
FASTADV_SKIP_CUDA=1 skips it. Architectures come from TORCH_CUDA_ARCH_LIST (default "8.0;9.0",
Ampere and Hopper).
"""

import glob
import os
import re
import shutil


def cuda_toolkit() -> str | None:
    """The CUDA toolkit's root: $CUDA_HOME, else the folder above the nvcc on PATH, else
    /usr/local/cuda*. A root counts only when it holds the headers (an nvcc on PATH may be a
    wrapper script elsewhere, which torch's own guess would take for the toolkit)."""
    nvcc = shutil.which("nvcc")
    candidates = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")]
    candidates.append(os.path.dirname(os.path.dirname(os.path.realpath(nvcc))) if nvcc else None)
    candidates += ["/usr/local/cuda", *sorted(glob.glob("/usr/local/cuda-*"), reverse=True)]
    for root in filter(None, candidates):
        if os.path.isfile(os.path.join(root, "include", "cuda_runtime.h")):
            return root
    return None


# torch.utils.cpp_extension reads CUDA_HOME once, when it is imported.
if cuda_toolkit() is not None:
    os.environ["CUDA_HOME"] = cuda_toolkit()

import torch  # noqa: E402
from setuptools import setup  # noqa: E402
from torch.utils.cpp_extension import (  # noqa: E402
    CUDA_HOME,
    BuildExtension,
    CppExtension,
    CUDAExtension,
)

ROOT = os.path.dirname(os.path.abspath(__file__))
DEFAULT_ARCHS = "8.0;9.0"


def read_version() -> str:
    with open(os.path.join(ROOT, "fastadv", "_version.py")) as f:
        return re.search(r'__version__ = "([^"]+)"', f.read()).group(1)


def want_cuda() -> bool:
    if os.environ.get("FASTADV_SKIP_CUDA") == "1":
        return False
    if os.environ.get("FASTADV_FORCE_CUDA") == "1":
        return True
    return torch.version.cuda is not None and CUDA_HOME is not None


def sources(*patterns: str) -> list[str]:
    found = (glob.glob(os.path.join(ROOT, pattern)) for pattern in patterns)
    return sorted(os.path.relpath(p, ROOT) for paths in found for p in paths)


#: nvcc flags of the CUDA kernels besides those torch's BuildExtension adds itself (its
#: COMMON_NVCC_FLAGS, such as -D__CUDA_NO_HALF_CONVERSIONS__, and the -gencode flags of the
#: archs). .ci/nvcc_flags.py hands both to the CMake compile check of kernels/.
NVCC_FLAGS = ["-O3", "-std=c++17"]


def extension():
    version = read_version()
    # No FP traps are used, and without them gcc may turn selects into min/max and vectorise.
    cxx = ["-O3", "-fno-trapping-math", f'-DFASTADV_VERSION="{version}"']
    # at::parallel_for is a header template: without -fopenmp it runs serially in our code even
    # though torch's own kernels are threaded. The libgomp torch has loaded is the one used.
    link = []
    if torch.backends.openmp.is_available():
        cxx.append("-fopenmp")
        link.append("-fopenmp")
    # Every #include of the project's own headers is written from the repository's root.
    common = {"include_dirs": [ROOT], "extra_link_args": link}
    cpp_sources = sources("csrc/*.cpp", "csrc/cpu/*.cpp")
    if not want_cuda():
        print(f"fastadv {version}: building the C++ (CPU) kernels; CUDA skipped")
        return CppExtension("fastadv._C", cpp_sources, extra_compile_args={"cxx": cxx}, **common)

    archs = os.environ.get("TORCH_CUDA_ARCH_LIST") or DEFAULT_ARCHS
    os.environ["TORCH_CUDA_ARCH_LIST"] = archs  # read by torch's build helper
    defines = ["-DFASTADV_WITH_CUDA", f'-DFASTADV_CUDA_ARCHS="{archs}"']
    cuda_sources = sources("csrc/cuda/*.cpp", "kernels/*.cu")
    print(f"fastadv {version}: building the C++ (CPU) and CUDA kernels for archs {archs}")
    return CUDAExtension(
        "fastadv._C",
        cpp_sources + cuda_sources,
        extra_compile_args={"cxx": cxx + defines, "nvcc": [*NVCC_FLAGS, *defines]},
        **common,
    )


if __name__ == "__main__":  # .ci/nvcc_flags.py imports this file for NVCC_FLAGS alone
    setup(
        version=read_version(),
        ext_modules=[extension()],
        cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
    )
