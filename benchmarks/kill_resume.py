"""SIGKILL an embedding job half way, rerun it, and compare the result with a clean run.

    python benchmarks/kill_resume.py --images ../shared/data/brain_mr/Training --model resnet50_random

Runs the real workflow (snakemake) in two scratch folders: one clean run, and one run that is killed with SIGKILL
(the whole process group: snakemake, the job, its DataLoader workers) once the log shows half the images done, then
started again. Prints the rows the rerun resumed from and whether both files hold identical features.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from medprobe.store import read_embeddings  # noqa: E402


def snakemake(workdir: Path, config: Path, target: str, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "snakemake", target, *extra, "--snakefile", str(REPO / "workflow" / "Snakefile"), "--directory",
               str(workdir), "--cores", "2", "--configfile", str(REPO / "config" / "config.yaml"), str(config)]
    return subprocess.Popen(command, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def progress(log: Path) -> int:
    if not log.exists():
        return 0
    found = re.findall(r"\|\s*(\d+)/(\d+)", log.read_text(errors="replace"))
    return int(found[-1][0]) if found else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, default=REPO.parent / "shared" / "data" / "brain_mr" / "Training")
    parser.add_argument("--dataset", default="brainmr")
    parser.add_argument("--model", default="resnet50_random")
    parser.add_argument("--fraction", type=float, default=0.5)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="medprobe-kill-"))
    config = scratch / "config.yaml"
    config.write_text(yaml.safe_dump({"models": [args.model], "datasets": [args.dataset],
                                      "dataset_roots": {args.dataset: str(args.images.resolve())}}))
    target = f"results/embeddings/{args.dataset}/{args.model}.h5"
    log_name = f"logs/embed/{args.dataset}/{args.model}.log"

    clean, killed = scratch / "clean", scratch / "killed"
    for folder in (clean, killed):
        folder.mkdir()
    start = time.perf_counter()
    if snakemake(clean, config, target).wait() != 0:
        sys.exit(f"clean run failed; see {clean / log_name}")
    clean_s = time.perf_counter() - start

    job = snakemake(killed, config, target)
    total = None
    while job.poll() is None:
        done = progress(killed / log_name)
        text = (killed / log_name).read_text(errors="replace") if (killed / log_name).exists() else ""
        match = re.search(r"/(\d+) \[", text)
        total = int(match.group(1)) if match else total
        if total and done >= args.fraction * total:
            os.killpg(job.pid, signal.SIGKILL)
            break
        time.sleep(0.5)
    job.wait()
    partial = killed / target.replace(".h5", ".partial.h5")
    print(f"killed at {done} of {total} images (log progress); partial file present: {partial.exists()}; "
          f"final file present: {(killed / target).exists()}")

    # as a user would after a kill: release snakemake's lock, then run the same command again
    snakemake(killed, config, target, "--unlock").wait()
    start = time.perf_counter()
    if snakemake(killed, config, target).wait() != 0:
        sys.exit(f"rerun failed; see {killed / log_name}")
    rerun_s = time.perf_counter() - start
    resumed = re.findall(r"resuming .* at row (\d+) of (\d+)", (killed / log_name).read_text())
    a, b = read_embeddings(clean / target), read_embeddings(killed / target)
    identical = (np.array_equal(a.features, b.features) and np.array_equal(a.labels, b.labels)
                 and list(a.sample_id) == list(b.sample_id))
    print(f"rerun resumed at row {resumed[-1][0] if resumed else 'NONE'} of {resumed[-1][1] if resumed else '?'}; "
          f"clean run {clean_s:.0f} s, rerun {rerun_s:.0f} s")
    print(f"features {a.features.shape}: identical to the clean run: {identical}; "
          f"max |difference| {np.abs(a.features - b.features).max():.3g}")
    print(f"scratch folder: {scratch}")
    sys.exit(0 if identical and resumed else 1)


if __name__ == "__main__":
    main()
