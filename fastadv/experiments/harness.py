"""A resumable, deterministic, distributable evaluation loop.

A study is a list of settings (attack x eps x model, named by a string key) evaluated on every
image of a dataset. Images are taken in fixed batches (batch b holds images b*n .. b*n+n-1);
under torchrun each rank takes the batches b with b % world_size == rank, so every batch is
computed the same whatever the number of processes. Each (setting, image) result is appended
as one JSON line as soon as it exists; a rerun reads the lines back and computes only what is
missing (a batch with any image missing is recomputed whole, for identical numerics, and only
the missing lines are written). Each rank sums its own records (integer confusion matrices and
counts, per-image values with their index); the partial sums are then reduced across ranks, so
the result equals a single process's exactly.

Under torchrun, `init_distributed` joins the process group and `exit_with_parent` ends a
worker when torchrun ends (torchrun starts its workers in sessions of their own, so a killed
torchrun would leave them running).
"""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

Evaluate = Callable[[str, torch.Tensor, torch.Tensor], list[dict]]
"""(setting, images [B, ...], labels [B, ...]: the dataset's items stacked) -> one record (a
JSON-able dict) an image. A record may hold "cm": an integer confusion matrix (nested lists),
summed by `aggregate`."""


def rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed() -> None:
    """Under torchrun (WORLD_SIZE > 1), joins the process group: NCCL on GPUs, each rank on
    its own (NCCL's object collectives use the current device), gloo on CPUs."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


@functools.cache  # one watcher a process
def exit_with_parent(poll_seconds: float = 0.5) -> None:
    """In a worker that torchrun started, a daemon thread that ends the process as soon as
    torchrun is gone (the worker's parent changes). Records are written line by line and the
    folder lock dies with the process, so the run resumes when started again."""
    if "TORCHELASTIC_RUN_ID" not in os.environ:
        return
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        print(f"fastadv: torchrun ended; worker {os.getpid()} stops", file=sys.stderr)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-torchrun", daemon=True).start()


def read_records(out_dir: Path) -> dict[tuple[str, int], dict]:
    """Every complete line of every records file in out_dir, keyed by (setting, index). A line
    cut short by a killed run is ignored (that result is computed again)."""
    records = {}
    for path in sorted(out_dir.glob("records-*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            records[(record["setting"], record["index"])] = record
    return records


def run(
    settings: Sequence[str],
    dataset,
    evaluate: Evaluate,
    out_dir,
    *,
    batch_size: int = 4,
    device="cpu",
    progress: bool = True,
) -> dict[str, dict]:
    """Evaluates every setting on every image of `dataset` (items (image, labels)), resuming
    from out_dir, and returns `aggregate` of all records, on every rank."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rank, world = rank_and_world()
    done = read_records(out_dir)
    _barrier()  # every rank has read before any rank writes
    batches = [
        range(s, min(s + batch_size, len(dataset))) for s in range(0, len(dataset), batch_size)
    ]
    mine = [b for i, b in enumerate(batches) if i % world == rank]
    work = [(setting, batch) for setting in settings for batch in mine]
    todo = [(s, b) for s, b in work if any((s, i) not in done for i in b)]
    local = {key: rec for key, rec in done.items() if _owned(key[1], batch_size, world, rank)}
    bar = tqdm(
        total=sum(len(b) for _, b in todo),
        desc=f"rank {rank}",
        unit="img",
        disable=not progress or not todo,
        dynamic_ncols=True,
    )
    start = time.perf_counter()
    with _open_for_appending(out_dir / f"records-{rank}.jsonl") as sink:
        for setting, batch in todo:
            images, labels = _load(dataset, batch, device)
            for index, record in zip(batch, evaluate(setting, images, labels), strict=True):
                if (setting, index) in done:
                    continue
                record = {"setting": setting, "index": index, **record}
                sink.write(json.dumps(record) + "\n")
                sink.flush()
                local[(setting, index)] = record
            bar.update(len(batch))
            bar.set_postfix(img_s=f"{bar.n / (time.perf_counter() - start):.2f}", setting=setting)
    bar.close()
    reduced = _reduce(_partial_sums(list(local.values()), settings))
    return {setting: _finish(summary) for setting, summary in reduced.items()}


def aggregate(records: list[dict], settings: Sequence[str]) -> dict[str, dict]:
    """Per setting: "count", "cm" (the sum of the records' confusion matrices, if they carry
    one) and, for every other numeric field, the per-image values in image order: `count`
    values, NaN for an image whose record lacks the field, so that the lists line up."""
    partial = _partial_sums(records, settings)
    return {s: _finish(v) for s, v in partial.items()}


def _empty_sums() -> dict:
    return {"count": 0, "cm": None, "indices": [], "values": {}}


def _partial_sums(records, settings) -> dict[str, dict]:
    out = {s: _empty_sums() for s in settings}
    for record in records:
        summary = out.setdefault(record["setting"], _empty_sums())
        summary["count"] += 1
        summary["indices"].append(record["index"])
        for field, value in record.items():
            if field == "cm":
                cm = torch.tensor(value, dtype=torch.long)
                summary["cm"] = cm if summary["cm"] is None else summary["cm"] + cm
            elif field not in ("setting", "index") and isinstance(value, int | float):
                summary["values"].setdefault(field, []).append((record["index"], value))
    return out


def _merge(parts: list[dict[str, dict]]) -> dict[str, dict]:
    """Sums of the ranks' partial sums: counts and confusion matrices added, values joined."""
    merged = {}
    for part in parts:
        for setting, p in part.items():
            m = merged.setdefault(setting, _empty_sums())
            m["count"] += p["count"]
            m["indices"] += p["indices"]
            if p["cm"] is not None:
                m["cm"] = p["cm"] if m["cm"] is None else m["cm"] + p["cm"]
            for field, pairs in p["values"].items():
                m["values"].setdefault(field, []).extend(pairs)
    return merged


def _finish(summary: dict) -> dict:
    out = {"count": summary["count"]}
    if summary["cm"] is not None:
        out["cm"] = summary["cm"]
    indices = sorted(summary["indices"])
    for field, pairs in summary["values"].items():
        by_index = dict(pairs)
        out[field] = [by_index.get(i, float("nan")) for i in indices]
    return out


def _open_for_appending(path: Path):
    """`path` opened for appending, after ending a line that a killed run cut short (else the
    first new record would be glued to it and lost)."""
    sink = open(path, "a")
    if sink.tell():
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                sink.write("\n")
    return sink


def _owned(index: int, batch_size: int, world: int, rank: int) -> bool:
    return (index // batch_size) % world == rank


def _load(dataset, batch: range, device) -> tuple[torch.Tensor, torch.Tensor]:
    items = [dataset[i] for i in batch]
    images = torch.stack([image for image, _ in items]).to(device)
    labels = torch.stack([label for _, label in items]).to(device)
    return images, labels


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _reduce(partial: dict[str, dict]) -> dict[str, dict]:
    """The ranks' partial sums reduced: on every rank, the sums over all ranks."""
    if not (dist.is_available() and dist.is_initialized()):
        return partial
    parts = [None] * dist.get_world_size()
    dist.all_gather_object(parts, partial)
    return _merge(parts)
