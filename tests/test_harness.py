"""fastadv.experiments.harness: resume after a kill, and two gloo processes equal one."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from _toy_study import SETTINGS, ToyData, evaluate

from fastadv.experiments import harness

TESTS = Path(__file__).parent


def run_once(out_dir, **kw):
    torch.set_num_threads(1)
    return harness.run(SETTINGS, ToyData(), evaluate, out_dir, batch_size=3, progress=False, **kw)


def lines(out_dir):
    return sum(len(p.read_text().splitlines()) for p in Path(out_dir).glob("records-*.jsonl"))


def assert_same(a, b):
    assert a.keys() == b.keys()
    for setting in a:
        assert a[setting]["count"] == b[setting]["count"] == len(ToyData())
        assert torch.equal(a[setting]["cm"], b[setting]["cm"])
        assert a[setting]["linf"] == b[setting]["linf"]


def test_resume_after_a_kill(tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [sys.executable, str(TESTS / "_toy_study.py"), str(tmp_path / "killed")], env=env
    )
    deadline = time.time() + 120
    while lines(tmp_path / "killed") < 5 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    written = lines(tmp_path / "killed")
    assert 0 < written < 2 * len(ToyData()), "the run should have been killed mid-way"

    calls = []

    def counting(setting, x, labels):
        calls.append(x.shape[0])
        return evaluate(setting, x, labels)

    torch.set_num_threads(1)
    resumed = harness.run(
        SETTINGS, ToyData(), counting, tmp_path / "killed", batch_size=3, progress=False
    )
    assert lines(tmp_path / "killed") == 2 * len(ToyData())  # nothing lost, nothing written twice
    assert sum(calls) <= 2 * len(ToyData()) - written + 2  # finished batches are not redone
    assert_same(resumed, run_once(tmp_path / "clean"))
    again = []
    harness.run(
        SETTINGS, ToyData(), lambda *a: again.append(1), tmp_path / "killed", progress=False
    )
    assert not again  # a finished study computes nothing


def _worker(rank, world, port, out_dir, results):
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    try:
        summary = run_once(out_dir)
        if rank == 0:
            results.put(
                {
                    s: {k: (v.tolist() if torch.is_tensor(v) else v) for k, v in d.items()}
                    for s, d in summary.items()
                }
            )
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_equal_one(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    mp.start_processes(
        _worker,
        args=(2, port, str(tmp_path / "two"), results),
        nprocs=2,
        start_method="spawn",
        join=True,
    )
    two = results.get(timeout=10)
    two = {
        s: {k: (torch.tensor(v) if k == "cm" else v) for k, v in d.items()} for s, d in two.items()
    }
    assert len(list((tmp_path / "two").glob("records-*.jsonl"))) == 2
    assert_same(two, run_once(tmp_path / "one"))
