#!/usr/bin/python3
"""`make scarce-site`: does a hospital with few labelled scans gain by joining? (docs/results.md)

  bench/experiments/scarce_site.py [--quick] [--build-dir build] [--out bench-out/scarce-site]
                                   [--seeds N] [--folds K] [--rounds R] [--steps-per-round N]
                                   [--personal-steps N] [--test-subjects N]
                                   [--held-out test|validation] [--baseline-seeds N]

A consortium of four hospital sites on the built-in phantoms, every joint held by at least two
sites in different contrasts or scanner settings (consortium.py):

  north   knee PD (6 labelled) + ankle T1 (4)
  east    knee T2-FS (4) + shoulder PD-FS (4, stronger bias field)
  south   ankle PD (3) + shoulder T2-FS (5), "1.5 T": noisier, 0.9 mm pixels, 3.5 mm slices
  scarce  shoulder T2-FS (2 labelled), noisier, stronger bias field: the scarce site

Folds are by subject at the scarce site: fold f trains on its labelled pair f (disjoint pairs), so
each of its subjects trains in exactly one fold; the other sites keep their training subjects.
Every site is tested on its own held-out subjects (the same for every fold). Seeds change batches,
augmentation and the order of everything random in training (the initial network is fixed).

Schemes, per fold and seed, all with Dice+CE only (no contrastive or shape-prior term), AdamW at
5e-3 with cosine decay, batches of 8, the same augmentation and joint-balanced sampling:

  individual   each site alone, rounds x steps + personalization steps (the most compute any
               site spends in any scheme)
  central      one model on the pooled training data, 4 x rounds x steps
  fedbn        today's defaults: FedBN scopes, sample weighting, a schedule per round, a fresh
               optimizer each round
  recipe       FedBN scopes, uniform weighting, one schedule over the phase, optimizer state kept
               at the site across rounds
  personal     recipe's final model fine-tuned at each site (personalization steps)
  joint-norms  (with --joint-norms) the recipe with normalization per joint, averaged over the
               sites holding it, instead of per site and joint (what "domain" means)

Each site trains rounds x steps in every federated scheme. Outputs OUT/results.md (tables, paired
Wilcoxon tests over fold x seed with Holm correction, effect sizes), OUT/results.csv, plots and
every run's folder; a rerun with the same sizes reuses finished runs.
"""

import argparse
import csv
import dataclasses
import sys
from pathlib import Path
from statistics import mean

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from consortium import SITES, Dataset, Site  # noqa: E402
from configs import STRUCTURES  # noqa: E402
from federation import Consortium, SiteSpec, federate  # noqa: E402
from procs import run_logged, run_parallel, write_atomically  # noqa: E402
import harness  # noqa: E402
import scarce_report  # noqa: E402

FEDERATION_TIMEOUT_S = 4 * 3600
FEDBN_SCOPES = [{"pattern": "*.norms.*", "scope": "site"}, {"pattern": "heads.*", "scope": "domain"},
                {"pattern": "*", "scope": "global"}]
HELD_OUT_FIRST_INDEX = {"test": 100, "validation": 200}
SCHEMES = ["individual", "central", "fedbn", "recipe", "personal", "joint-norms"]


@dataclasses.dataclass
class Sizes:
    folds: int
    seeds: int
    rounds: int
    steps_per_round: int
    personal_steps: int
    test_subjects: int
    width: float
    # Which children are scored: "test" (indices from 100) for results, "validation" (from 200,
    # never a test child) for choosing a budget or an option without looking at the test set.
    held_out: str = "test"

    @property
    def steps(self):  # per site, federated
        return self.rounds * self.steps_per_round


FULL = Sizes(folds=3, seeds=3, rounds=10, steps_per_round=20, personal_steps=50, test_subjects=3,
             width=0.25)
QUICK = Sizes(folds=1, seeds=1, rounds=2, steps_per_round=2, personal_steps=2, test_subjects=1,
              width=0.125)


def model_section(sizes: Sizes, joints):
    return {"architecture": "unet_resnet", "encoder_depth": 18, "width_multiplier": sizes.width,
            "input_size": 128, "in_plane_spacing_mm": 1.25, "variant": "domain",
            "joints": [{"name": j, "structures": STRUCTURES[j]} for j in joints]}


def training_section(steps, warmup, federated_schedule="round", keep_state=False):
    return {"steps": steps, "batch_size": 8, "validation_fraction": 0.0,
            "optimizer": {"name": "adamw", "learning_rate": 0.005, "schedule": "cosine",
                          "warmup_steps": warmup, "grad_clip_norm": 1.0,
                          "federated_schedule": federated_schedule,
                          "keep_state_across_rounds": keep_state},
            "loss": {"contrastive_weight": 0.0, "shape_prior_weight": 0.0}}


def phases(sizes: Sizes, scheme):
    """The coordinator's segmentation phase of a federated scheme."""
    s = sizes
    scopes = FEDBN_SCOPES
    if scheme == "fedbn":
        local = training_section(s.steps_per_round, warmup=min(10, s.steps_per_round // 4))
        weighting = "samples"
    else:
        local = training_section(s.steps_per_round, warmup=min(20, s.steps // 10),
                                 federated_schedule="phase", keep_state=True)
        weighting = "uniform"
        if scheme == "joint-norms":
            # Domain = joint: every tensor under the global rule, so each joint's normalization
            # (and head) is averaged over the sites holding the joint.
            scopes = [{"pattern": "*", "scope": "global"}]
    return [{"name": "segmentation", "rounds": s.rounds, "scopes": scopes,
             "weighting": weighting, "model": model_section(s, ["ankle", "knee", "shoulder"]),
             "local": local}]


class Experiment:
    def __init__(self, args, sizes: Sizes):
        self.sizes = sizes
        self.out = Path(args.out).resolve()
        self.site_bin, self.coord_bin = harness.binaries(args.build_dir, "make scarce-site")
        self.data = self.out / "data"
        self.runs = self.out / "runs"
        self.logs = self.out / "logs"
        self.results = []  # dicts: scheme fold seed site joint subject dice
        self.structures = []  # dicts: scheme fold seed site structure subject dice
        self.progress = harness.Progress()

    def check_sizes(self):
        harness.check_sizes(self.out, dataclasses.asdict(self.sizes))

    # ------------------------------------------------------------------ data

    def pool_size(self, site: Site, d: Dataset):
        return d.labelled * self.sizes.folds if site.scarce else d.labelled

    def make_data(self):
        jobs = []
        held_out = self.sizes.held_out
        for site in SITES:
            for d in site.datasets:
                common = ["--joint", d.joint, "--domain", d.domain, "--seed", d.seed,
                          *d.phantom_args]
                for part, first, n in (("train", 0, self.pool_size(site, d)),
                                       (held_out, HELD_OUT_FIRST_INDEX[held_out],
                                        self.sizes.test_subjects)):
                    dst = self.data / site.name / f"{d.joint}-{part}"
                    if (dst / "manifest.yaml").exists():
                        continue
                    jobs.append((self.logs / f"phantoms-{site.name}-{d.joint}-{part}.log",
                                 [self.site_bin, "phantoms", *common, "--subjects", n,
                                  "--first-index", first, "--out", dst]))
        if jobs:
            self.progress(f"generating phantoms ({len(jobs)} sets)")
            for i in range(0, len(jobs), 2):
                run_parallel(jobs[i:i + 2])

    def manifest(self, parts, dst: Path) -> Path:
        """One manifest from [(site, generated folder, subject indices or None for all)]; ids get
        the site's name, since two sites' phantoms may share ids."""
        subjects, labels = [], {}
        for site_name, folder, indices in parts:
            m = yaml.safe_load((folder / "manifest.yaml").read_text())
            chosen = m["subjects"] if indices is None else [m["subjects"][i] for i in indices]
            for subject in chosen:
                subject = dict(subject)
                subject["id"] = f"{site_name}-{subject['id']}"
                for key in ("image", "label"):
                    if key in subject:
                        subject[key] = str(folder / subject[key])
                subjects.append(subject)
            labels.update(m["labels"])
        dst.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(dst, yaml.safe_dump({"subjects": subjects, "labels": labels},
                                             sort_keys=False))
        return dst

    def train_parts(self, site: Site, fold: int):
        """The site's training subjects in `fold` (manifest parts): the scarce site's pair `fold`,
        every subject elsewhere."""
        return [(site.name, self.data / site.name / f"{d.joint}-train",
                 list(range(fold * d.labelled, (fold + 1) * d.labelled)) if site.scarce else None)
                for d in site.datasets]

    def train_manifest(self, site: Site, fold: int) -> Path:
        key = f"fold{fold}" if site.scarce else "all"
        return self.manifest(self.train_parts(site, fold),
                             self.data / "manifests" / key / f"{site.name}-train.yaml")

    def test_manifest(self, site: Site) -> Path:
        held_out = self.sizes.held_out
        return self.manifest([(site.name, self.data / site.name / f"{d.joint}-{held_out}", None)
                              for d in site.datasets],
                             self.data / "manifests" / f"{site.name}-{held_out}.yaml")

    # ------------------------------------------------------------------ training

    def site_config(self, path: Path, manifest: Path, joints, steps, threads, seed) -> Path:
        s = self.sizes
        config = {"name": "experiment", "state_dir": str(path.parent / "state"),
                  "manifest": str(manifest), "threads": threads, "loader_threads": 1,
                  "seed": seed, "model": model_section(s, joints),
                  "training": training_section(steps, warmup=min(20, steps // 10))}
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, yaml.safe_dump(config, sort_keys=False))
        return path

    def train_jobs(self, jobs):
        """[(run, manifest, joints, steps, threads, seed)] at once, skipping finished ones."""
        todo = []
        for run, manifest, joints, steps, threads, seed in jobs:
            if (run / "model.safetensors").exists():
                continue
            config = self.site_config(run / "config.yaml", manifest, joints, steps, threads, seed)
            todo.append((run / "train.log", [self.site_bin, "train", "--config", config, "--out",
                                             run, "--quiet"]))
        if todo:
            run_parallel(todo)

    def evaluate(self, model: Path, site: Site, scheme, fold, seed, out: Path):
        if not (out / "metrics.csv").exists():
            run_logged(out / "evaluate.log", [self.site_bin, "evaluate", "--model", model,
                                              "--manifest", self.test_manifest(site), "--out",
                                              out, "--threads", 2])
        joints = {sub["id"]: sub["joint"] for sub in
                  yaml.safe_load(self.test_manifest(site).read_text())["subjects"]}
        per_subject = {}
        with open(out / "metrics.csv", newline="") as f:
            for r in csv.DictReader(f):
                per_subject.setdefault(r["subject"], []).append(float(r["dice"]))
                self.structures.append({"scheme": scheme, "fold": fold, "seed": seed,
                                        "site": site.name, "structure": r["structure"],
                                        "subject": r["subject"], "dice": float(r["dice"])})
        for subject, dices in per_subject.items():
            self.results.append({"scheme": scheme, "fold": fold, "seed": seed, "site": site.name,
                                 "joint": joints[subject], "subject": subject,
                                 "dice": mean(dices)})

    def site_seed(self, site: Site, seed: int) -> int:
        return 1000 * seed + [x.name for x in SITES].index(site.name) + 1

    def core(self, consortium, fold, seed):
        """Alone vs the recipe (and its personalized models): the target comparison."""
        s = self.sizes
        base = self.runs / f"fold{fold}-seed{seed}"
        train = {site.name: self.train_manifest(site, fold) for site in SITES}
        joints = {site.name: [d.joint for d in site.datasets] for site in SITES}

        self.progress(f"fold {fold} seed {seed}: individual")
        jobs = []
        individual = {}
        for site in SITES:
            # Only the scarce site's data depends on the fold: the others' individual runs are
            # the same for every fold and trained once per seed.
            run = (base if site.scarce else self.runs / f"seed{seed}") / "individual" / site.name
            individual[site.name] = run
            jobs.append((run, train[site.name], joints[site.name], s.steps + s.personal_steps, 1,
                         self.site_seed(site, seed)))
        for i in range(0, len(jobs), 2):
            self.train_jobs(jobs[i:i + 2])
        for site in SITES:
            self.evaluate(individual[site.name] / "model.safetensors", site, "individual", fold,
                          seed, individual[site.name] / "evaluation")

        personalization = {"personalization": {"steps": s.personal_steps,
                                               "learning_rate": 0.001,
                                               "parameters": "decoder"}}
        self.federated(consortium, fold, seed, "recipe", personalization)
        self.save()

    def federated(self, consortium, fold, seed, scheme, extra=None):
        s = self.sizes
        base = self.runs / f"fold{fold}-seed{seed}"
        train = {site.name: self.train_manifest(site, fold) for site in SITES}
        self.progress(f"fold {fold} seed {seed}: {scheme} (federated, 4 sites)")
        run = base / scheme
        finals = federate(consortium, run,
                          [SiteSpec(site.name, train[site.name], self.site_seed(site, seed), extra)
                           for site in SITES],
                          phases(s, scheme), FEDERATION_TIMEOUT_S)
        for site in SITES:
            self.evaluate(finals[site.name], site, scheme, fold, seed,
                          run / "evaluation" / site.name)
            if extra and "personalization" in extra:
                personal = finals[site.name].parent / "personalized"
                self.evaluate(personal, site, "personal", fold, seed,
                              run / "evaluation-personal" / site.name)

    def baselines(self, consortium, fold, seed, which):
        """Today's FedBN defaults and pooled central training (those in `which`), for the same
        unit."""
        if "fedbn" in which:
            self.federated(consortium, fold, seed, "fedbn")
        if "central" in which:
            self.central(fold, seed)
        self.save()

    def central(self, fold, seed):
        """One network on every site's training subjects of the unit, 4 x the steps of a site."""
        base = self.runs / f"fold{fold}-seed{seed}"
        self.progress(f"fold {fold} seed {seed}: central (pooled)")
        run = base / "central"
        pooled = self.manifest([part for site in SITES for part in self.train_parts(site, fold)],
                               base / "pooled-train.yaml")
        self.train_jobs([(run, pooled, ["ankle", "knee", "shoulder"],
                          len(SITES) * self.sizes.steps, 2, seed)])
        for site in SITES:
            self.evaluate(run / "model.safetensors", site, "central", fold, seed,
                          run / "evaluation" / site.name)

    def save(self):
        for name, rows, key in (("results.csv", self.results, "joint"),
                                ("structures.csv", self.structures, "structure")):
            text = f"scheme,fold,seed,site,{key},subject,dice\n" + "".join(
                f"{r['scheme']},{r['fold']},{r['seed']},{r['site']},{r[key]},{r['subject']},"
                f"{r['dice']:.6f}\n" for r in rows)
            write_atomically(self.out / name, text)


SIZE_OPTIONS = ("seeds", "folds", "rounds", "steps_per_round", "personal_steps", "test_subjects")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI smoke size (numbers meaningless)")
    parser.add_argument("--build-dir", default="build")
    parser.add_argument("--out", default="bench-out/scarce-site")
    parser.add_argument("--joint-norms", action="store_true",
                        help="also run the recipe with normalization per joint (baseline seeds)")
    parser.add_argument("--baseline-seeds", type=int, default=None,
                        help="seeds (the first ones) that also run the baselines (default all)")
    parser.add_argument("--baselines", default="fedbn,central",
                        help="comma-separated baselines to run: fedbn, central (default both)")
    for field in SIZE_OPTIONS:
        parser.add_argument("--" + field.replace("_", "-"), type=int)
    parser.add_argument("--held-out", choices=sorted(HELD_OUT_FIRST_INDEX),
                        help="score test children (default) or validation children, to choose a "
                             "budget or an option without looking at the test set")
    args = parser.parse_args()
    sizes = dataclasses.replace(QUICK if args.quick else FULL)
    for field in SIZE_OPTIONS + ("held_out",):
        if getattr(args, field) is not None:
            setattr(sizes, field, getattr(args, field))
    if sizes.folds < 1 or sizes.seeds < 1 or sizes.test_subjects < 1:
        parser.error("need --folds, --seeds and --test-subjects >= 1")
    baselines = [b for b in args.baselines.split(",") if b]
    if any(b not in ("fedbn", "central") for b in baselines):
        parser.error(f"--baselines: expected fedbn and/or central, got '{args.baselines}'")
    command = " ".join(["bench/experiments/scarce_site.py", *sys.argv[1:]])

    def body():
        e = Experiment(args, sizes)
        e.check_sizes()
        e.make_data()
        consortium = Consortium(e.out / "consortium", e.site_bin, e.coord_bin)
        # The target comparison first, for every unit (seeds outermost: an interrupted run still
        # has every fold of its first seeds); then the baselines.
        for seed in range(1, sizes.seeds + 1):
            for fold in range(sizes.folds):
                e.core(consortium, fold, seed)
                scarce_report.write(e.results, e.out, command, sizes, e.progress.elapsed(),
                                    e.structures)
        baseline_seeds = sizes.seeds if args.baseline_seeds is None else args.baseline_seeds
        for seed in range(1, min(baseline_seeds, sizes.seeds) + 1):
            for fold in range(sizes.folds):
                e.baselines(consortium, fold, seed, baselines)
                if args.joint_norms:
                    e.federated(consortium, fold, seed, "joint-norms")
                    e.save()
                scarce_report.write(e.results, e.out, command, sizes, e.progress.elapsed(),
                                    e.structures)
        e.progress(f"done: {e.out / 'results.md'}")

    return harness.run("scarce-site", body)


if __name__ == "__main__":
    sys.exit(main())
