#!/usr/bin/python3
"""Renders held-out phantom slices with the federated model's prediction (docs/images/demo.png).

Reads a finished `make demo` folder: for each site, its first held-out scan, the true labels and
the labels `fedjoint-site evaluate --save-predictions` wrote (numbered in the model's structure
order, mapped to the manifest's label values by name), and draws the slice with the most bone in
three panels (scan, truth, prediction) with the Dice of that subject in the title.

Usage: scripts/prediction_montage.py [--demo demo-out] [--out docs/images/demo.png]
Needs Debian's python3 with nibabel and matplotlib (scripts/install-deps.sh installs both).
"""
import argparse
import csv
import json
import os
import struct
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

COLORS = ["#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231"]


def first_subject(manifest_path):
    with open(manifest_path) as f:
        manifest = yaml.safe_load(f)
    subject = manifest["subjects"][0]
    folder = os.path.dirname(manifest_path)
    return (subject["id"], os.path.join(folder, subject["image"]),
            os.path.join(folder, subject["label"]))


def model_structures(model_file, joint):
    """The joint's structures in the model's label order, from the safetensors metadata."""
    with open(model_file, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
    config = json.loads(header["__metadata__"]["fedjoint.model_config"])
    for j in config["joints"]:
        if j["name"] == joint:
            return j["structures"]
    sys.exit(f"prediction_montage: {model_file} has no joint {joint}")


def to_manifest_values(prediction, structures, label_names):
    """Model label k (structure k-1) -> the manifest's value for that structure name."""
    value_of = {name: int(value) for value, name in label_names.items()}
    out = np.zeros_like(prediction)
    for k, name in enumerate(structures, start=1):
        out[prediction == k] = value_of.get(name, 0)
    return out


def mean_dice(metrics_csv, subject_id):
    with open(metrics_csv, newline="") as f:
        values = [float(r["dice"]) for r in csv.DictReader(f) if r["subject"] == subject_id]
    return sum(values) / len(values) if values else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--demo", default="demo-out")
    parser.add_argument("--out", default="docs/images/demo.png")
    args = parser.parse_args()

    sites = sorted(os.listdir(os.path.join(args.demo, "sites")))
    fig, axes = plt.subplots(len(sites), 3, figsize=(9, 3 * len(sites)), squeeze=False)
    overlay = ListedColormap(COLORS)
    for row, site in enumerate(sites):
        site_dir = os.path.join(args.demo, "sites", site)
        subject_id, image_path, label_path = first_subject(
            os.path.join(site_dir, "data", "test", "manifest.yaml"))
        evaluation = os.path.join(site_dir, "evaluation", "federated")
        prediction_path = os.path.join(evaluation, "predictions", subject_id + "_pred.nii.gz")
        if not os.path.exists(prediction_path):
            sys.exit(f"prediction_montage: {prediction_path} is missing (run the demo first)")
        image = np.asarray(nib.load(image_path).dataobj, dtype=np.float32)
        truth = np.asarray(nib.load(label_path).dataobj).astype(np.int32)
        prediction = np.asarray(nib.load(prediction_path).dataobj).astype(np.int32)
        with open(os.path.join(site_dir, "data", "test", "manifest.yaml")) as f:
            label_names = yaml.safe_load(f)["labels"][site]
        structures = model_structures(
            os.path.join(site_dir, "state", "final", "model.safetensors"), site)
        prediction = to_manifest_values(prediction, structures, label_names)
        # The slice direction with the thickest voxels is how the scan was acquired.
        zooms = nib.load(image_path).header.get_zooms()[:3]
        axis = int(np.argmax(zooms))
        bone_per_slice = (truth > 0).sum(axis=tuple(a for a in range(3) if a != axis))
        index = int(np.argmax(bone_per_slice))
        take = lambda v: np.rot90(np.take(v, index, axis=axis))  # noqa: E731
        lo, hi = np.percentile(image, [1, 99])
        dice = mean_dice(os.path.join(evaluation, "metrics.csv"), subject_id)
        panels = [("scan", None), ("truth", truth), (f"federated (Dice {dice:.2f})", prediction)]
        for col, (title, labels) in enumerate(panels):
            ax = axes[row][col]
            ax.imshow(take(image), cmap="gray", vmin=lo, vmax=hi)
            if labels is not None:
                shown = np.ma.masked_equal(take(labels), 0)
                ax.imshow(shown, cmap=overlay, vmin=1, vmax=len(COLORS), alpha=0.45,
                          interpolation="nearest")
            ax.set_title(f"{site} {subject_id}: {title}" if col == 0 else title, fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    fig.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
