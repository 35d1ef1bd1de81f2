"""The realistic consortium of the scarce-site experiment (and of scripts/demo.sh): four hospital
sites, every joint at two or more of them in different contrasts or scanner settings, one site
with two labelled scans of one joint.

Acquisition settings are `fedjoint-site phantoms` options: --domain is the MR contrast; noise and
bias-field strength, pixel size and slice thickness stand for field strength and protocol.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Dataset:
    joint: str
    domain: str        # MR contrast (phantoms --domain)
    labelled: int      # labelled training subjects (per fold at the scarce site)
    seed: int          # phantom seed: each site draws its own children
    phantom_args: tuple = ()


@dataclass(frozen=True)
class Site:
    name: str
    datasets: tuple
    scarce: bool = False


LOW_FIELD = ("--noise-scale", "1.6", "--pixel-mm", "0.9", "--slice-thickness", "3.5")

SITES = [
    Site("north", (Dataset("knee", "pd", 6, 21), Dataset("ankle", "t1", 4, 22))),
    Site("east", (Dataset("knee", "t2fs", 4, 31),
                  Dataset("shoulder", "pdfs", 4, 32, ("--bias-scale", "1.5")))),
    Site("south", (Dataset("ankle", "pd", 3, 41, LOW_FIELD),
                   Dataset("shoulder", "t2fs", 5, 42, LOW_FIELD))),
    Site("scarce", (Dataset("shoulder", "t2fs", 2, 51,
                            ("--noise-scale", "1.7", "--bias-scale", "1.5")),), scarce=True),
]
