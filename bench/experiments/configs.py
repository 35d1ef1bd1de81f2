"""What the experiments train: data per site, sizes, schemes, scope rules, and the YAML configs
of `fedjoint-site train` and of the coordinator's phases built from them."""

from dataclasses import dataclass
from pathlib import Path

import yaml

from procs import write_atomically

STRUCTURES = {"ankle": ["calcaneus", "talus", "tibia"],
              "knee": ["femur", "tibia", "patella", "fibula"],
              "shoulder": ["humerus", "scapula"]}
DOMAIN = {"ankle": "t1", "knee": "pd", "shoulder": "t2fs"}
SEED = {"ankle": 11, "knee": 12, "shoulder": 13}
JOINTS = ["ankle", "knee", "shoulder"]
# Transfer: each joint fine-tunes the individual model of another joint (trained on that joint's
# training folds only, so no test subject of any site is ever seen).
TRANSFER_SOURCE = {"ankle": "knee", "knee": "ankle", "shoulder": "knee"}


@dataclass
class Sizes:
    subjects: int        # labelled subjects per site (k-fold over them)
    folds: int
    steps: int           # optimizer steps per site and model
    rounds: int          # federated rounds (steps / rounds local steps each)
    prior_steps: int     # shape auto-encoder steps per site
    scarcity: tuple      # labelled knee subjects for the scarcity curve
    partners: int        # labelled subjects of each partner site in the scarcity runs
    scarcity_test: int   # held-out knees for the scarcity curve
    width: float


FULL = Sizes(subjects=6, folds=3, steps=240, rounds=12, prior_steps=30, scarcity=(1, 2, 4, 8),
             partners=4, scarcity_test=4, width=0.25)
QUICK = Sizes(subjects=2, folds=2, steps=4, rounds=2, prior_steps=2, scarcity=(1, 2), partners=1,
              scarcity_test=1, width=0.125)


@dataclass(frozen=True)
class Scheme:
    key: str
    label: str
    variant: str
    contrastive: float
    prior: float


SCHEMES = {
    "individual": Scheme("individual", "individual", "domain", 0, 0),
    "transfer": Scheme("transfer", "transfer", "domain", 0, 0),
    "shared": Scheme("shared", "shared", "shared", 0, 0),
    "multi-domain": Scheme("multi-domain", "multi-domain", "domain", 0, 0),
    "contrastive": Scheme("contrastive", "+ contrastive", "domain", 0.1, 0),
    "full": Scheme("full", "+ contrastive + prior", "domain", 0.1, 0.01),
}
POOLED = ["shared", "multi-domain", "contrastive", "full"]
SCOPES = {
    # FedAvg of every tensor: normalization statistics and heads included.
    "fedavg": [{"pattern": "*", "scope": "global"}],
    # FedBN: normalization never leaves the site; heads are averaged per joint.
    "fedbn": [{"pattern": "*norm*", "scope": "site"}, {"pattern": "heads.*", "scope": "domain"},
              {"pattern": "*", "scope": "global"}],
}


def model(sizes: Sizes, joints, variant):
    """The segmentation network's `model` section (the demo's: 1.25 mm pixels x 128)."""
    return {"architecture": "unet_resnet", "encoder_depth": 18, "width_multiplier": sizes.width,
            "input_size": 128, "in_plane_spacing_mm": 1.25, "variant": variant,
            "joints": [{"name": j, "structures": STRUCTURES[j]} for j in joints]}


def training(steps, scheme: Scheme, warmup, validation_fraction=0.0):
    return {"steps": steps, "batch_size": 8, "validation_fraction": validation_fraction,
            "optimizer": {"name": "adamw", "learning_rate": 0.005, "schedule": "cosine",
                          "warmup_steps": warmup, "grad_clip_norm": 1.0},
            "loss": {"contrastive_weight": scheme.contrastive, "contrastive_temperature": 0.1,
                     "shape_prior_weight": scheme.prior}}


def write_site_config(path: Path, sizes: Sizes, manifest: Path, joints, scheme, steps, threads,
                      seed) -> Path:
    """A `fedjoint-site train` config (no coordinator: local training)."""
    config = {"name": "experiment", "state_dir": str(path.parent / "state"),
              "manifest": str(manifest), "threads": threads, "loader_threads": 1, "seed": seed,
              "model": model(sizes, joints, scheme.variant),
              "training": training(steps, scheme, warmup=min(30, steps // 10))}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, yaml.safe_dump(config, sort_keys=False))
    return path


def phases(sizes: Sizes, joints, scheme: Scheme, setting, validation_fraction=0.0):
    """The coordinator's phases: a one-round shape-prior phase when the scheme uses the prior,
    then `rounds` segmentation rounds of steps / rounds local steps per site."""
    steps = sizes.steps // sizes.rounds
    out = []
    if scheme.prior > 0:
        out.append({"name": "shape_prior", "rounds": 1,
                    "model": {"architecture": "shape_autoencoder", "input_size": 128,
                              "in_plane_spacing_mm": 1.25,
                              "joints": model(sizes, joints, "domain")["joints"]},
                    "local": {"steps": sizes.prior_steps, "batch_size": 8,
                              "validation_fraction": 0,
                              "optimizer": {"name": "adamw", "learning_rate": 0.002}}})
    out.append({"name": "segmentation", "rounds": sizes.rounds,
                "model": model(sizes, joints, scheme.variant), "scopes": SCOPES[setting],
                "local": training(steps, scheme, warmup=min(10, steps // 4),
                                  validation_fraction=validation_fraction)})
    return out
