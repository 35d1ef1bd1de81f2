#!/usr/bin/env python3
"""Dice table of the demo: federated vs individual model, per bone, per site.

    demo_table.py OUT.md SITE=FEDERATED_CSV,INDIVIDUAL_CSV [SITE=...]

Each CSV is an `fedjoint-site evaluate` metrics.csv (subject,structure,dice,hd95_mm,assd_mm).
Prints the markdown table and writes it to OUT.md. Exits non-zero when a file is missing or
malformed, naming it.
"""
import csv
import statistics
import sys


def read_dice(path):
    """structure -> list of per-subject Dice."""
    per_structure = {}
    try:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                per_structure.setdefault(row["structure"], []).append(float(row["dice"]))
    except (OSError, KeyError, ValueError) as e:
        sys.exit(f"demo_table: {path}: {e}")
    if not per_structure:
        sys.exit(f"demo_table: {path}: no rows")
    return per_structure


def fmt(values):
    if len(values) < 2:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    out = sys.argv[1]
    lines = [
        "| site | bone | subjects | federated Dice | individual Dice |",
        "| --- | --- | ---: | --- | --- |",
    ]
    summary = []
    for arg in sys.argv[2:]:
        site, _, paths = arg.partition("=")
        federated_csv, _, individual_csv = paths.partition(",")
        federated = read_dice(federated_csv)
        individual = read_dice(individual_csv)
        fed_means, ind_means = [], []
        for structure in sorted(federated):
            fed = federated[structure]
            ind = individual.get(structure)
            if ind is None:
                sys.exit(f"demo_table: {individual_csv}: no rows for {structure}")
            lines.append(f"| {site} | {structure} | {len(fed)} | {fmt(fed)} | {fmt(ind)} |")
            fed_means.append(statistics.mean(fed))
            ind_means.append(statistics.mean(ind))
        summary.append((site, statistics.mean(fed_means), statistics.mean(ind_means)))
    lines.append("")
    lines.append("| site | mean Dice, federated | mean Dice, individual |")
    lines.append("| --- | --- | --- |")
    for site, fed, ind in summary:
        lines.append(f"| {site} | {fed:.3f} | {ind:.3f} |")
    text = "\n".join(lines) + "\n"
    with open(out, "w") as f:
        f.write(text)
    print(text, end="")


if __name__ == "__main__":
    main()
