"""fastadv.experiments.harness and the study runner: resume after a kill, two gloo processes
equal one, one run a folder, and torchrun's workers: rank 0 alone reports, and they end with
torchrun."""

import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import _toy_study
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from _toy_study import SETTINGS, ToyData, evaluate

from fastadv.cli import run_study
from fastadv.errors import UsageError
from fastadv.experiments import harness
from fastadv.experiments.lock import folder_lock

TESTS = Path(__file__).parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}


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


def toy(*args, torchrun=False, **kw):
    """The toy study as `fastadv experiment toy ARGS` in a new process (under torchrun with two
    gloo workers)."""
    command = [sys.executable, str(TESTS / "_toy_study.py"), *map(str, args)]
    if torchrun:
        command[1:1] = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    return subprocess.Popen(command, env=ENV, **kw)


def alive(pid: int) -> bool:
    """A process that runs (a zombie, dead but not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def wait_for(condition, seconds=120):
    deadline = time.time() + seconds
    while not condition() and time.time() < deadline:
        time.sleep(0.05)
    return condition()


def test_resume_after_a_kill(tmp_path):
    proc = toy("--out", tmp_path / "killed", "--delay", 0.3)
    records = tmp_path / "killed" / "toy"
    wait_for(lambda: lines(records) >= 5 or proc.poll() is not None)
    proc.kill()
    proc.wait()
    written = lines(records)
    assert 0 < written < 2 * len(ToyData()), "the run should have been killed mid-way"

    calls = []

    def counting(setting, x, labels):
        calls.append(x.shape[0])
        return evaluate(setting, x, labels)

    torch.set_num_threads(1)
    resumed = harness.run(SETTINGS, ToyData(), counting, records, batch_size=3, progress=False)
    assert lines(records) == 2 * len(ToyData())  # nothing lost, nothing written twice
    assert sum(calls) <= 2 * len(ToyData()) - written + 2  # finished batches are not redone
    assert_same(resumed, run_once(tmp_path / "clean"))
    again = []
    harness.run(SETTINGS, ToyData(), lambda *a: again.append(1), records, progress=False)
    assert not again  # a finished study computes nothing


def test_a_line_cut_short_by_a_kill_is_ended_before_new_lines(tmp_path):
    """A kill can cut the last line short; the next run's first record must not be glued to it
    (it would be lost, and computed again by every later run)."""
    done = run_once(tmp_path)
    records = tmp_path / "records-0.jsonl"
    text = records.read_text()
    records.write_text(text[:-20])  # the last record cut short, as a kill leaves it
    assert_same(run_once(tmp_path), done)  # that record computed again
    whole = [line for line in records.read_text().splitlines() if line.endswith("}")]
    assert len(whole) == 2 * len(ToyData())  # ... on a line of its own
    calls = []
    harness.run(
        SETTINGS, ToyData(), lambda *a: calls.append(1), tmp_path, batch_size=3, progress=False
    )
    assert not calls


def test_aggregate_lines_up_fields_that_some_records_lack():
    records = [
        {"setting": "s", "index": 2, "a": 1.0, "b": 5},
        {"setting": "s", "index": 0, "a": 3.0},
        {"setting": "s", "index": 1, "a": 2.0, "b": 7},
    ]
    summary = harness.aggregate(records, ["s"])["s"]
    assert summary["count"] == 3 and summary["a"] == [3.0, 2.0, 1.0]
    assert math.isnan(summary["b"][0]) and summary["b"][1:] == [7, 5]


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


def test_a_second_run_on_a_folder_in_use_stops_with_a_clear_message(tmp_path, capsys):
    with folder_lock(tmp_path / "toy"):
        assert run_study(_toy_study, ["--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"in use by process {os.getpid()}" in err
        assert not list((tmp_path / "toy").glob("records-*"))  # nothing done
        with pytest.raises(UsageError, match="wait for that run to end or give another --out"):
            with folder_lock(tmp_path / "toy"):
                pass


def test_a_lock_that_guarded_nothing_leaves_nothing(tmp_path):
    with folder_lock(tmp_path / "out" / "toy"):
        assert (tmp_path / "out" / "toy" / "lock").exists()
    assert list(tmp_path.iterdir()) == []
    with folder_lock(tmp_path / "kept"):
        (tmp_path / "kept" / "records-0.jsonl").write_text("{}\n")
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == ["lock", "records-0.jsonl"]
    (tmp_path / "kept" / "records-0.jsonl").unlink()
    with folder_lock(tmp_path / "kept"):  # an earlier run's lock file names its last holder
        pass
    assert (tmp_path / "kept" / "lock").read_text().startswith(f"process {os.getpid()}")


def test_a_run_refused_on_its_model_leaves_no_folder(tmp_path, capsys):
    from fastadv.experiments import hide

    missing = tmp_path / "missing.safetensors"
    out = tmp_path / "runs" / "first"
    assert run_study(hide, ["--model", str(missing), "--out", str(out), "--images", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(missing) in err
    assert list(tmp_path.iterdir()) == []


def test_a_killed_runs_lock_does_not_block(tmp_path):
    hold = f"from fastadv.experiments.lock import folder_lock as f\nwith f({str(tmp_path)!r}):"
    holder = subprocess.Popen(
        [sys.executable, "-c", hold + "\n print('held', flush=True); input()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout.readline() == "held\n"
    with pytest.raises(UsageError, match=f"in use by process {holder.pid}"):
        with folder_lock(tmp_path):
            pass
    holder.kill()  # SIGKILL: no clean-up of any kind
    holder.wait()
    with folder_lock(tmp_path):
        assert (tmp_path / "lock").read_text().startswith(f"process {os.getpid()}")


@pytest.mark.slow
def test_under_torchrun_rank_0_alone_reports(tmp_path):
    proc = toy("--out", tmp_path, torchrun=True, stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0
    assert out.count("| setting | images | mean L-inf |") == 1
    (wrote,) = [line for line in out.splitlines() if line.startswith("wrote")]
    assert str(tmp_path / "toy.csv") in wrote and str(tmp_path / "toy.md") in wrote
    assert "| ifgsm/eps=8 | 10 |" in out  # the table holds both ranks' images
    assert len(list((tmp_path / "toy").glob("records-*.jsonl"))) == 2


@pytest.mark.slow
def test_killing_torchrun_ends_its_workers(tmp_path):
    proc = toy("--out", tmp_path, "--delay", 30, torchrun=True, stderr=subprocess.DEVNULL)
    pids = [tmp_path / "pid-0", tmp_path / "pid-1"]
    try:
        assert wait_for(lambda: all(p.exists() for p in pids))
        workers = [int(p.read_text()) for p in pids]
        assert all(alive(pid) for pid in workers)
        proc.send_signal(signal.SIGKILL)  # torchrun gets no chance to stop them itself
        proc.wait()
        assert wait_for(lambda: not any(alive(pid) for pid in workers), seconds=20), workers
    finally:
        for pid in [int(p.read_text()) for p in pids if p.exists()]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
