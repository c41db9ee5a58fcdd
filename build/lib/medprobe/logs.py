"""Logging for workflow scripts: everything (messages, warnings, tracebacks, progress bars) into the rule's log."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
from pathlib import Path
from typing import IO, Iterator

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def where() -> str:
    """Where this job runs: host, and under a scheduler the job id and the GPUs it was given."""
    parts = [f"host {socket.gethostname()}", f"pid {os.getpid()}"]
    if os.environ.get("SLURM_JOB_ID"):
        parts.append(f"SLURM job {os.environ['SLURM_JOB_ID']}")
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        parts.append(f"CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']}")
    return "running on " + ", ".join(parts)


@contextlib.contextmanager
def logged(log_path: str | Path | None) -> Iterator[IO[str]]:
    """Send logging and warnings to `log_path` (and stderr); log any exception with its traceback, then re-raise.

    Yields the log's stream, for progress bars.
    """
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    stream: IO[str] = sys.stderr
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(log_path, mode="w", encoding="utf-8")
        handlers.append(file_handler)
        stream = file_handler.stream
    for handler in handlers:
        handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(handler)
    logging.captureWarnings(True)
    logging.getLogger("medprobe").info(where())
    try:
        yield stream
    except Exception:
        logging.getLogger("medprobe").exception("failed")
        raise
    finally:
        for handler in handlers:
            root.removeHandler(handler)
            handler.flush()
            if handler is not handlers[0]:
                handler.close()
