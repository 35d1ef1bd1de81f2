"""Tables and statistics of the experiments: per-subject metrics in, markdown out.

A subject's score is the mean over its bones (Dice, HD95, ASSD); schemes are compared on the same
subjects (paired), so the Wilcoxon signed-rank test pairs subject scores. HD95 and ASSD are
undefined when a bone is missed entirely or predicted where there is none; a subject with such a
bone has no HD95 / ASSD score, is left out of those means and counted as "undefined" in the table
(so a scheme that misses bones looks better in distance than it is: read Dice first).
"""

import csv
import io
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import mean, stdev

import yaml
from scipy.stats import wilcoxon

from procs import write_atomically

SETTING_LABEL = {"local": "local", "central": "central", "fedavg": "FedAvg", "fedbn": "FedBN"}


@dataclass
class Row:
    experiment: str   # "schemes" or "scarcity"
    scheme: str
    setting: str      # local, central, fedavg, fedbn
    fold: int         # fold (schemes) or labelled knee subjects (scarcity)
    joint: str
    subject: str
    structure: str
    dice: float
    hd95: float
    assd: float


def read_metrics(path: Path, manifest: Path, experiment, scheme, setting, fold) -> list:
    """Rows of one `fedjoint-site evaluate` metrics.csv; the joint of each subject comes from the
    manifest that was evaluated."""
    joints = {s["id"]: s["joint"] for s in yaml.safe_load(Path(manifest).read_text())["subjects"]}
    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            rows.append(Row(experiment, scheme, setting, fold, joints[r["subject"]], r["subject"],
                            r["structure"], float(r["dice"]), float(r["hd95_mm"]),
                            float(r["assd_mm"])))
    return rows


def write_csv(rows, path: Path):
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(Row.__dataclass_fields__))
    writer.writeheader()
    for row in rows:
        writer.writerow(asdict(row))
    write_atomically(path, text.getvalue())


def configs(rows):
    """(scheme, setting) pairs of the scheme comparison, in the order they were run."""
    seen = []
    for r in rows:
        if r.experiment == "schemes" and (r.scheme, r.setting) not in seen:
            seen.append((r.scheme, r.setting))
    return seen


def subject_scores(rows, scheme, setting, metric="dice", experiment="schemes", joint=None):
    """{(joint, subject): mean over bones} for one configuration."""
    by_subject = {}
    for r in rows:
        if (r.experiment, r.scheme, r.setting) == (experiment, scheme, setting) and \
                (joint is None or r.joint == joint):
            by_subject.setdefault((r.joint, r.subject), []).append(getattr(r, metric))
    out = {}
    for key, values in by_subject.items():
        finite = [v for v in values if math.isfinite(v)]
        out[key] = mean(finite) if len(finite) == len(values) else math.nan
    return out


def mean_sd_values(values):
    """(mean, sd, n) of the finite values; (nan, 0, 0) when there are none, sd 0 for one."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return math.nan, 0.0, 0
    return mean(finite), stdev(finite) if len(finite) > 1 else 0.0, len(finite)


def mean_sd(values, digits=3):
    m, sd, n = mean_sd_values(values)
    if n == 0:
        return "–"
    text = f"{m:.{digits}f}"
    if n > 1:
        text += f" ± {sd:.{digits}f}"
    missing = len(values) - n
    return text + (f" ({missing} undefined)" if missing else "")


def label(scheme_labels, scheme, setting):
    return f"{scheme_labels.get(scheme, scheme)}, {SETTING_LABEL[setting]}"


def joints_of(rows):
    order = ["ankle", "knee", "shoulder"]
    present = {r.joint for r in rows}
    return [j for j in order if j in present] + sorted(present - set(order))


def scheme_table(rows, scheme_labels, metric, digits):
    joints = joints_of([r for r in rows if r.experiment == "schemes"])
    lines = ["| scheme | " + " | ".join(joints) + " | all |",
             "| --- |" + " --- |" * (len(joints) + 1)]
    for scheme, setting in configs(rows):
        cells = []
        for j in joints + [None]:
            cells.append(mean_sd(list(subject_scores(rows, scheme, setting, metric,
                                                     joint=j).values()), digits))
        lines.append(f"| {label(scheme_labels, scheme, setting)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bone_table(rows, scheme_labels):
    schemes_rows = [r for r in rows if r.experiment == "schemes"]
    bones = []
    for r in schemes_rows:
        if (r.joint, r.structure) not in bones:
            bones.append((r.joint, r.structure))
    # Structure names already carry the joint ("knee/femur").
    lines = ["| scheme | " + " | ".join(b for _, b in bones) + " |",
             "| --- |" + " --- |" * len(bones)]
    for scheme, setting in configs(rows):
        cells = []
        for j, b in bones:
            values = [r.dice for r in schemes_rows if (r.scheme, r.setting, r.joint, r.structure)
                      == (scheme, setting, j, b)]
            cells.append(mean_sd(values, 2))
        lines.append(f"| {label(scheme_labels, scheme, setting)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired(rows, a, b):
    """Paired subject Dice of configurations a and b (same subjects, both defined)."""
    sa, sb = subject_scores(rows, *a), subject_scores(rows, *b)
    keys = sorted(k for k in sa if k in sb and math.isfinite(sa[k]) and math.isfinite(sb[k]))
    return [sa[k] for k in keys], [sb[k] for k in keys]


def wilcoxon_p(x, y):
    diffs = [a - b for a, b in zip(x, y)]
    if len(diffs) < 2 or all(d == 0 for d in diffs):
        return math.nan
    return float(wilcoxon(x, y, alternative="two-sided").pvalue)


def wilcoxon_table(rows, scheme_labels, reference):
    lines = [f"| {label(scheme_labels, *reference)} vs | subjects | mean Dice difference "
             "(this − other) | this better / worse | p (two-sided, uncorrected) |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for other in configs(rows):
        if other == reference:
            continue
        x, y = paired(rows, reference, other)
        if not x:
            continue
        d = [a - b for a, b in zip(x, y)]
        p = wilcoxon_p(x, y)
        lines.append(f"| {label(scheme_labels, *other)} | {len(x)} | {mean(d):+.3f} | "
                     f"{sum(v > 0 for v in d)} / {sum(v < 0 for v in d)} | "
                     f"{'–' if math.isnan(p) else f'{p:.3g}'} |")
    return "\n".join(lines)


def ratio_table(rows, scheme_labels):
    lines = ["| scheme | central Dice | FedAvg / central | FedBN / central |",
             "| --- | ---: | ---: | ---: |"]
    for scheme in dict.fromkeys(s for s, setting in configs(rows) if setting == "central"):
        central = [v for v in subject_scores(rows, scheme, "central").values() if math.isfinite(v)]
        if not central:
            continue
        cells = []
        for setting in ("fedavg", "fedbn"):
            fed = [v for v in subject_scores(rows, scheme, setting).values() if math.isfinite(v)]
            cells.append(f"{mean(fed) / mean(central):.3f}" if fed else "–")
        lines.append(f"| {scheme_labels.get(scheme, scheme)} | {mean(central):.3f} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def scarcity_table(rows):
    lines = ["| labelled knees | knee site alone (individual) | with two partner sites (full model, "
             "FedBN) |", "| ---: | ---: | ---: |"]
    sizes = sorted({r.fold for r in rows if r.experiment == "scarcity"})
    for n in sizes:
        cells = []
        for scheme, setting in (("individual", "local"), ("full", "fedbn")):
            values = [v for (j, s), v in subject_scores(
                [r for r in rows if r.fold == n], scheme, setting, experiment="scarcity").items()]
            cells.append(mean_sd(values))
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rounds_table(per_round):
    sites = sorted({s for _, values in per_round for s in values})
    lines = ["| round | " + " | ".join(sites) + " |", "| ---: |" + " ---: |" * len(sites)]
    for r, values in per_round:
        cells = [f"{values[s]:.3f}" if values.get(s) is not None else "–" for s in sites]
        lines.append(f"| {r} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_markdown(rows, per_round, figures, path: Path, command, sizes, seconds, labels):
    """OUT/results.md; `labels`: scheme key -> its name in the tables."""
    full_central, full_fedbn = ("full", "central"), ("full", "fedbn")
    text = f"""# fedjoint experiments — generated by `{command}`

Sizes: {sizes.subjects} labelled subjects per site, {sizes.folds}-fold cross validation,
{sizes.steps} optimizer steps of 8 slices per site and model ({sizes.rounds} federated rounds),
network width {sizes.width}. Wall time {seconds / 60:.1f} min.

Scores are per subject (mean over its bones), then mean ± sd over the subjects of each joint.

## Dice

{scheme_table(rows, labels, "dice", 3)}

## Dice per bone

{bone_table(rows, labels)}

## HD95 (mm)

A subject with a bone missed entirely (or predicted where there is none) has no HD95 or ASSD; it
is counted as undefined and left out of the mean.

{scheme_table(rows, labels, "hd95", 2)}

## ASSD (mm)

{scheme_table(rows, labels, "assd", 2)}

## Paired Wilcoxon signed-rank tests (subject Dice)

Each test pairs the same subjects under two configurations; the p-values are not corrected for the
13 comparisons per table (Holm's correction multiplies the smallest by 13).

{wilcoxon_table(rows, labels, full_fedbn)}

{wilcoxon_table(rows, labels, full_central)}

## Federated / centralized Dice

{ratio_table(rows, labels)}

## Scarcity: knee Dice vs labelled knees

{scarcity_table(rows)}

## Validation Dice per round (full model, FedBN; one subject per site held out of training)

{rounds_table(per_round)}

## Figures

""" + "\n".join(f"![{name}]({Path(p).name})" for name, p in figures) + "\n"
    write_atomically(path, text)
