"""metrics.jsonl: one JSON line per logged step, appended as training goes, cut back on resume.

A resumed run repeats the steps after its checkpoint, so `cut_after` first drops the lines
of those steps (and a line a kill left half-written): the log then reads as one run.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ganrt.atomic import atomic_write_text

METRICS_FILE = "metrics.jsonl"


class MetricsLog:
    """Appends records to a run's metrics.jsonl, each line reaching the file when written."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._file: Any = None

    def append(self, record: dict[str, Any]) -> None:
        """Write one record as a line."""
        if self._file is None:
            # Unbuffered: a full disk fails this call, not a later flush at close.
            self._file = self.path.open("ab", buffering=0)
        data = memoryview((json.dumps(record) + "\n").encode())
        while data:  # a raw write may take only part of it
            data = data[self._file.write(data):]

    def close(self) -> None:
        """Close the file (nothing is buffered)."""
        if self._file is not None:
            self._file.close()
            self._file = None


def cut_after(path: Path, step: int) -> None:
    """Atomically keep only the complete lines of steps up to `step`."""
    path = Path(path)
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(errors="replace").splitlines(keepends=True):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # half a line, from a kill or a full disk
        if line.endswith("\n") and isinstance(record, dict) and isinstance(record.get("step"), int) \
                and record["step"] <= step:
            kept.append(line)
    atomic_write_text(path, "".join(kept))
