"""Berntsen et al.'s study: Table 1 (clean error rates) and Figs. 4-6 (iterations and
distortion that `attack_until_flip` needs to flip each network).

    python -m fastadv.experiments.mindseye --out runs/mindseye [--per-class 20 --max-iters 300]

Networks: "direct", "direct-params", and "triple-0.2", "triple-0.45", "triple-0.7" (the
triple-staged network at each threshold theta). Every correctly classified test image of an
object class is attacked towards each other object class (false positives, Fig. 4) and towards
None (false negatives, Fig. 6), with steps of one grey level (1/255) until the decision flips
or `max_iters` steps were taken (reported as capped, not as flipped).

Losses descended: cross-entropy towards the target for the direct networks; for the
triple-staged one, -log s_y towards object y and sum_c -log(1 - s_c) towards None
(`mindseye.triple_loss`). That loss does not depend on theta, so the attack's trajectory is
the same at every theta and only the stopping point differs; and the flip conditions are
nested (s_y > 0.7 and argmax implies s_y > 0.45 and argmax; all s_c < 0.2 implies all < 0.45).
So one trajectory serves the three thetas: attack_until_flip runs to the first flip (theta 0.2
towards an object, 0.7 towards None), then goes on from there to the next theta, and the
iterations add up.

Resumable: one JSON line per (network, sample, target) is appended to <out>/attacks.jsonl
after each batch, with the adversarial image as <out>/adv/<network>/<sample>-<target>.png; a
rerun skips what is there. Then table1.csv/.md, fig4_*.png/csv, fig6_*.png/csv, fig5_*.png and
summary.json are (re)written from the records.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
import torch

from fastadv.attacks import attack_until_flip
from fastadv.data.rendered import CLASSES, NONE, RenderedObjects, render
from fastadv.metrics import distortion
from fastadv.models import load
from fastadv.models import mindseye as me

DIRECT = ("direct", "direct-params")
TRIPLE = tuple(f"triple-{t}" for t in me.THETAS)
NETWORKS = DIRECT + TRIPLE
PAPER_TABLE1 = {  # Berntsen et al., Table 1 (error rate, %)
    "direct": 0.01,
    "direct-params": 0.01,
    "triple-0.2": 1.34,
    "triple-0.45": 0.57,
    "triple-0.7": 3.09,
}


def main(argv=None) -> None:
    args = _parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    nets = _networks(args.weights)
    test = RenderedObjects("test", args.eval_size, seed=args.seed)
    start = time.time()
    preds = _predictions(nets, test.images(), args.batch_size)
    _write_table1(args.out, preds, test.labels)
    print(f"table 1 ({args.eval_size} test images) in {time.time() - start:.0f} s")
    start = time.time()
    _run_attacks(args, nets, test, preds)
    print(f"attacks in {time.time() - start:.0f} s")
    records = _read_records(args.out)
    _write_figures(args.out, records, args.max_iters)
    _write_fig5(args.out, records, nets, test)
    print(json.dumps(_summary(args.out, records, args.max_iters), indent=1))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fastadv experiment mindseye",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", type=Path, default=Path("runs/mindseye"))
    p.add_argument("--weights", type=Path, default=None, help="default: the shipped weights")
    p.add_argument("--eval-size", type=int, default=2000, help="test images for Table 1")
    p.add_argument("--per-class", type=int, default=20, help="attacked images per object class")
    p.add_argument("--max-iters", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--networks", nargs="+", choices=NETWORKS, default=list(NETWORKS))
    return p


def _networks(folder) -> dict:
    """The shipped direct networks and triple-staged network, in eval mode."""
    return {
        "direct": load("mindseye-direct", weights_dir=folder),
        "direct-params": load("mindseye-direct-params", weights_dir=folder),
        "triple": load("mindseye-triple", weights_dir=folder),
    }


def _decision(name: str):
    """decision(output) -> int64 [B] of network `name`."""
    if name in DIRECT:
        return lambda logits: logits.argmax(1)
    return me.decider(float(name.split("-")[1]))


def _model(nets: dict, name: str):
    return nets[name] if name in DIRECT else nets["triple"]


@torch.no_grad()
def _predictions(nets: dict, images: torch.Tensor, batch: int) -> dict[str, torch.Tensor]:
    """Clean decisions of every network on `images`: name -> int64 [N]."""
    out = {}
    for name in (*DIRECT, "triple"):
        outputs = torch.cat(
            [nets[name](images[s : s + batch]) for s in range(0, len(images), batch)]
        )
        if name in DIRECT:
            out[name] = outputs.argmax(1)
        else:
            out.update({n: _decision(n)(outputs) for n in TRIPLE})
    return out


def _write_table1(out: Path, preds: dict, labels: torch.Tensor) -> None:
    rows = [
        (n, 100 * (p != labels).float().mean().item(), PAPER_TABLE1[n]) for n, p in preds.items()
    ]
    with open(out / "table1.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["network", "error_rate_percent", "paper_error_rate_percent", "test_images"])
        w.writerows([n, f"{e:.2f}", p, len(labels)] for n, e, p in rows)
    lines = ["| network | error rate (ours) | error rate (paper) |", "| --- | --- | --- |"]
    lines += [f"| {n} | {e:.2f} % | {p:.2f} % |" for n, e, p in rows]
    (out / "table1.md").write_text("\n".join(lines) + f"\n\n{len(labels)} test images.\n")


# ---- attacks ---------------------------------------------------------------------------------


def _jobs(test: RenderedObjects, per_class: int) -> list[tuple[int, int]]:
    """(sample, target) pairs: the first `per_class` test images of each object class, each
    towards the two other objects and towards None."""
    samples = [i for c in range(NONE) for i in (test.labels == c).nonzero()[:per_class, 0].tolist()]
    return [(i, t) for i in samples for t in range(NONE + 1) if t != int(test.labels[i])]


def _run_attacks(args, nets, test, preds) -> None:
    done = {(r["network"], r["sample"], r["target"]) for r in _read_records(args.out)}
    images = test.images()
    jobs = _jobs(test, args.per_class)
    groups = [n for n in args.networks if n in DIRECT]
    if any(n in TRIPLE for n in args.networks):
        groups.append("triple")
    for group in groups:
        names = [group] if group in DIRECT else [n for n in TRIPLE if n in args.networks]
        todo = [j for j in jobs if any((n, *j) not in done for n in names)]
        for s in range(0, len(todo), args.batch_size):
            chunk = todo[s : s + args.batch_size]
            idx = torch.tensor([i for i, _ in chunk])
            target = torch.tensor([t for _, t in chunk])
            x = images[idx]
            if group in DIRECT:
                results = {
                    group: _attack(nets[group], x, target, _decision(group), None, args.max_iters)
                }
            else:
                results = _attack_triple(nets["triple"], x, target, names, args.max_iters)
            _append(args.out, chunk, results, preds, test.labels, x)
            print(f"{group}: {min(s + args.batch_size, len(todo))}/{len(todo)} attacks", flush=True)


def _attack(model, x, target, decision, loss_fn, max_iters):
    """(adv, iterations, flipped) of attack_until_flip."""
    r = attack_until_flip(model, x, target, max_iters=max_iters, decision=decision, loss_fn=loss_fn)
    return r.adv, r.iterations, r.success


def _theta(name: str) -> float:
    return float(name.split("-")[1])


def _attack_triple(model, x, target, names, max_iters) -> dict:
    """One trajectory per sample for every theta (see the module docstring): towards objects
    the thetas in increasing order, towards None in decreasing order, each leg going on from
    where the last flipped with the steps left to the sample that has used the fewest. A
    sample can so run past max_iters in a later leg; its record keeps the true count and is
    marked capped."""
    adv, used = x.clone(), torch.zeros(len(x), dtype=torch.long)
    flipped = torch.zeros(len(x), dtype=torch.bool)
    results = {n: (x.clone(), used.clone(), flipped.clone()) for n in names}
    for is_none in (False, True):
        rows = ((target == NONE) == is_none).nonzero().squeeze(1)
        alive = rows
        for name in sorted(names, key=_theta, reverse=is_none):
            if alive.numel():
                budget = max(1, max_iters - int(used[alive].min()))
                r = attack_until_flip(
                    model,
                    adv[alive],
                    target[alive],
                    max_iters=budget,
                    decision=_decision(name),
                    loss_fn=me.triple_loss,
                )
                adv[alive], flipped[alive] = r.adv, r.success
                used[alive] += r.iterations
                alive = alive[r.success & (used[alive] <= max_iters)]
            out = results[name]
            out[0][rows], out[1][rows], out[2][rows] = adv[rows], used[rows], flipped[rows]
            flipped[rows] = False
            flipped[alive] = True
    return results


def _append(out: Path, chunk, results: dict, preds: dict, labels, x) -> None:
    """One JSON line and one PNG per (network, sample, target)."""
    from PIL import Image

    lines = []
    for name, (adv, iters, flipped) in results.items():
        folder = out / "adv" / name
        folder.mkdir(parents=True, exist_ok=True)
        d = distortion(adv, x)
        for k, (i, t) in enumerate(chunk):
            png = (adv[k, 0] * 255).round().to(torch.uint8).numpy()
            Image.fromarray(png).save(folder / f"{i}-{t}.png")
            lines.append(
                {
                    "network": name,
                    "sample": i,
                    "label": int(labels[i]),
                    "target": t,
                    "figure": 6 if t == NONE else 4,
                    "clean_correct": bool(preds[name][i] == labels[i]),
                    "iterations": int(iters[k]),
                    "flipped": bool(flipped[k]),
                    "distortion": float(d[k]),
                    "linf": float((adv[k] - x[k]).abs().max()),
                }
            )
    with open(out / "attacks.jsonl", "a") as f:
        f.writelines(json.dumps(line) + "\n" for line in lines)


def _read_records(out: Path) -> list[dict]:
    path = out / "attacks.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---- figures and summary ---------------------------------------------------------------------


def _kept(records, figure: int, name: str) -> list[dict]:
    """The records of one box: correctly classified clean images only (as the paper filters)."""
    return [
        r for r in records if r["figure"] == figure and r["network"] == name and r["clean_correct"]
    ]


def _capped(r: dict, max_iters: int) -> bool:
    return not r["flipped"] or r["iterations"] > max_iters


def _write_figures(out: Path, records: list[dict], max_iters: int) -> None:
    """fig4/fig6: box plots of iterations (clipped at max_iters, as the paper clips at 1500)
    and of distortion per network, whiskers at the 2nd and 98th percentile; CSVs of the
    plotted values."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for fig_no, what in (
        (4, "false positives (towards another object)"),
        (6, "false negatives (towards None)"),
    ):
        names = [n for n in NETWORKS if _kept(records, fig_no, n)]
        if not names:
            continue
        with open(out / f"fig{fig_no}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(
                ["network", "sample", "target", "iterations", "flipped", "capped", "distortion"]
            )
            for n in names:
                w.writerows(
                    [
                        n,
                        r["sample"],
                        CLASSES[r["target"]],
                        r["iterations"],
                        r["flipped"],
                        _capped(r, max_iters),
                        f"{r['distortion']:.6f}",
                    ]
                    for r in _kept(records, fig_no, n)
                )
        for key, label in (("iterations", "iterations"), ("distortion", "distortion")):
            data = [
                [
                    min(r[key], max_iters) if key == "iterations" else r[key]
                    for r in _kept(records, fig_no, n)
                ]
                for n in names
            ]
            fig, ax = plt.subplots(figsize=(7, 0.6 + 0.55 * len(names)))
            ax.boxplot(data, orientation="horizontal", whis=(2, 98), showfliers=True)
            counts = [sum(_capped(r, max_iters) for r in _kept(records, fig_no, n)) for n in names]
            ticks = [
                f"{n}\n(n={len(d)}, capped {c})"
                for n, d, c in zip(names, data, counts, strict=True)
            ]
            ax.set_yticks(range(1, len(names) + 1), ticks)
            ax.invert_yaxis()
            ax.set_xlabel(label + (f" (clipped at {max_iters})" if key == "iterations" else ""))
            ax.set_title(f"Fig. {fig_no}: {what}", fontsize=10)
            fig.tight_layout()
            fig.savefig(out / f"fig{fig_no}_{key}.png", dpi=110)
            plt.close(fig)


@torch.no_grad()
def _write_fig5(out: Path, records, nets, test, count: int = 8) -> None:
    """Adversarial false positives towards the monkey, ordered by distortion, for the direct +
    parameter-estimation network and the triple-staged network at theta 0.7: rows original,
    adversarial, original with the monkey drawn over it at the angles the network estimates
    on the adversarial image (our renderer for direct-params, the projector for triple)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    for name in ("direct-params", "triple-0.7"):
        rows = sorted(
            (r for r in _kept(records, 4, name) if r["target"] == 0 and r["flipped"]),
            key=lambda r: r["distortion"],
        )
        if not rows:
            continue
        pick = [rows[int(k)] for k in np.linspace(0, len(rows) - 1, min(count, len(rows)))]
        x = test.images()[[r["sample"] for r in pick]]
        adv = torch.stack(
            [
                torch.from_numpy(
                    np.array(Image.open(out / "adv" / name / f"{r['sample']}-{r['target']}.png"))
                ).float()[None]
                / 255
                for r in pick
            ]
        )
        monkey = torch.zeros(len(pick), dtype=torch.long)
        if name == "direct-params":
            angles = nets[name].forward_all(adv)[1].clamp(-me.ANGLE_RANGE, me.ANGLE_RANGE)
            grey, alpha = render(monkey, angles)
        else:
            tri = nets["triple"]
            grey, alpha = tri.projector(monkey, tri.estimator(adv, monkey))
        blend = alpha * grey + (1 - alpha) * x
        fig, axes = plt.subplots(3, len(pick), figsize=(1.5 * len(pick), 5), squeeze=False)
        for j, r in enumerate(pick):
            for i, img in enumerate((x[j], adv[j], blend[j])):
                axes[i, j].imshow(img[0], cmap="gray", vmin=0, vmax=1)
                axes[i, j].axis("off")
            axes[0, j].set_title(f"d={r['distortion']:.3f}\nn={r['iterations']}", fontsize=8)
        fig.suptitle(f"Fig. 5: {name}, false positives towards the monkey", fontsize=10)
        fig.tight_layout()
        fig.savefig(out / f"fig5_{name}.png", dpi=110)
        plt.close(fig)


def _summary(out: Path, records, max_iters: int) -> dict:
    """Medians of iterations and distortion per figure and network (capped samples included
    at their stopping point), the capped counts, and one-sided Mann-Whitney U p-values of each
    triple-staged network against the direct network (H1: the triple-staged one needs more)."""
    from scipy.stats import mannwhitneyu

    summary = {"max_iters": max_iters}
    for fig_no in (4, 6):
        per = {}
        for n in NETWORKS:
            rs = _kept(records, fig_no, n)
            if not rs:
                continue
            it = np.array([min(r["iterations"], max_iters) for r in rs])
            d = np.array([r["distortion"] for r in rs])
            per[n] = {
                "n": len(rs),
                "capped": sum(_capped(r, max_iters) for r in rs),
                "median_iterations": float(np.median(it)),
                "median_distortion": float(np.median(d)),
            }
            base = _kept(records, fig_no, "direct")
            if n in TRIPLE and base:
                for key in ("iterations", "distortion"):
                    b = [min(r[key], max_iters) if key == "iterations" else r[key] for r in base]
                    v = it if key == "iterations" else d
                    per[n][f"p_{key}_gt_direct"] = float(
                        mannwhitneyu(v, b, alternative="greater").pvalue
                    )
        summary[f"fig{fig_no}"] = per
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
