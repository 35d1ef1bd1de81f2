#!/usr/bin/python3
"""Renders a montage of the built-in phantoms (docs/images/phantoms.png).

Generates one subject per joint in three contrasts (the same anatomy, --share-anatomy) and one knee
per age group with `fedjoint-site phantoms`, reads the NIfTI files back with nibabel, and draws
the slice where all bones show best, with the bone labels overlaid in the last column.

Usage: scripts/phantom_montage.py [--site build/site_agent/fedjoint-site]
                                  [--out docs/images/phantoms.png] [--seed 3]
Needs Debian's python3 with nibabel and matplotlib (/usr/bin/python3).
"""
import argparse
import os
import subprocess
import sys
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

JOINTS = ["knee", "ankle", "shoulder"]
DOMAINS = ["t1", "pd", "t2fs"]
AGES = [(6, 6.5), (10, 10.5), (13, 13.5), (16.5, 17)]
COLORS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231"]


def generate(site, out, joint, domain, seed, first, ages=None):
    cmd = [site, "phantoms", "--joint", joint, "--domain", domain, "--subjects", "1",
           "--seed", str(seed), "--first-index", str(first), "--share-anatomy", "--out", out,
           "--log-level", "warn"]
    if ages:
        cmd += ["--min-age", str(ages[0]), "--max-age", str(ages[1])]
    subprocess.run(cmd, check=True)
    with open(os.path.join(out, "manifest.yaml")) as f:
        manifest = yaml.safe_load(f)
    subject = manifest["subjects"][0]
    image = nib.load(os.path.join(out, subject["image"]))
    label = nib.load(os.path.join(out, subject["label"]))
    names = manifest["labels"][joint]
    # nibabel arrays are indexed (i, j, k); a slice is shown with j down and i across.
    return (np.asarray(image.dataobj, dtype=np.float32), np.asarray(label.dataobj),
            image.header.get_zooms(), names, subject["id"])


def best_slice(label):
    """The slice showing the bones best: counts normalised per bone, the first bone (femur,
    calcaneus, humerus) weighted twice so the slice runs through it."""
    score = np.zeros(label.shape[2])
    for value in np.unique(label)[1:]:
        counts = (label == value).reshape(-1, label.shape[2]).sum(axis=0)
        score += (2.0 if value == 1 else 1.0) * counts / counts.max()
    return int(np.argmax(score))


def show(ax, image, k, label=None, names=None):
    plane = image[:, :, k].T
    ax.imshow(plane, cmap="gray", vmin=0, vmax=np.percentile(image, 99.5),
              interpolation="nearest")
    if label is not None:
        lab = label[:, :, k].T.astype(int)
        cmap = ListedColormap(COLORS[: len(names)])
        masked = np.ma.masked_where(lab == 0, lab)
        ax.imshow(masked, cmap=cmap, vmin=0.5, vmax=len(names) + 0.5, alpha=0.45,
                  interpolation="nearest")
        handles = [Patch(color=COLORS[v - 1], label=n) for v, n in sorted(names.items())]
        ax.legend(handles=handles, loc="lower right", fontsize=7, framealpha=0.7)
    ax.set_xticks([])
    ax.set_yticks([])


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", default=os.path.join(root, "build/site_agent/fedjoint-site"))
    parser.add_argument("--out", default=os.path.join(root, "docs/images/phantoms.png"))
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    if not os.access(args.site, os.X_OK):
        sys.exit(f"phantom_montage.py: {args.site} is not an executable (build it, or pass --site)")

    rows = len(JOINTS) + 1
    fig, axes = plt.subplots(rows, 4, figsize=(13, 3.35 * rows))
    with tempfile.TemporaryDirectory() as work:
        for r, joint in enumerate(JOINTS):
            k = None
            for c, domain in enumerate(DOMAINS):
                image, label, zooms, names, sid = generate(
                    args.site, os.path.join(work, f"{joint}-{domain}"), joint, domain, args.seed,
                    r)
                if k is None:
                    k = best_slice(label)
                    first = (image, label, names)
                show(axes[r, c], image, k)
                axes[r, c].set_title(f"{sid}  slice {k}", fontsize=9)
                if c == 0:
                    axes[r, c].set_ylabel(
                        f"{joint}\n{zooms[0]:.2f} x {zooms[1]:.2f} x {zooms[2]:.1f} mm",
                        fontsize=10)
            show(axes[r, 3], first[0], k, first[1], first[2])
            axes[r, 3].set_title(f"{joint} t1 + bone labels", fontsize=9)
        for c, ages in enumerate(AGES):
            image, label, _, names, sid = generate(
                args.site, os.path.join(work, f"age-{c}"), "knee", "pd", args.seed + 1, 10 + c,
                ages)
            k = best_slice(label)
            show(axes[-1, c], image, k, label if c == len(AGES) - 1 else None, names)
            axes[-1, c].set_title(f"knee pd, {ages[0]:g}-{ages[1]:g} years", fontsize=9)
        axes[-1, 0].set_ylabel("growth plates\nand cartilage\nwith age", fontsize=10)
    fig.suptitle("fedjoint phantoms: one subject per joint in three contrasts; knees of four ages",
                 fontsize=11)
    fig.tight_layout()
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    fig.savefig(args.out, dpi=72)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
