"""Running the fedjoint binaries from the experiment scripts: logs to files, clear failures, and
result files written atomically."""

import os
import subprocess
import tempfile
from pathlib import Path

# No single training, evaluation or phantom run of the experiments takes near this long; a process
# that does is hung, and the experiments stop with its log rather than wait forever.
PROCESS_TIMEOUT_S = 3 * 3600


class Failure(Exception):
    """A step of the experiments failed; the message names the step and its log."""


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def readable_mode() -> int:
    """The mode an ordinary new file gets (mkstemp's files are 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomically(path: Path, data) -> None:
    """Writes text or bytes to a temporary file beside `path`, fsyncs it and renames it over
    `path`: a reader (or a rerun after a kill) sees the old file or the new one, never half."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, readable_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run_logged(log: Path, args: list, cwd: Path = None) -> None:
    """Runs a command with stdout and stderr in `log`; raises Failure with the log's tail."""
    log.parent.mkdir(parents=True, exist_ok=True)
    args = [str(a) for a in args]
    with open(log, "w") as out:
        try:
            status = subprocess.run(args, stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                                    timeout=PROCESS_TIMEOUT_S).returncode
        except subprocess.TimeoutExpired:
            raise Failure(f"{' '.join(args[:2])} did not finish in {PROCESS_TIMEOUT_S} s "
                          f"(log {log}):\n{tail(log)}")
    if status != 0:
        raise Failure(f"{' '.join(args[:2])} failed with status {status} (log {log}):\n{tail(log)}")


def run_parallel(jobs: list) -> None:
    """Runs [(log, args)] at the same time; waits for all; raises Failure for the first failure."""
    running = []
    for log, args in jobs:
        log.parent.mkdir(parents=True, exist_ok=True)
        out = open(log, "w")
        running.append((log, [str(a) for a in args],
                        subprocess.Popen([str(a) for a in args], stdout=out,
                                         stderr=subprocess.STDOUT), out))
    failures, stopped = [], set()
    try:
        for log, args, p, out in running:
            try:
                p.wait(timeout=PROCESS_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                failures.append(f"{' '.join(args[:2])} did not finish in {PROCESS_TIMEOUT_S} s "
                                f"(log {log}):\n{tail(log)}")
    finally:
        for log, args, p, out in running:  # on a failure or an interrupt: stop the others
            if p.poll() is None:
                p.terminate()
                p.wait()
                stopped.add(p.pid)
            out.close()
    for log, args, p, out in running:
        if p.returncode != 0 and p.pid not in stopped:
            failures.append(f"{' '.join(args[:2])} failed with status {p.returncode} "
                            f"(log {log}):\n{tail(log)}")
    if failures:
        raise Failure(failures[0])
