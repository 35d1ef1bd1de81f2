#!/usr/bin/python3
"""The demo's federation with other aggregation options (docs/methods.md, "Server step and site
weighting, measured"): same data, phases and budget as `make demo`, then each site's final model
evaluated on the demo's held-out scans.

  make demo    # once: the data in demo-out/sites
  bench/experiments/aggregation_variants.py NAME WEIGHTING SERVER_LR [--build-dir build]
      [--demo-out demo-out] [--out bench-out/aggregation-variants]

  e.g. ... uniform uniform 1.0   or   ... slr2 samples 2.0

Prints one line per site: NAME, joint, mean Dice over the held-out bones, then Dice per bone.
"""

import argparse
import csv
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from configs import JOINTS, SEED, STRUCTURES  # noqa: E402
from federation import Consortium, SiteSpec, federate  # noqa: E402
from procs import Failure, run_logged  # noqa: E402


def demo_phases(weighting, server_lr):
    """scripts/demo.sh's phases (16 rounds x 38 steps), with the aggregation options set."""
    joints = [{"name": j, "structures": STRUCTURES[j]} for j in JOINTS]
    return [
        {"name": "shape_prior", "rounds": 1,
         "model": {"architecture": "shape_autoencoder", "input_size": 128,
                   "in_plane_spacing_mm": 1.25, "joints": joints},
         "local": {"steps": 30, "batch_size": 8,
                   "optimizer": {"name": "adamw", "learning_rate": 0.002}}},
        {"name": "segmentation", "rounds": 16,
         "model": {"architecture": "unet_resnet", "encoder_depth": 18, "width_multiplier": 0.25,
                   "input_size": 128, "in_plane_spacing_mm": 1.25, "variant": "domain",
                   "joints": joints},
         "weighting": weighting, "server_learning_rate": server_lr,
         "local": {"steps": 38, "batch_size": 8, "validation_fraction": 0,
                   "optimizer": {"name": "adamw", "learning_rate": 0.005, "schedule": "cosine",
                                 "warmup_steps": 10, "grad_clip_norm": 1.0},
                   "loss": {"contrastive_weight": 0.1, "contrastive_temperature": 0.1,
                            "shape_prior_weight": 0.01}}}]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name")
    parser.add_argument("weighting", choices=["samples", "uniform"])
    parser.add_argument("server_lr", type=float)
    parser.add_argument("--build-dir", default="build")
    parser.add_argument("--demo-out", default="demo-out")
    parser.add_argument("--out", default="bench-out/aggregation-variants")
    args = parser.parse_args()
    build = Path(args.build_dir).resolve()
    site_bin = build / "site_agent" / "fedjoint-site"
    demo = Path(args.demo_out).resolve() / "sites"
    out = Path(args.out).resolve()
    try:
        consortium = Consortium(out / "consortium", site_bin,
                                build / "coordinator" / "fedjoint-coordinator")
        run = out / args.name
        sites = [SiteSpec(j, demo / j / "data" / "train" / "manifest.yaml", SEED[j])
                 for j in JOINTS]
        finals = federate(consortium, run, sites, demo_phases(args.weighting, args.server_lr),
                          timeout_s=7200)
        for j in JOINTS:
            evaluation = run / "evaluation" / j
            if not (evaluation / "metrics.csv").exists():
                run_logged(evaluation / "evaluate.log",
                           [site_bin, "evaluate", "--model", finals[j], "--manifest",
                            demo / j / "data" / "test" / "manifest.yaml", "--out", evaluation,
                            "--threads", 2])
            rows = list(csv.DictReader(open(evaluation / "metrics.csv")))
            per_bone = {}
            for r in rows:
                per_bone.setdefault(r["structure"], []).append(float(r["dice"]))
            print(args.name, j, f"{statistics.mean(float(r['dice']) for r in rows):.3f}",
                  " ".join(f"{b}={statistics.mean(v):.3f}" for b, v in per_bone.items()))
    except Failure as failure:
        print(f"aggregation_variants: FAILED: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
