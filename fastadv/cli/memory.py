"""How much memory an attack on a photo will take, and how much the machine has: the check the
photo commands make before any work.

The estimate is what the attack and the writing add to what the process holds once the model
is loaded and the photo read:

- The attack: the tensors autograd keeps from one forward pass for the backward pass (each
  storage once; the model's parameters and buffers, already held, left out) and the logits,
  counted on a pass of the model at the working size on the meta device (`saved_bytes`):
  tensors with shapes and no data, so the count costs no memory and a fraction of a second.
  Counted on real tensors instead, the same passes gave the same bytes to 0.3 MB (fcn8s,
  deeplab and scene-cnn; torchvision's resnet50, mobilenet_v3_small, lraspp_mobilenet_v3_large
  and deeplabv3_resnet50; 3 MB to 1.7 GB), and 4 % over on a mobilenet_v3_small shrinking to
  56 px (tests/test_cli_photos.py). A model that cannot run on the meta device (it reads
  its data, e.g. `if x.mean() > 0.5`) is counted on real probes at longest sides PROBE_SIDES
  instead, fitted with a line in the pixel count, which is exact for fully convolutional
  networks and overestimates networks that resize their input to a size of their own.
  The backward pass takes up to BACKWARD_FACTOR times the saved bytes, the attack's own
  tensors (the image, its perturbation and gradient, Adam's moments, the colour-variance map
  and its intermediates) the attack's `copies` of the working image, and the backend's
  workspaces and thread buffers WORKSPACE bytes.
- Writing: the full-size perturbation, the rounded samples and the file read back to check
  it take WRITE_COPIES float copies of the full-size photo, on the host.

Measured on the CPU (the peak resident memory the attack added, the process's peak reset
before it; the count in brackets, then the estimate): hide_classes with fcn8s-synthcity,
95-106 MB (35 MB; 219 MB) at 256x256, 345-366 MB (140 MB; 474 MB) at 512x512, 1.06-1.12 GB
(0.56 GB; 1.50 GB) at 1024x1024, 2.68 GB (1.50 GB; 3.77 GB) at 2048x1365; deeplab-synthcity,
0.99-1.05 GB (0.44 GB; 1.22 GB) at 1024x1024; torchvision's lraspp_mobilenet_v3_large,
0.58-0.60 GB (0.52 GB; 1.37 GB) at 1024x683. The colour-variance protection, whose
classifiers resize to 128 or 224 px and save little, is dominated by its own tensors:
scene-cnn 121-169 MB (3 MB; 309 MB) at 1024x683 and 474 MB (812 MB) at 2048x1365;
torchvision's resnet50, 144 MB (86 MB; 391 MB) at 512x512. So the estimate is 1.2 to 2.7
times the peak: closest for the fully convolutional networks, whose activations grow with the
image. Writing a 6000x4000 photo and reading it back added 0.58 to 0.66 GB, 2.0 to 2.3 float
copies of it (estimate: 0.86 GB).

On a CUDA device the attack's part is checked against the device's free memory (with what
torch's caching allocator holds unused), the writing's against the host's.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn
from torch.func import functional_call

from fastadv._outputs import logits_of
from fastadv.photos import working_size

BACKWARD_FACTOR = 2.25
WORKSPACE = 128 * 2**20
WRITE_COPIES = 3
PROBE_SIDES = (64, 128)  # the real probes' longest sides, for models the meta device cannot run


class AttackMemory:
    """The memory an attack with `model` on `device` needs at a working size (module
    docstring); `copies`: the attack's own tensors, in working images."""

    def __init__(self, model: nn.Module, device, copies: int):
        self.model, self.device, self.copies = model, device, copies
        self._meta = True  # whether the meta device runs the model
        self._counts: dict[tuple[int, int], tuple[int, tuple[int, ...]]] = {}

    def attack_bytes(self, size: tuple[int, int]) -> int:
        """The attack's peak at working size (height, width)."""
        image = 3 * 4 * size[0] * size[1]
        return int(BACKWARD_FACTOR * self.count(size)[0] + self.copies * image + WORKSPACE)

    def count(self, size: tuple[int, int]) -> tuple[int, tuple[int, ...]]:
        """`saved_bytes` at `size`, counted on the meta device, or for a model that cannot run
        there, on the device: at `size` itself up to the larger probe, else from the line
        through the probes."""
        if size not in self._counts:
            self._counts[size] = self._count(size)
        return self._counts[size]

    def _count(self, size: tuple[int, int]) -> tuple[int, tuple[int, ...]]:
        if self._meta:
            try:
                return saved_bytes(self.model, size, "meta")
            except Exception:  # whatever a model that reads its data raises on data-less tensors
                self._meta = False
        probes = [working_size(size, side) for side in PROBE_SIDES]
        (p1, p2), pixels = (h * w for h, w in probes), size[0] * size[1]
        if pixels <= p2:
            return saved_bytes(self.model, size, self.device)
        (m1, _), (m2, logits) = self.count(probes[0]), self.count(probes[1])
        slope = (m2 - m1) / (p2 - p1) if p2 > p1 else 0.0
        dense = (*logits[:2], *size) if len(logits) == 4 else logits
        return int(max(m1, m2, m2 + slope * (pixels - p2))), dense


def saved_bytes(model: nn.Module, size: tuple[int, int], device) -> tuple[int, tuple[int, ...]]:
    """(bytes, logits' shape) of one forward pass of `model` on a [1, 3, *size] image that
    requires grad: the bytes of the storages autograd saves for the backward pass (each once,
    the model's parameters and buffers left out) and of the logits. On the meta device, the
    model runs on data-less copies of its parameters and buffers."""
    state = dict([*model.named_parameters(), *model.named_buffers()])
    if torch.device(device).type == "meta":
        state = {name: torch.empty_like(t, device="meta") for name, t in state.items()}
    held = {_key(t) for t in state.values()}
    storages: dict[object, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        key = _key(tensor)
        if key not in held:
            storages[key] = tensor.untyped_storage().nbytes()
        return tensor

    x = torch.rand(1, 3, *size, device=device, requires_grad=True)
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        logits = logits_of(functional_call(model, state, (x,)))
        pack(logits)
    return sum(storages.values()), tuple(logits.shape)


def _key(tensor: torch.Tensor):
    """What identifies a tensor's storage: its address, or on the meta device (where every
    address is 0) the tensor a view was taken of, kept alive by the graph while counting."""
    if tensor.device.type == "meta":
        return id(tensor._base if tensor._base is not None else tensor)
    return tensor.untyped_storage().data_ptr()


def write_bytes(channels: int, size: tuple[int, int]) -> int:
    """Writing a photo of `channels` x size and reading it back (module docstring)."""
    return WRITE_COPIES * 4 * channels * size[0] * size[1]


def available(device) -> int | None:
    """Bytes that can still be allocated on `device` (a CUDA device or the host), or None when
    the system does not say."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return host_available()


def host_available() -> int | None:
    """The host memory that can still be allocated: the kernel's MemAvailable, or less under
    a cgroup's memory limit (a container's, a batch job's); None where neither is known."""
    known = [room for room in (_meminfo_available(), _cgroup_room()) if room is not None]
    if known:
        return min(known)
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # in kB
    except OSError:
        pass
    return None


def _cgroup_room() -> int | None:
    """The cgroup's memory limit less its usage (cgroup v2, else v1), or None without one."""
    for limit, usage in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        try:
            cap, used = Path(limit).read_text().strip(), Path(usage).read_text().strip()
        except OSError:
            continue
        if cap.isdigit() and int(cap) < 2**60:  # "max", or v1's huge number: no limit
            return max(0, int(cap) - int(used))
    return None


def gigabytes(count: int) -> str:
    return f"{count / 1e9:.1f} GB"
