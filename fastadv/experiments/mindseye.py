"""Berntsen et al.'s study: Table 1 (clean error rates) and Figs. 4-6 (iterations and
distortion that `attack_until_flip` needs to flip each network).

    fastadv experiment mindseye --out runs/mindseye [--per-class 20 --max-iters 300]

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

On the harness, the items are the attacks (sample, target) and the settings the networks: one
record a network and attack in <out>/mindseye/, with the adversarial image as
<out>/adv/<network>/<sample>-<target>.png. Then table1.csv/.md, fig4_*.png/csv, fig6_*.png/csv,
fig5_*.png and summary.json are (re)written from the records.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import torch

from fastadv.attacks import attack_until_flip
from fastadv.data.rendered import CLASSES, NONE, RenderedObjects, render
from fastadv.errors import optional_import
from fastadv.experiments.panels import pyplot
from fastadv.experiments.study import Plan, positive_int, shared_arguments
from fastadv.metrics import distortion
from fastadv.models import load
from fastadv.models import mindseye as me

NAME = "mindseye"
HELP = "Berntsen et al.: the Mind's Eye study (Table 1, Figs. 4-6)"
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
COLUMNS = {
    "figure": "fig.",
    "network": "network",
    "n": "attacks",
    "capped": "capped",
    "median_iterations": "median iterations",
    "median_distortion": "median distortion",
    "p_iterations_gt_direct": "p (iterations > direct)",
    "p_distortion_gt_direct": "p (distortion > direct)",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    shared_arguments(
        parser, NAME, images=2000, batch_size=32, threads=1,
        images_help="test images for Table 1; the first --per-class of each object class "
        "among them are attacked",
    )  # fmt: skip
    parser.add_argument(
        "--weights", type=Path, default=None, help="folder of the weights (None: the shipped)"
    )
    parser.add_argument(
        "--per-class", type=positive_int, default=20, help="attacked test images an object class"
    )
    parser.add_argument("--max-iters", type=positive_int, default=300, help="most attack steps")
    parser.add_argument("--seed", type=int, default=0, help="seed of the rendered test images")
    parser.add_argument(
        "--networks", nargs="+", choices=NETWORKS, default=list(NETWORKS), help="networks attacked"
    )


def plan(args: argparse.Namespace, device) -> Plan:
    """The networks, Table 1's clean decisions on the test images, and the attacks."""
    nets = {name: net.to(device) for name, net in _networks(args.weights).items()}
    test = RenderedObjects("test", args.images, seed=args.seed)
    preds = _predictions(nets, test.images().to(device), args.batch_size)
    return Plan(
        list(args.networks),
        Attacks(test, args.per_class),
        make_evaluate(nets, test.labels, preds, args.out, args.max_iters),
        {"nets": nets, "test": test, "preds": preds, "device": device},
        models=list(nets.values()),
    )


class Attacks(torch.utils.data.Dataset):
    """The attacks as the harness's items: (test image, [sample, target]), for the first
    `per_class` test images of each object class, each towards the two other objects and
    towards None."""

    def __init__(self, test: RenderedObjects, per_class: int):
        self.images = test.images()
        self.jobs = _jobs(test, per_class)

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, k: int):
        return self.images[self.jobs[k][0]], torch.tensor(self.jobs[k])


def make_evaluate(nets: dict, labels: torch.Tensor, preds: dict, out: Path, max_iters: int):
    """The harness's evaluate: attack_until_flip on a batch of attacks, one record and one
    adversarial PNG an attack. The first triple-staged theta asked for a batch runs the one
    trajectory of all three thetas (module docstring) and keeps the others' results."""
    trajectories = {}

    def evaluate(network, images, jobs):
        target = jobs[:, 1]
        if network in DIRECT:
            result = _attack(nets[network], images, target, _decision(network), None, max_iters)
        else:
            key = tuple(jobs.flatten().tolist())
            if key not in trajectories:
                trajectories[key] = _attack_triple(
                    nets["triple"], images, target, TRIPLE, max_iters
                )
            result = trajectories[key][network]
        return _records(out, network, jobs, result, preds, labels, images)

    return evaluate


def table(summary: dict[str, dict], args: argparse.Namespace) -> list[dict]:
    """One row a figure and network: attacks, capped, medians, p-values (`_summary`)."""
    nan = float("nan")
    rows = []
    for figure, per in _summary(_records_of(summary), args.max_iters).items():
        if not figure.startswith("fig"):
            continue
        for network, s in per.items():
            row = {"figure": int(figure[3:]), "network": network}
            rows.append(row | {k: s.get(k, nan) for k in list(COLUMNS)[2:]})
    return rows


def report(plan: Plan, summary: dict, rows: list[dict], args: argparse.Namespace):
    """Table 1, the box plots of Figs. 4 and 6, the examples of Fig. 5 and summary.json;
    Table 1 as the text."""
    c = plan.context
    records = _records_of(summary)
    files = _write_table1(args.out, c["preds"], c["test"].labels)
    files += _write_figures(args.out, records, args.max_iters)
    files += _write_fig5(args.out, records, c["nets"], c["test"], c["device"])
    medians = args.out / "summary.json"
    medians.write_text(json.dumps(_summary(records, args.max_iters), indent=1))
    return (args.out / "table1.md").read_text(), [*files, medians]


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


@torch.no_grad()
def _predictions(nets: dict, images: torch.Tensor, batch: int) -> dict[str, torch.Tensor]:
    """Clean decisions of every network on `images`: name -> int64 [N] on the CPU."""
    out = {}
    for name in (*DIRECT, "triple"):
        outputs = torch.cat(
            [nets[name](images[s : s + batch]) for s in range(0, len(images), batch)]
        )
        if name in DIRECT:
            out[name] = outputs.argmax(1).cpu()
        else:
            out.update({n: _decision(n)(outputs).cpu() for n in TRIPLE})
    return out


def _write_table1(out: Path, preds: dict, labels: torch.Tensor) -> list[Path]:
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
    return [out / "table1.csv", out / "table1.md"]


# ---- attacks ---------------------------------------------------------------------------------


def _jobs(test: RenderedObjects, per_class: int) -> list[tuple[int, int]]:
    """(sample, target) pairs: the first `per_class` test images of each object class, each
    towards the two other objects and towards None."""
    samples = [i for c in range(NONE) for i in (test.labels == c).nonzero()[:per_class, 0].tolist()]
    return [(i, t) for i in samples for t in range(NONE + 1) if t != int(test.labels[i])]


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
    adv, used = x.clone(), torch.zeros(len(x), dtype=torch.long, device=x.device)
    flipped = torch.zeros(len(x), dtype=torch.bool, device=x.device)
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


def _records(out: Path, network: str, jobs, result, preds: dict, labels, x) -> list[dict]:
    """One record and one PNG an attack (jobs: [B, 2] sample and target)."""
    from PIL import Image

    adv, iters, flipped = result
    folder = out / "adv" / network
    folder.mkdir(parents=True, exist_ok=True)
    d = distortion(adv, x)
    records = []
    for k, (i, t) in enumerate(jobs.tolist()):
        png = (adv[k, 0] * 255).round().to(torch.uint8).cpu().numpy()
        Image.fromarray(png).save(folder / f"{i}-{t}.png")
        records.append(
            {
                "sample": i,
                "label": int(labels[i]),
                "target": t,
                "figure": 6 if t == NONE else 4,
                "clean_correct": bool(preds[network][i] == labels[i]),
                "iterations": int(iters[k]),
                "flipped": bool(flipped[k]),
                "distortion": float(d[k]),
                "linf": float((adv[k] - x[k]).abs().max()),
            }
        )
    return records


def _records_of(summary: dict[str, dict]) -> list[dict]:
    """The records again, from the harness's summary (a list a field, in attack order), each
    with its "network"."""
    records = []
    for network, s in summary.items():
        fields = [f for f in s if f != "count"]
        for values in zip(*(s[f] for f in fields), strict=True):
            records.append({"network": network, **dict(zip(fields, values, strict=True))})
    return records


# ---- figures and summary ---------------------------------------------------------------------


def _kept(records, figure: int, name: str) -> list[dict]:
    """The records of one box: correctly classified clean images only (as the paper filters)."""
    return [
        r for r in records if r["figure"] == figure and r["network"] == name and r["clean_correct"]
    ]


def _capped(r: dict, max_iters: int) -> bool:
    return not r["flipped"] or r["iterations"] > max_iters


def _write_figures(out: Path, records: list[dict], max_iters: int) -> list[Path]:
    """fig4/fig6: box plots of iterations (clipped at max_iters, as the paper clips at 1500)
    and of distortion per network, whiskers at the 2nd and 98th percentile; CSVs of the
    plotted values."""
    plt = pyplot()
    files = []
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
        files.append(out / f"fig{fig_no}.csv")
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
            files.append(out / f"fig{fig_no}_{key}.png")
    return files


@torch.no_grad()
def _write_fig5(out: Path, records, nets, test, device, count: int = 8) -> list[Path]:
    """Adversarial false positives towards the monkey, ordered by distortion, for the direct +
    parameter-estimation network and the triple-staged network at theta 0.7: rows original,
    adversarial, original with the monkey drawn over it at the angles the network estimates
    on the adversarial image (our renderer for direct-params, the projector for triple)."""
    from PIL import Image

    plt = pyplot()
    files = []
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
            angles = nets[name].forward_all(adv.to(device))[1].cpu()
            grey, alpha = render(monkey, angles.clamp(-me.ANGLE_RANGE, me.ANGLE_RANGE))
        else:
            tri, on_device = nets["triple"], (adv.to(device), monkey.to(device))
            angles = tri.estimator(*on_device)
            grey, alpha = (t.cpu() for t in tri.projector(on_device[1], angles))
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
        files.append(out / f"fig5_{name}.png")
    return files


def _summary(records, max_iters: int) -> dict:
    """Medians of iterations and distortion per figure and network (capped samples included
    at their stopping point), the capped counts, and one-sided Mann-Whitney U p-values of each
    triple-staged network against the direct network (H1: the triple-staged one needs more)."""
    mannwhitneyu = optional_import("scipy.stats").mannwhitneyu
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
    return summary
