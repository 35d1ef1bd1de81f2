#!/usr/bin/env python3
"""Dice tables of the demo: federated, personalized and individual ("alone") models, per site
and joint, on each site's held-out scans.

    demo_table.py OUT.md SITE=FEDERATED_CSV,PERSONALIZED_CSV,ALONE_CSV [SITE=...]

Each CSV is an `fedjoint-site evaluate` metrics.csv (subject,structure,dice,hd95_mm,assd_mm;
structure "joint/bone") of the same site's held-out scans. A scan's Dice for its joint is the
mean over the joint's bones; the table gives the mean (± standard deviation) of that over the
site's held-out scans of the joint, and personalized − alone as the mean of the per-scan
differences with how many scans it is positive for. Prints the markdown and writes it to OUT.md.
Exits non-zero when a file is missing or malformed, or the three files do not cover the same
scans and bones, naming it.
"""
import csv
import math
import statistics
import sys

MODELS = ("federated", "personalized", "alone")


def read_dice(path):
    """{(subject, joint, bone): dice}."""
    rows = {}
    try:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                joint, sep, bone = row["structure"].partition("/")
                if not sep:
                    raise ValueError(f"structure '{row['structure']}' is not joint/bone")
                rows[(row["subject"], joint, bone)] = float(row["dice"])
    except (OSError, KeyError, ValueError) as e:
        sys.exit(f"demo_table: {path}: {e}")
    if not rows:
        sys.exit(f"demo_table: {path}: no rows")
    return rows


def mean_sd(values):
    if len(values) < 2:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def signed(value):
    return "nan" if math.isnan(value) else f"{value:+.3f}"


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    out = sys.argv[1]
    joint_rows, bone_rows = [], []
    higher = {"personalized": 0, "federated": 0}
    personalized_above_federated = 0
    n_rows = 0
    scans_per_row = set()
    for arg in sys.argv[2:]:
        site, _, paths = arg.partition("=")
        files = paths.split(",")
        if not site or len(files) != 3:
            sys.exit(f"demo_table: '{arg}': expected SITE=FEDERATED,PERSONALIZED,ALONE")
        dice = {m: read_dice(f) for m, f in zip(MODELS, files)}
        for m, f in zip(MODELS[1:], files[1:]):
            if set(dice[m]) != set(dice["federated"]):
                sys.exit(f"demo_table: {f} and {files[0]} do not cover the same scans and bones")
        keys = sorted(dice["federated"])
        for joint in sorted({j for _, j, _ in keys}):
            subjects = sorted({s for s, j, _ in keys if j == joint})
            bones = sorted({b for _, j, b in keys if j == joint})
            # Per scan: the mean over the joint's bones.
            per_scan = {m: [statistics.mean(dice[m][(s, joint, b)] for b in bones)
                            for s in subjects] for m in MODELS}
            diffs = [p - a for p, a in zip(per_scan["personalized"], per_scan["alone"])]
            positive = sum(d > 0 for d in diffs)
            mean_diff = statistics.mean(diffs)
            joint_rows.append(
                f"| {site} | {joint} | {len(subjects)} | "
                + " | ".join(mean_sd(per_scan[m]) for m in MODELS)
                + f" | {signed(mean_diff)} ({positive}/{len(subjects)}) |")
            n_rows += 1
            scans_per_row.add(len(subjects))
            means = {m: statistics.mean(per_scan[m]) for m in MODELS}
            for m in higher:
                if means[m] > means["alone"]:
                    higher[m] += 1
            if means["personalized"] > means["federated"]:
                personalized_above_federated += 1
            for b in bones:
                values = {m: [dice[m][(s, joint, b)] for s in subjects] for m in MODELS}
                bone_rows.append(f"| {site} | {joint} | {b} | "
                                 + " | ".join(mean_sd(values[m]) for m in MODELS) + " |")

    scans = " or ".join(str(n) for n in sorted(scans_per_row))
    lines = [
        "Mean Dice over each site's held-out scans of a joint (a scan's Dice: the mean over the "
        "joint's bones); ± is the standard deviation over those scans. federated: the job's "
        "final model with the site's own normalization; personalized: that model fine-tuned on "
        "the site's scans; alone: the site's individual model. personalized − alone: the mean "
        "per-scan difference (scans where it is positive / scans).",
        "",
        "| site | joint | held-out scans | federated | personalized | alone | personalized − alone |",
        "| --- | --- | ---: | --- | --- | --- | --- |",
        *joint_rows,
        "",
        f"Above alone in mean Dice: personalized in {higher['personalized']} of the {n_rows} rows, "
        f"federated in {higher['federated']} of {n_rows}; personalized above federated in "
        f"{personalized_above_federated} of {n_rows}. One training run of each model, "
        f"{scans} held-out scans per site and joint: a difference within the ± spread is not "
        "evidence either way (`make scarce-site` repeats the comparison over folds and seeds, "
        "with paired tests).",
        "",
        "Per bone (mean ± sd over the held-out scans):",
        "",
        "| site | joint | bone | federated | personalized | alone |",
        "| --- | --- | --- | --- | --- | --- |",
        *bone_rows,
    ]
    text = "\n".join(lines) + "\n"
    try:
        with open(out, "w") as f:
            f.write(text)
    except OSError as e:
        sys.exit(f"demo_table: {out}: {e}")
    print(text, end="")


if __name__ == "__main__":
    main()
