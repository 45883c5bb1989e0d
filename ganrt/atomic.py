"""Atomic writes: a temp file in the same folder, then a rename, so readers never see half a file."""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Callable

_UMASK = os.umask(0)
os.umask(_UMASK)
# The temp files `atomic_write` makes: ".<target name>." plus mkstemp's 8 random characters.
_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}$")


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` then rename tmp over `path`; on any failure the temp file is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # named as _TEMP_NAME matches
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Atomically write a text file."""
    atomic_write(path, lambda p: p.write_text(text))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Atomically write a binary file."""
    atomic_write(path, lambda p: p.write_bytes(data))


def remove_temp_files(directory: Path) -> list[Path]:
    """Delete the temp files that writes killed mid-way left in `directory` (not recursive).

    Only for folders whose files this project writes (a run, an artifact), and only while no
    writer is running there: a live writer's temp file looks the same.
    """
    removed = []
    for path in Path(directory).iterdir():
        if _TEMP_NAME.match(path.name) and path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
