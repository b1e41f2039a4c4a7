"""Writing output files so that a failure never leaves a partial one.

Every command that writes a file (`-o`, `--markdown`, `--junit`, `import`, `baseline`, ...) goes
through `atomic_path` or `open_output`: the content is written to a temporary file beside the target
(same folder, so the final rename stays on one file system) and renamed over the target only once it
is complete. A crash, a full disk or a bad input leaves the target as it was.

The overwrite rule, the same for every command: `-o FILE` replaces FILE if it exists, as `cc -o`,
`curl -o` and `sort -o` do (safe here because the old file stays whole until the new one is). Targets
that are not regular files (`/dev/null`, `/dev/stdout`, a FIFO) are written in place. Writing into a
folder, into a folder that does not exist, or onto a full disk is an `OutputError` in one line.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import IO, Iterator

from profiler.errors import OutputError


def check_target(path: Path) -> None:
    """Refuse targets no file can be written to, before any work is done."""
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder; give a file name (e.g. {path}/out.txt)")
    parent = path.parent
    if not parent.exists():
        raise OutputError(f"cannot write {path}: the folder {parent} does not exist (create it first: "
                          f"mkdir -p {parent})")
    if not parent.is_dir():
        raise OutputError(f"cannot write {path}: {parent} is not a folder")


def _mode_for(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed onto `path` when the block succeeds and
    removed when it fails. Write errors (full disk, no permission) become an `OutputError`."""
    path = Path(path)
    check_target(path)
    if path.exists() and not path.is_file():
        # A device or a FIFO: renaming over it would replace it; write to it directly.
        try:
            yield path
        except OSError as e:
            raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
        return
    # The temporary name keeps the target's suffix: writers choose compression by it (.gz).
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}",
                                        dir=path.parent)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, _mode_for(path))
        yield tmp
        os.replace(tmp, path)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def open_output(path: str | os.PathLike[str] | None) -> Iterator[IO[str]]:
    """A UTF-8 text stream: standard output for None or "-", else a file written by `atomic_path`."""
    if path is None or str(path) == "-":
        yield sys.stdout
        return
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            yield f
