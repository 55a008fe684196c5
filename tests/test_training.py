"""fastadv.training: the segmentation trainer's helpers, the checkpoint format, and every trainer
stopped and resumed equal to an uninterrupted run (tiny models, a few steps, real data)."""

import pytest
import torch
from safetensors.torch import load_file

from fastadv.models import compact_fcn8s
from fastadv.training import checkpoint
from fastadv.training.__main__ import main
from fastadv.training.segmentation import class_weights, learning_rate, sample_batch


def test_training_helpers(tmp_path):
    images = torch.randint(0, 256, (3, 3, 16, 24), dtype=torch.uint8)
    labels = torch.randint(0, 19, (3, 16, 24), dtype=torch.uint8)
    x, y = sample_batch(images, labels, 4, (8, 12), step=5, seed=0)
    assert x.shape == (4, 3, 8, 12) and y.shape == (4, 8, 12) and y.dtype == torch.int64
    assert torch.equal(x, sample_batch(images, labels, 4, (8, 12), step=5, seed=0)[0])
    assert learning_rate(0, 100, 1.0, 10) == pytest.approx(0.1)
    assert learning_rate(10, 100, 1.0, 10) == pytest.approx(1.0)
    assert learning_rate(100, 100, 1.0, 10) == pytest.approx(0.0)
    w = class_weights(torch.tensor([0, 0, 0, 1]), 3, 0.5)
    assert w[2] == 0 and w[1] > w[0] and w[:2].mean() == pytest.approx(1.0)


def trained_fcn():
    model = compact_fcn8s(3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.rand(2, 3, 16, 16)).sum().backward()
    optimizer.step()
    return model, optimizer


def test_checkpoint_round_trip(tmp_path):
    model, optimizer = trained_fcn()
    checkpoint.save(tmp_path / "c.safetensors", model, optimizer, 7, {"lr": 1e-3})
    fresh = compact_fcn8s(3)
    fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=1e-3)
    saved = checkpoint.load(tmp_path / "c.safetensors", {"lr": 1e-3})
    assert checkpoint.restore(saved, fresh, fresh_opt) == 7
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    state, fresh_state = optimizer.state_dict()["state"], fresh_opt.state_dict()["state"]
    torch.testing.assert_close(state[0]["exp_avg_sq"], fresh_state[0]["exp_avg_sq"])
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]  # no temporary file left


def test_a_checkpoint_cut_short_is_refused(tmp_path):
    model, optimizer = trained_fcn()
    path = tmp_path / "c.safetensors"
    checkpoint.save(path, model, optimizer, 3, {})
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(checkpoint.CheckpointError, match=r"cut short or damaged.*delete it"):
        checkpoint.load(path, {})


def test_a_cut_checkpoint_stops_the_trainer_with_one_line(tmp_path, capsys):
    argv, path, _ = segmentation(tmp_path / "run")
    path.parent.mkdir()
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")  # a header, cut short
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cut short or damaged" in err


def test_a_checkpoint_of_another_run_is_refused(tmp_path):
    model, optimizer = trained_fcn()
    path = tmp_path / "c.safetensors"
    checkpoint.save(path, model, optimizer, 3, {"lr": 0.001, "seed": 0})
    with pytest.raises(checkpoint.CheckpointError, match=r"lr 0\.001 there, 0\.002 here"):
        checkpoint.load(path, {"lr": 0.002, "seed": 0})


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path):
    path = tmp_path / "c.safetensors"
    checkpoint.atomic_write(path, b"old")
    (tmp_path / "in the way").mkdir()
    with pytest.raises(IsADirectoryError):
        checkpoint.atomic_write(tmp_path / "in the way", b"new")
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.safetensors", "in the way"]


SEGMENTATION = [
    "segmentation", "--out", None, "--arch", "fcn8s-compact", "--steps", "4", "--batch", "2",
    "--crop", "32", "64", "--size", "64", "128", "--scenes", "2", "--val-scenes", "1",
    "--checkpoint-every", "1", "--eval-every", "2", "--warmup", "1",
]  # fmt: skip


def segmentation(out, *extra):
    argv = [*SEGMENTATION, "--cache", str(out.parent / "scenes.safetensors"), *extra]
    argv[2] = str(out)
    return argv, out / "checkpoint.safetensors", out / "model.safetensors"


def scenes(out, *extra):
    argv = ["scenes", "--out", str(out / "scene.safetensors"), "--cache", str(out),
            "--train-images", "24", "--val-images", "12", "--size", "16", "--width", "4",
            "--epochs", "2", "--batch", "8", *extra]  # fmt: skip
    return argv, out / "scene.ckpt.safetensors", out / "scene.safetensors"


def mindseye(out, *extra):
    argv = ["mindseye", "direct", "--epochs", "2", "--train-size", "16", "--batch-size", "8",
            "--out", str(out), "--checkpoints", str(out), "--cache", str(out.parent),
            *extra]  # fmt: skip
    return argv, out / "direct-seed0.safetensors", out / "mindseye-direct.safetensors"


@pytest.mark.parametrize("trainer, stop", [(segmentation, 2), (scenes, 1), (mindseye, 1)])
def test_a_stopped_and_resumed_run_equals_an_uninterrupted_one(trainer, stop, tmp_path):
    """Each of these networks has dropout or momentum: the checkpoint must carry the random
    numbers and the optimiser's state for the resumed run to be the same run (segmentation
    stops at a step where it also evaluates, which draws random numbers)."""
    torch.manual_seed(1234)  # the trainers seed themselves: this must not matter
    argv, _, whole = trainer(tmp_path / "whole")
    assert main(argv) == 0
    argv, stopped, weights = trainer(tmp_path / "stopped", "--stop-after", str(stop))
    assert main(argv) == 0
    assert stopped.exists() and not weights.exists()
    torch.rand(100)  # a different random state before the resumed command
    assert main(trainer(tmp_path / "stopped")[0]) == 0
    final, resumed = load_file(whole), load_file(weights)
    assert final.keys() == resumed.keys()
    for key in final:
        assert torch.equal(final[key], resumed[key]), key


def test_reseed_on_resume_restarts_the_random_numbers(tmp_path):
    """How the trainers resumed when the shipped weights were made: dropout's random numbers
    start again from --seed, so that run differs from the uninterrupted one."""
    argv, _, whole = mindseye(tmp_path / "whole")
    assert main(argv) == 0
    assert main(mindseye(tmp_path / "reseeded", "--stop-after", "1")[0]) == 0
    argv, _, reseeded = mindseye(tmp_path / "reseeded", "--reseed-on-resume")
    assert main(argv) == 0
    final, other = load_file(whole), load_file(reseeded)
    assert any(not torch.equal(final[k], other[k]) for k in final)
