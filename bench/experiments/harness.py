"""What every experiment script of this folder shares: the two binaries of a build, the sizes a
result folder was made with, and progress lines with the elapsed time."""

import json
import signal
import sys
import time
from pathlib import Path

from procs import Failure, write_atomically


def binaries(build_dir, make_target):
    """(fedjoint-site, fedjoint-coordinator) of `build_dir`, absolute; Failure when missing."""
    build = Path(build_dir)
    site = (build / "site_agent" / "fedjoint-site").resolve()
    coordinator = (build / "coordinator" / "fedjoint-coordinator").resolve()
    for b in (site, coordinator):
        if not b.exists():
            raise Failure(f"{b} is missing; build first ({make_target} builds)")
    return site, coordinator


def check_sizes(out: Path, sizes: dict):
    """Finished runs are reused, so a folder holds runs of one set of sizes only: a model trained
    on another split would be tested on subjects it was trained on. Records the sizes of a new
    folder; Failure when `out` holds other ones."""
    path = out / "sizes.json"
    if path.exists():
        theirs = json.loads(path.read_text())
        if theirs != sizes:
            raise Failure(f"{out} holds runs of other sizes ({theirs}); choose another --out or "
                          f"delete it")
    else:
        out.mkdir(parents=True, exist_ok=True)
        write_atomically(path, json.dumps(sizes, indent=1) + "\n")


class Progress:
    """Progress lines prefixed with the time since the script started."""

    def __init__(self):
        self.started = time.time()

    def elapsed(self) -> float:
        return time.time() - self.started

    def __call__(self, what):
        m, s = divmod(int(self.elapsed()), 60)
        print(f"[{m}m{s:02d}s] {what}", flush=True)


def _stop_on_sigterm(signum, frame):
    # Like Ctrl-C: the `finally` blocks stop every process a federation started.
    raise KeyboardInterrupt


def run(name, body) -> int:
    """Runs body() as a script's main part: SIGTERM acts like Ctrl-C, a Failure or an interrupt
    is reported under `name`; returns the exit status (0, 1, 130)."""
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        body()
    except Failure as failure:
        print(f"{name}: FAILED: {failure}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{name}: interrupted; finished runs are kept and reused", file=sys.stderr)
        return 130
    return 0
