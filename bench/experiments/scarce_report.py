"""Tables and tests of the scarce-site experiment (scarce_site.py): per-subject Dice in, markdown
out.

The unit of a paired test is one (fold, seed) run: a site's score in it is the mean Dice of its
held-out subjects (each subject's Dice being the mean over its bones). Every scheme is run on the
same (fold, seed) units, so schemes pair by unit. Tests are two-sided Wilcoxon signed-rank (exact
for these sizes), with Holm's correction over all the comparisons of a table; the effect size is
the mean paired difference and Cohen's d_z (mean difference / sd of the differences).
"""

import csv
import math
import sys
from pathlib import Path
from statistics import mean, stdev

from scipy.stats import wilcoxon

from procs import write_atomically

LABELS = {"individual": "alone (individual)", "central": "central (pooled)",
          "fedbn": "FedBN, today's defaults", "recipe": "recipe (federated)",
          "personal": "recipe + personalization",
          "joint-norms": "recipe, normalization per joint"}
ORDER = ["individual", "central", "fedbn", "recipe", "personal", "joint-norms"]


def unit_scores(results, scheme, site, joint=None):
    """{(fold, seed): mean Dice of the site's (joint's) test subjects}."""
    by_unit = {}
    for r in results:
        if r["scheme"] == scheme and r["site"] == site and (joint is None or r["joint"] == joint):
            by_unit.setdefault((r["fold"], r["seed"]), []).append(r["dice"])
    return {k: mean(v) for k, v in by_unit.items()}


def paired(results, site, a, b, joint=None):
    sa, sb = unit_scores(results, a, site, joint), unit_scores(results, b, site, joint)
    keys = sorted(k for k in sa if k in sb)
    return [sa[k] for k in keys], [sb[k] for k in keys]


def mean_sd(values, digits=3):
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{mean(values):.{digits}f} ± {stdev(values):.{digits}f}"


def wilcoxon_p(x, y):
    diffs = [a - b for a, b in zip(x, y)]
    if len(diffs) < 2 or all(d == 0 for d in diffs):
        return math.nan
    return float(wilcoxon(x, y, alternative="two-sided").pvalue)


def holm(pvalues):
    """Holm-adjusted p-values (same order; NaN stays NaN and is not counted)."""
    indexed = sorted((p, i) for i, p in enumerate(pvalues) if math.isfinite(p))
    m = len(indexed)
    adjusted = [math.nan] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(indexed):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def cohen_dz(x, y):
    diffs = [a - b for a, b in zip(x, y)]
    if len(diffs) < 2 or stdev(diffs) == 0:
        return math.nan
    return mean(diffs) / stdev(diffs)


def sites_of(results):
    order = ["north", "east", "south", "scarce"]
    present = {r["site"] for r in results}
    return [s for s in order if s in present] + sorted(present - set(order))


def joints_at(results, site):
    return sorted({r["joint"] for r in results if r["site"] == site})


def dice_table(results):
    schemes = [s for s in ORDER if any(r["scheme"] == s for r in results)]
    columns = [(site, joint) for site in sites_of(results) for joint in joints_at(results, site)]
    lines = ["| scheme | " + " | ".join(f"{s} {j}" for s, j in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for scheme in schemes:
        cells = [mean_sd(list(unit_scores(results, scheme, s, j).values())) for s, j in columns]
        lines.append(f"| {LABELS[scheme]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def comparison_table(results, comparisons):
    """[(site, a, b)]: paired differences a - b, Wilcoxon, Holm over the table's rows."""
    rows = []
    for site, a, b in comparisons:
        x, y = paired(results, site, a, b)
        if not x:
            continue
        rows.append((site, a, b, x, y, wilcoxon_p(x, y)))
    adjusted = holm([r[5] for r in rows])
    lines = ["| site | comparison | units | difference (mean ± sd) | d_z | p | p (Holm) |",
             "|---|---|---|---|---|---|---|"]
    for (site, a, b, x, y, p), q in zip(rows, adjusted):
        diffs = [u - v for u, v in zip(x, y)]
        lines.append(f"| {site} | {LABELS[a]} − {LABELS[b]} | {len(x)} | {mean_sd(diffs)} | "
                     f"{cohen_dz(x, y):.2f} | {p:.4f} | {q:.4f} |")
    return "\n".join(lines)


def ratio_table(results):
    lines = ["| site | recipe / central | personalized / central | alone / central |",
             "|---|---|---|---|"]
    for site in sites_of(results):
        central = unit_scores(results, "central", site)
        cells = []
        for scheme in ("recipe", "personal", "individual"):
            scores = unit_scores(results, scheme, site)
            ratios = [scores[k] / central[k] for k in scores if k in central and central[k] > 0]
            cells.append(mean_sd(ratios, 2))
        lines.append(f"| {site} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def structure_table(structures):
    """Mean Dice per (site, bone) and scheme, over units and test subjects: where a mean over
    bones hides a bone that one scheme never segments."""
    rows = sorted({(r["site"], r["structure"]) for r in structures})
    schemes = [s for s in ORDER if any(r["scheme"] == s for r in structures)]
    cells = {}
    for r in structures:
        cells.setdefault((r["scheme"], r["site"], r["structure"]), []).append(r["dice"])
    lines = ["| site | bone | " + " | ".join(LABELS[s] for s in schemes) + " |",
             "|---|---|" + "---|" * len(schemes)]
    for site, name in rows:
        values = [f"{mean(cells[(s, site, name)]):.2f}" if (s, site, name) in cells else "–"
                  for s in schemes]
        lines.append(f"| {site} | {name} | " + " | ".join(values) + " |")
    return "\n".join(lines)


def write(results, out: Path, command, sizes, seconds, structures=None):
    sites = sites_of(results)
    scarce = [s for s in sites if s == "scarce"]
    # The target, fixed before the run: does the scarce site gain by joining (the recipe, and its
    # personalized model, against the site alone)? Holm over these two; everything else is a
    # secondary family with its own correction.
    primary = [(s, a, "individual") for s in scarce for a in ("personal", "recipe")]
    scarce_comparisons = [(s, a, b) for s in scarce for a, b in
                          (("fedbn", "individual"), ("central", "individual"),
                           ("personal", "recipe"), ("recipe", "fedbn"),
                           ("joint-norms", "recipe"))]
    every_site = [(s, a, "individual") for s in sites for a in ("recipe", "personal")]
    units = {(r["fold"], r["seed"]) for r in results}
    text = f"""# A scarce site in a four-site consortium

`{command}` — {len(units)} (fold, seed) unit(s), {seconds / 60:.0f} min.
Sizes: {sizes}.

## Mean Dice per site and joint (mean ± sd over folds x seeds)

{dice_table(results)}

## The scarce site gains by joining? (primary: units = fold x seed, Holm over the 2 rows)

{comparison_table(results, primary)}

## The scarce site: the other schemes (secondary; Holm over the table's rows)

{comparison_table(results, scarce_comparisons)}

## Every site: federated vs alone (Holm over the rows)

{comparison_table(results, every_site)}

## Federated / pooled central (per unit, mean ± sd)

{ratio_table(results)}

![Dice per site and scheme](scarce_dice.png)
"""
    if structures:
        text += f"""
## Dice per bone (mean over units and test subjects)

{structure_table(structures)}
"""
    import scarce_plots  # matplotlib only when writing (the statistics tests do not need it)
    scarce_plots.dice_per_site(results, out / "scarce_dice.png")
    write_atomically(out / "results.md", text)


def read_csv(path: Path) -> list:
    """The rows scarce_site.py saved (results.csv or structures.csv)."""
    with open(path, newline="") as f:
        return [{**r, "fold": int(r["fold"]), "seed": int(r["seed"]), "dice": float(r["dice"])}
                for r in csv.DictReader(f)]


if __name__ == "__main__":
    # Re-renders results.md from a run's results.csv: scarce_report.py OUT_DIR "command" "sizes"
    folder = Path(sys.argv[1])
    bones = folder / "structures.csv"
    structures = read_csv(bones) if bones.exists() else None
    write(read_csv(folder / "results.csv"), folder, sys.argv[2], sys.argv[3], 0, structures)
