"""One consortium PKI and real federations on loopback: a coordinator and one `fedjoint-site run`
process per site, over mutual TLS, exactly as the demo and a real deployment run them.

The experiments build the PKI once (the real CSR flow, like scripts/demo.sh) and then start one
fresh federation per scheme and fold, each with its own state folders.
"""

import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from procs import Failure, run_logged, tail, write_atomically


# After the coordinator's job ends, how long the sites may take to pull, prepare and (with
# personalization) fine-tune their final models.
FINISH_GRACE_S = 1800


@dataclass
class SiteSpec:
    name: str          # the site is "site-<name>"
    manifest: Path     # its training subjects
    seed: int
    extra: dict = None  # more keys of its site config (e.g. personalization)


class Consortium:
    """The CA, the coordinator's certificates and one certificate per site (made once)."""

    def __init__(self, root: Path, site_bin: Path, coord_bin: Path):
        self.root = root
        self.site_bin = site_bin
        self.coord_bin = coord_bin
        self.coord_pki = root / "coordinator-pki"
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        if not (self.coord_pki / "ca.crt").exists():
            run_logged(self.logs / "pki-init.log",
                       [coord_bin, "pki", "init", "--out", self.coord_pki, "--host", "localhost",
                        "--ip", "127.0.0.1"])

    def site_pki(self, site: str) -> Path:
        """The site's folder with its key (made there), its certificate and the CA's."""
        pki = self.root / "site-pki" / site
        if not (pki / f"site-{site}.crt").exists():
            run_logged(self.logs / f"pki-request-{site}.log",
                       [self.site_bin, "pki", "request", "--site", f"site-{site}", "--out", pki])
            run_logged(self.logs / f"pki-sign-{site}.log",
                       [self.coord_bin, "pki", "sign", pki / f"site-{site}.csr", "--pki",
                        self.coord_pki])
            shutil.copy(self.coord_pki / "issued" / f"site-{site}.crt", pki / f"site-{site}.crt")
            shutil.copy(self.coord_pki / "ca.crt", pki / "ca.crt")
        return pki


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def federate(consortium: Consortium, run_dir: Path, sites: list, phases: list,
             timeout_s: float) -> dict:
    """Runs one federation to the end. `phases` are coordinator phase configs (dicts). Returns
    {site name: its final model folder (global weights + its own site-scoped tensors)}. Raises
    Failure naming the process and its log when anything stops with an error or the time runs
    out; every process it started is stopped either way."""
    done_marker = run_dir / "DONE"
    finals = {s.name: run_dir / "sites" / s.name / "state" / "final" for s in sites}
    if done_marker.exists():
        return finals
    if run_dir.exists():
        shutil.rmtree(run_dir)  # an interrupted federation starts over
    logs = run_dir / "logs"
    logs.mkdir(parents=True)
    port = free_port()
    coord_dir = run_dir / "coordinator"
    coord_dir.mkdir()
    pki = consortium.coord_pki
    coordinator = {
        "listen": f"127.0.0.1:{port}",
        "state_dir": str(coord_dir / "state"),
        "tls": {"ca_cert": str(pki / "ca.crt"), "server_cert": str(pki / "server.crt"),
                "server_key": str(pki / "server.key"), "crl": str(pki / "crl.pem")},
        "signing_key": str(pki / "signing.key"),
        "job": {"id": run_dir.name, "min_sites": len(sites), "min_updates": len(sites),
                "round_deadline_s": 1800, "phases": phases},
        "logging": {"level": "info"},
    }
    write_atomically(coord_dir / "coordinator.yaml", yaml.safe_dump(coordinator, sort_keys=False))

    procs = []
    try:
        coord_log = logs / "coordinator.log"
        with open(coord_log, "w") as log:
            coord = subprocess.Popen([consortium.coord_bin, "serve", "--config",
                                      coord_dir / "coordinator.yaml"],
                                     stdout=log, stderr=subprocess.STDOUT, cwd=coord_dir)
        procs.append(("coordinator", coord, coord_log))
        for _ in range(200):
            if "listening on" in coord_log.read_text() or coord.poll() is not None:
                break
            time.sleep(0.1)
        site_procs = []
        for s in sites:
            site_dir = run_dir / "sites" / s.name
            site_dir.mkdir(parents=True)
            site_pki = consortium.site_pki(s.name)
            config = {
                "name": f"site-{s.name}",
                "coordinator": f"localhost:{port}",
                "tls": {"ca_cert": str(site_pki / "ca.crt"),
                        "cert": str(site_pki / f"site-{s.name}.crt"),
                        "key": str(site_pki / f"site-{s.name}.key")},
                "state_dir": str(site_dir / "state"),
                "manifest": str(s.manifest),
                "threads": 1,  # the sites share the machine's cores
                "loader_threads": 1,
                "seed": s.seed,
                **(s.extra or {}),
            }
            write_atomically(site_dir / "site.yaml", yaml.safe_dump(config, sort_keys=False))
            site_log = logs / f"site-{s.name}.log"
            with open(site_log, "w") as log:
                p = subprocess.Popen([consortium.site_bin, "run", "--config", site_dir / "site.yaml"],
                                     stdout=log, stderr=subprocess.STDOUT, cwd=site_dir)
            procs.append((f"site-{s.name}", p, site_log))
            site_procs.append((f"site-{s.name}", p, site_log))

        deadline = time.monotonic() + timeout_s
        job_ended = False
        while any(p.poll() is None for _, p, _ in site_procs):
            if coord.poll() is not None:
                if coord.returncode != 0:
                    raise Failure(f"{run_dir.name}: the coordinator stopped with status "
                                  f"{coord.returncode} (log {coord_log}):\n{tail(coord_log)}")
                # The job ended; sites still preparing their final (and personalized) models get
                # a bounded time for it.
                if not job_ended:
                    job_ended = True
                    deadline = min(deadline, time.monotonic() + FINISH_GRACE_S)
            for name, p, log in site_procs:
                if p.poll() not in (None, 0):
                    raise Failure(f"{run_dir.name}: {name} stopped with status {p.returncode} "
                                  f"(log {log}):\n{tail(log)}")
            if time.monotonic() > deadline:
                what = (f"sites not done {FINISH_GRACE_S:.0f} s after the job ended" if job_ended
                        else f"not finished after {timeout_s:.0f} s")
                raise Failure(f"{run_dir.name}: {what} (logs in {logs})")
            time.sleep(1)
        for name, p, log in site_procs:
            if p.returncode != 0:
                raise Failure(f"{run_dir.name}: {name} stopped with status {p.returncode} "
                              f"(log {log}):\n{tail(log)}")
    finally:
        for _, p, _ in procs:
            if p.poll() is None:
                p.terminate()
        for _, p, _ in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    for name, path in finals.items():
        if not (path / "model.safetensors").exists():
            raise Failure(f"{run_dir.name}: site-{name} finished without {path}/model.safetensors")
    write_atomically(done_marker, "")
    return finals


def round_metrics(run_dir: Path) -> list:
    """Per finished round of the coordinator's log: (phase, round, {site: metrics})."""
    rows = []
    path = run_dir / "coordinator" / "state" / "rounds.jsonl"
    for line in path.read_text().splitlines():
        record = json.loads(line)
        rows.append((record.get("phase"), record.get("round"), record.get("metrics", {})))
    return rows
