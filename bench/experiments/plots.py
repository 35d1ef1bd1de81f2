"""PNG figures of the experiments (python3-matplotlib, Agg backend: no display needed)."""

import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from procs import readable_mode  # noqa: E402
from report import configs, joints_of, label, mean_sd_values, subject_scores  # noqa: E402


def _save(fig, path: Path):
    """Atomically, like every result file (savefig picks the format from the suffix)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110)
        os.chmod(tmp, readable_mode())
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        Path(tmp).unlink(missing_ok=True)


def dice_per_scheme(rows, labels, path: Path):
    joints = joints_of([r for r in rows if r.experiment == "schemes"])
    cfgs = configs(rows)
    fig, ax = plt.subplots(figsize=(13, 4.5))
    width = 0.8 / max(len(cfgs), 1)
    colors = plt.cm.tab20.colors
    for i, (scheme, setting) in enumerate(cfgs):
        stats = [mean_sd_values(list(subject_scores(rows, scheme, setting, joint=j).values()))
                 for j in joints]
        xs = [k + (i - (len(cfgs) - 1) / 2) * width for k in range(len(joints))]
        ax.bar(xs, [m for m, _, _ in stats], width, yerr=[s for _, s, _ in stats], capsize=2,
               color=colors[i % len(colors)],
               label=label(labels, scheme, setting))
    ax.set_xticks(range(len(joints)), joints)
    ax.set_ylabel("Dice (mean ± sd over subjects)")
    ax.set_ylim(0, 1)
    ax.set_title("Held-out Dice per scheme (k-fold per site)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside, not over, the bars
    fig.tight_layout()
    _save(fig, path)


def scarcity_curve(rows, path: Path):
    sizes = sorted({r.fold for r in rows if r.experiment == "scarcity"})
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for scheme, setting, name in (("individual", "local", "knee site alone (individual)"),
                                  ("full", "fedbn", "with two partner sites (full model, FedBN)")):
        stats = [mean_sd_values(list(subject_scores([r for r in rows if r.fold == n], scheme,
                                                    setting, experiment="scarcity").values()))
                 for n in sizes]
        ax.errorbar(sizes, [m for m, _, _ in stats], yerr=[s for _, s, _ in stats], marker="o",
                    capsize=3, label=name)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.set_xlabel("labelled knee subjects")
    ax.set_ylabel("knee Dice on held-out knees")
    ax.set_ylim(0, 1)
    ax.legend()
    fig.tight_layout()
    _save(fig, path)


def dice_per_round(per_round, path: Path):
    sites = sorted({s for _, values in per_round for s in values})
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for s in sites:
        points = [(r, v[s]) for r, v in per_round if v.get(s) is not None]
        ax.plot([r for r, _ in points], [d for _, d in points], marker=".", label=s)
    ax.set_xlabel("round")
    ax.set_ylabel("validation Dice (site model after local training)")
    ax.set_ylim(0, 1)
    ax.legend()
    fig.tight_layout()
    _save(fig, path)


def make_all(rows, per_round, out: Path, labels):
    """Writes the three figures into `out`; returns [(title, path)]."""
    figures = [("Dice per scheme", out / "dice_per_scheme.png"),
               ("Scarcity curve", out / "scarcity.png"),
               ("Dice per round per site", out / "dice_per_round.png")]
    dice_per_scheme(rows, labels, figures[0][1])
    scarcity_curve(rows, figures[1][1])
    dice_per_round(per_round, figures[2][1])
    return figures
