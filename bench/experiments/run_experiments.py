#!/usr/bin/python3
"""`make experiments`: the evidence for fedjoint in one command (docs/results.md).

  bench/experiments/run_experiments.py [--quick] [--build-dir build] [--out bench-out/experiments]
                                       [--steps N] [--folds K] [--subjects N]

On the built-in phantoms of three sites (ankle T1, knee PD, shoulder T2-FS), with k-fold cross
validation per site (subject i is in fold i mod k; every subject is tested exactly once):

  schemes   individual · transfer · shared · multi-domain · + contrastive · + contrastive + shape
            prior (the paper's full model); the last four centrally (pooled data, one process) and
            federated (real coordinator + site processes over mutual TLS), with FedAvg of every
            tensor and with FedBN (normalization stays at the site, heads per joint)
  scarcity  knee Dice vs labelled knee subjects (1, 2, 4, 8): the knee site alone (individual)
            vs the knee site federated with two partner sites (full model, FedBN)
  rounds    each site's validation Dice after every round of one federated run

Every model gets the same training compute: `steps` optimizer steps of 8 slices per site (central
runs: 3 x steps on the pooled data; federated: rounds x steps/rounds per site). Transfer fine-tunes
for `steps` from another joint's individual model, whose own training is not counted. Writes
OUT/results.md, OUT/results.csv, OUT/*.png and keeps every run's folder; a rerun with the same
sizes reuses finished runs. --quick is a smoke size for CI (minutes, numbers meaningless).
"""

import argparse
import dataclasses
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from configs import (DOMAIN, FULL, JOINTS, POOLED, QUICK, SCHEMES, SCOPES, SEED,  # noqa: E402
                     TRANSFER_SOURCE, Sizes, phases, write_site_config)
from federation import Consortium, SiteSpec, federate, round_metrics  # noqa: E402
from procs import run_logged, run_parallel, write_atomically  # noqa: E402
import harness  # noqa: E402
import plots  # noqa: E402
import report  # noqa: E402

FEDERATION_TIMEOUT_S = 4 * 3600


class Experiments:
    def __init__(self, args, sizes: Sizes):
        self.sizes = sizes
        self.out = Path(args.out).resolve()
        self.site_bin, self.coord_bin = harness.binaries(args.build_dir, "make experiments")
        self.data = self.out / "data"
        self.runs = self.out / "runs"
        self.logs = self.out / "logs"
        self.rows = []       # evaluation rows (report.Row)
        self.progress = harness.Progress()

    def check_sizes(self):
        mine = dataclasses.asdict(self.sizes)
        mine["scarcity"] = list(mine["scarcity"])
        harness.check_sizes(self.out, mine)

    # ------------------------------------------------------------------ data

    def make_data(self):
        s = self.sizes
        jobs = []
        for j in JOINTS:
            n = max(s.subjects, max(s.scarcity)) if j == "knee" else s.subjects
            jobs.append((self.logs / f"phantoms-{j}.log",
                         [self.site_bin, "phantoms", "--joint", j, "--domain", DOMAIN[j],
                          "--subjects", n, "--seed", SEED[j], "--out", self.data / j]))
        jobs.append((self.logs / "phantoms-knee-test.log",
                     [self.site_bin, "phantoms", "--joint", "knee", "--domain", "pd",
                      "--subjects", s.scarcity_test, "--first-index", 100, "--seed", SEED["knee"],
                      "--out", self.data / "knee-test"]))
        jobs = [(log, args) for log, args in jobs if not (Path(args[-1]) / "manifest.yaml").exists()]
        if jobs:
            print(f"generating phantoms ({len(jobs)} sets)...", flush=True)
            run_parallel(jobs)

    def subset(self, joint_dir: Path, indices, dst: Path) -> Path:
        """A manifest of some subjects of a generated set (paths made absolute)."""
        m = yaml.safe_load((joint_dir / "manifest.yaml").read_text())
        subjects = [m["subjects"][i] for i in indices]
        for subject in subjects:
            for key in ("image", "label"):
                subject[key] = str(joint_dir / subject[key])
        dst.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(dst, yaml.safe_dump({"subjects": subjects, "labels": m["labels"]},
                                             sort_keys=False))
        return dst

    def merge(self, manifests, dst: Path) -> Path:
        subjects, labels = [], {}
        for path in manifests:
            m = yaml.safe_load(Path(path).read_text())
            subjects += m["subjects"]
            labels.update(m["labels"])
        write_atomically(dst, yaml.safe_dump({"subjects": subjects, "labels": labels},
                                             sort_keys=False))
        return dst

    def fold_manifests(self, fold):
        s = self.sizes
        d = self.data / "folds" / f"fold{fold}"
        train, test = {}, {}
        for j in JOINTS:
            held = [i for i in range(s.subjects) if i % s.folds == fold]
            kept = [i for i in range(s.subjects) if i % s.folds != fold]
            train[j] = self.subset(self.data / j, kept, d / f"{j}-train.yaml")
            test[j] = self.subset(self.data / j, held, d / f"{j}-test.yaml")
        pooled = self.merge([train[j] for j in JOINTS], d / "pooled-train.yaml")
        return train, test, pooled

    # ------------------------------------------------------------------ training

    def train_command(self, run: Path, config: Path, extra=()):
        return [self.site_bin, "train", "--config", config, "--out", run, "--quiet", *extra]

    def train(self, run: Path, config: Path, extra=()):
        """One `fedjoint-site train` (reused when its model exists)."""
        if not (run / "model.safetensors").exists():
            run_logged(run / "train.log", self.train_command(run, config, extra))

    def train_many(self, jobs):
        """[(run, config, extra)] at the same time (one thread each), skipping finished ones."""
        todo = [(run / "train.log", self.train_command(run, config, extra))
                for run, config, extra in jobs if not (run / "model.safetensors").exists()]
        if todo:
            run_parallel(todo)

    def evaluate(self, model: Path, manifest: Path, out: Path, scheme, setting, fold, experiment):
        if not (out / "metrics.csv").exists():  # evaluate writes it atomically, last
            run_logged(out / "evaluate.log", [self.site_bin, "evaluate", "--model", model,
                                              "--manifest", manifest, "--out", out,
                                              "--threads", 2])
        self.rows += report.read_metrics(out / "metrics.csv", manifest, experiment, scheme,
                                         setting, fold)

    def scheme_comparison(self, consortium):
        s = self.sizes
        for fold in range(s.folds):
            train, test, pooled = self.fold_manifests(fold)
            fold_dir = self.runs / f"fold{fold}"
            # Individual: each site alone (three at once, one thread each).
            self.progress(f"fold {fold}: individual")
            ind = {j: fold_dir / "individual" / j for j in JOINTS}
            self.train_many([(ind[j], write_site_config(ind[j] / "config.yaml", s, train[j], [j],
                                                        SCHEMES["individual"], s.steps, 1,
                                                        SEED[j]), ())
                             for j in JOINTS])
            # Transfer: fine-tune another joint's individual model of the same fold (trained on
            # that joint's phantoms only: no subject of this joint, tested or not).
            self.progress(f"fold {fold}: transfer")
            tr = {j: fold_dir / "transfer" / j for j in JOINTS}
            self.train_many([(tr[j], write_site_config(tr[j] / "config.yaml", s, train[j], [j],
                                                       SCHEMES["transfer"], s.steps, 1, SEED[j]),
                              ("--init-from", ind[TRANSFER_SOURCE[j]] / "model.safetensors"))
                             for j in JOINTS])
            for j in JOINTS:
                self.evaluate(ind[j] / "model.safetensors", test[j], ind[j] / "evaluation",
                              "individual", "local", fold, "schemes")
                self.evaluate(tr[j] / "model.safetensors", test[j], tr[j] / "evaluation",
                              "transfer", "local", fold, "schemes")
            test_all = self.merge([test[j] for j in JOINTS],
                                  self.data / "folds" / f"fold{fold}" / "all-test.yaml")
            for key in POOLED:
                scheme = SCHEMES[key]
                self.progress(f"fold {fold}: {key} central")
                run = fold_dir / "central" / key
                self.train(run, write_site_config(run / "config.yaml", s, pooled, JOINTS, scheme,
                                                  s.steps * len(JOINTS), 2, 1),
                           extra=("--shape-prior-steps", s.prior_steps * len(JOINTS)))
                self.evaluate(run / "model.safetensors", test_all, run / "evaluation", key,
                              "central", fold, "schemes")
                for setting in SCOPES:
                    self.progress(f"fold {fold}: {key} federated ({setting})")
                    run = fold_dir / setting / key
                    finals = federate(consortium, run,
                                      [SiteSpec(j, train[j], SEED[j]) for j in JOINTS],
                                      phases(s, JOINTS, scheme, setting), FEDERATION_TIMEOUT_S)
                    for j in JOINTS:
                        self.evaluate(finals[j], test[j], run / "evaluation" / j, key, setting,
                                      fold, "schemes")

    def scarcity(self, consortium):
        s = self.sizes
        test = self.data / "knee-test" / "manifest.yaml"
        partners = {j: self.subset(self.data / j, range(min(s.partners, s.subjects)),
                                   self.data / "scarcity" / f"{j}-partner.yaml")
                    for j in ("ankle", "shoulder")}
        for n in s.scarcity:
            knee = self.subset(self.data / "knee", range(n), self.data / "scarcity" / f"knee-{n}.yaml")
            self.progress(f"scarcity: {n} knee subject(s), alone")
            run = self.runs / "scarcity" / f"alone-{n}"
            self.train(run, write_site_config(run / "config.yaml", s, knee, ["knee"],
                                              SCHEMES["individual"], s.steps, 2, SEED["knee"]))
            self.evaluate(run / "model.safetensors", test, run / "evaluation", "individual",
                          "local", n, "scarcity")
            self.progress(f"scarcity: {n} knee subject(s), with two partner sites (FedBN)")
            run = self.runs / "scarcity" / f"federated-{n}"
            sites = [SiteSpec("ankle", partners["ankle"], SEED["ankle"]),
                     SiteSpec("knee", knee, SEED["knee"]),
                     SiteSpec("shoulder", partners["shoulder"], SEED["shoulder"])]
            finals = federate(consortium, run, sites, phases(s, JOINTS, SCHEMES["full"], "fedbn"),
                              FEDERATION_TIMEOUT_S)
            self.evaluate(finals["knee"], test, run / "evaluation", "full", "fedbn", n,
                          "scarcity")

    def rounds(self, consortium):
        """One federated run (full model, FedBN) on every labelled subject of each site, one of
        which each site holds out for validation, reporting its Dice after every round. Not part
        of the comparison: it only shows how the federation converges."""
        s = self.sizes
        manifests = {j: self.subset(self.data / j, range(s.subjects),
                                    self.data / "rounds" / f"{j}.yaml") for j in JOINTS}
        self.progress("per-round validation run (full model, FedBN)")
        run = self.runs / "rounds"
        federate(consortium, run, [SiteSpec(j, manifests[j], SEED[j]) for j in JOINTS],
                 phases(s, JOINTS, SCHEMES["full"], "fedbn", validation_fraction=1.0 / s.subjects),
                 FEDERATION_TIMEOUT_S)
        return [(r, {site.removeprefix("site-"): m.get("val_dice_mean")
                     for site, m in metrics.items()})
                for phase, r, metrics in round_metrics(run) if phase == "segmentation"]



def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI smoke size (numbers meaningless)")
    parser.add_argument("--build-dir", default="build")
    parser.add_argument("--out", default="bench-out/experiments")
    parser.add_argument("--steps", type=int, help="optimizer steps per site and model")
    parser.add_argument("--folds", type=int)
    parser.add_argument("--subjects", type=int, help="labelled subjects per site")
    args = parser.parse_args()
    sizes = dataclasses.replace(QUICK if args.quick else FULL)
    for field in ("steps", "folds", "subjects"):
        if getattr(args, field) is not None:
            setattr(sizes, field, getattr(args, field))
    if sizes.folds < 2 or sizes.subjects < sizes.folds:
        parser.error("need --folds >= 2 and --subjects >= --folds")
    if sizes.steps % sizes.rounds != 0:
        parser.error(f"--steps must be a multiple of the {sizes.rounds} federated rounds, so that "
                     f"federated sites train as many steps as the others")

    command = " ".join(["bench/experiments/run_experiments.py", *sys.argv[1:]])

    def body():
        e = Experiments(args, sizes)
        e.check_sizes()
        e.make_data()
        consortium = Consortium(e.out / "consortium", e.site_bin, e.coord_bin)
        e.scheme_comparison(consortium)
        e.scarcity(consortium)
        per_round = e.rounds(consortium)
        e.progress("tables, tests and plots")
        report.write_csv(e.rows, e.out / "results.csv")
        labels = {key: scheme.label for key, scheme in SCHEMES.items()}
        figures = plots.make_all(e.rows, per_round, e.out, labels)
        report.write_markdown(e.rows, per_round, figures, e.out / "results.md", command,
                              sizes, e.progress.elapsed(), labels)
        e.progress(f"done: {e.out / 'results.md'}")

    return harness.run("experiments", body)


if __name__ == "__main__":
    sys.exit(main())
