"""Compiles, without a GPU, every Triton kernel of fastadv in every specialisation its ops
launch, to PTX and cubin for the given archs, and exits non-zero naming each that fails.

    python -m fastadv.triton.compile_check --arch 80 90

The specialisations come from the launch sites themselves: each op's Triton wrapper is called on
CPU tensors of every form it takes (every dtype, every optional operand present and absent,
32- and 64-bit indexing, ...) inside `recording_launches()`, which records each launch (the
kernel, its arguments and constexprs) instead of running it. Each recorded launch is bound and
specialised by Triton's own binder for the target and compiled with `triton.compile`. Then the
check fails if a kernel of a module of fastadv.triton was never launched, or a bool constexpr
of a kernel took only one value: a new kernel or flag cannot escape it unseen.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import pkgutil
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from triton.compiler.compiler import make_backend
from triton.runtime.jit import create_function_from_signature

import fastadv.triton
from fastadv._tensors import FLOAT_DTYPES, compute_dtype
from fastadv.reference.nearest_fill import LABEL_DTYPES
from fastadv.triton._common import Launch, recording_launches

INT32_LIMIT = 2**31  # a tensor this long takes the 64-bit indexing paths


# ---- the forms each op's wrapper is called with


def _big(dtype) -> torch.Tensor:
    """A [1, 1, 1, 2^31] tensor of one element, expanded: nothing is allocated or read."""
    return torch.empty(1, dtype=dtype).expand(1, 1, 1, INT32_LIMIT)


def sign_step_launches() -> None:
    from fastadv.triton.sign_step import sign_step_triton_

    flags = itertools.product((False, True), repeat=6)
    for dtype, (step, eps, mask, active, quantum, big) in itertools.product(FLOAT_DTYPES, flags):
        x = _big(dtype) if big else torch.zeros(2, 3, 4, 5, dtype=dtype)
        per_sample = torch.zeros(x.shape[0], 1, 1, 1, dtype=compute_dtype(dtype))
        sign_step_triton_(
            x, x, x, 0.1, per_sample if step else None, 0.1, per_sample if eps else None,
            0.0, 1.0, per_sample if mask else None,
            torch.ones(x.shape[0], 1, 1, 1, dtype=torch.bool) if active else None,
            1 / 255 if quantum else None,
        )  # fmt: skip


def nearest_fill_launches() -> None:
    from fastadv.triton.nearest_fill import ROW_BLOCK, nearest_fill_triton

    widths = [2**k for k in range(ROW_BLOCK.bit_length())]  # every row block up to ROW_BLOCK
    for dtype, width, with_distance in itertools.product(LABEL_DTYPES, widths, (False, True)):
        labels = torch.zeros(1, 2, width, dtype=dtype)
        nearest_fill_triton(labels, labels == 0, with_distance)


def color_launches() -> None:
    from fastadv.triton.color import color_variance_triton, delta_e2000_triton, rgb_to_lab_triton

    for dtype in FLOAT_DTYPES:
        pixels = torch.zeros(2, 3, 5, dtype=dtype)
        rgb_to_lab_triton(pixels)
        delta_e2000_triton(pixels, pixels, 1.0, 1.0, 1.0)
        for kernel_size in (3, 5):  # radius 1 is specialised as a constant, 2 is not
            color_variance_triton(torch.zeros(2, 3, 5, 6, dtype=dtype), kernel_size, 1.0, False)


#: Every op with a Triton backend, and the function that calls its wrappers in every form.
OP_LAUNCHES = {
    "sign_step": sign_step_launches,
    "nearest_fill": nearest_fill_launches,
    "color": color_launches,
}


# ---- recording, coverage, compiling


@dataclass(frozen=True)
class Specialisation:
    """One compile job: what `triton.compile` takes, in picklable form."""

    module: str
    kernel: str
    signature: dict
    constexprs: dict
    attrs: dict
    options: dict

    def describe(self) -> str:
        flags = ", ".join(f"{k}={v}" for k, v in self.constexprs.items())
        types = ", ".join(t for t in self.signature.values() if t != "constexpr")
        return f"{self.module}.{self.kernel}[{flags}]({types})"


def kernel_modules() -> list[str]:
    names = [m.name for m in pkgutil.iter_modules(fastadv.triton.__path__)]
    return [n for n in names if not n.startswith("_") and n != "compile_check"]


def record() -> list[Launch]:
    missing = set(kernel_modules()) - set(OP_LAUNCHES)
    if missing:
        raise SystemExit(f"compile_check: no launch forms for fastadv.triton.{sorted(missing)}")
    with recording_launches() as launches:
        for call in OP_LAUNCHES.values():
            call()
    return launches


def coverage_errors(launches: list[Launch]) -> list[str]:
    """Kernels never launched, and bool constexprs seen with one value only."""
    seen: dict[triton.JITFunction, dict[str, set]] = defaultdict(lambda: defaultdict(set))
    for launch in launches:
        for name, value in launch.kwargs.items():
            seen[launch.kernel][name].add(value)
    errors = []
    for module in kernel_modules():
        for name, obj in vars(importlib.import_module(f"fastadv.triton.{module}")).items():
            if not (isinstance(obj, triton.JITFunction) and name.endswith("_kernel")):
                continue
            if obj not in seen:
                errors.append(f"fastadv.triton.{module}.{name} is never launched by the check")
                continue
            for flag, values in seen[obj].items():
                flags = {v for v in values if isinstance(v, bool)}
                if flags and len(flags) < 2:
                    errors.append(f"fastadv.triton.{module}.{name}: {flag} only seen as {flags}")
    return errors


def specialise(launch: Launch, target: GPUTarget) -> Specialisation:
    """What Triton's launcher would compile for this launch on `target`."""
    kernel = launch.kernel
    backend = make_backend(target)
    binder = create_function_from_signature(kernel.signature, kernel.params, backend)
    bound, specialization, options = binder(*launch.args, **launch.kwargs)
    options, signature, constexprs, attrs = kernel._pack_args(
        backend, launch.kwargs, bound, specialization, options
    )
    names = {path: kernel.arg_names[path[0]] for path in constexprs}
    return Specialisation(
        module=kernel.fn.__module__,
        kernel=kernel.fn.__name__,
        signature=signature,
        constexprs={names[p]: v for p, v in constexprs.items()},
        attrs=attrs,
        options=options.__dict__,
    )


def compile_one(job: tuple[Specialisation, int]) -> str | None:
    """None, or why the specialisation does not compile for sm_<arch>."""
    spec, arch = job
    kernel = getattr(importlib.import_module(spec.module), spec.kernel)
    source = ASTSource(kernel, spec.signature, spec.constexprs, spec.attrs)
    try:
        compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32), options=spec.options)
        if not compiled.asm.get("ptx") or not compiled.asm.get("cubin"):
            return f"sm_{arch} {spec.describe()}: no PTX or cubin"
    except Exception as error:  # any compiler error is a finding: report it, go on
        lines = [line for line in str(error).splitlines() if line.strip()] or [repr(error)]
        return f"sm_{arch} {spec.describe()}: {type(error).__name__}: {lines[-1].strip()}"
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fastadv.triton.compile_check", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--arch", type=int, nargs="+", default=[80, 90], help="e.g. 80 90")
    parser.add_argument("--jobs", type=int, default=2, help="compiler processes")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    launches = record()
    errors = coverage_errors(launches)
    jobs = {}
    for arch in args.arch:
        for launch in launches:
            spec = specialise(launch, GPUTarget("cuda", arch, 32))
            jobs[(spec.describe(), repr(spec.attrs), arch)] = (spec, arch)
    with ProcessPoolExecutor(args.jobs) as pool:
        errors += [e for e in pool.map(compile_one, jobs.values(), chunksize=4) if e]
    for error in errors:
        print(f"FAIL {error}", file=sys.stderr)
    seconds = time.perf_counter() - start
    print(
        f"compile_check: {len(jobs)} specialisations of {len(launches)} launches for "
        f"sm_{', sm_'.join(map(str, args.arch))}: {len(errors)} failed ({seconds:.0f} s)"
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
