"""Progress and results of Ray tasks: the one progress line of `profiler.progress`, counting tasks,
on standard error and only when it is a terminal (a log file or a CI job gets nothing); and the results
of tasks with their failures turned into one-line `ProfilerError`s."""

from __future__ import annotations

import contextlib
import sys
from typing import Any, Callable, Iterator, Sequence

from profiler.errors import ProfilerError


@contextlib.contextmanager
def progress_bar(label: str, total: int, enabled: bool | None = None) -> Iterator[Callable[[int], None]]:
    """Yields `advance(n)` for n tasks done. `enabled=None`: on when standard error is a terminal."""
    from profiler.progress import Progress

    bar = Progress(label, total, stream=sys.stderr,
                   is_tty=sys.stderr.isatty() if enabled is None else enabled, unit="tasks")
    try:
        yield lambda n: bar(n)
    finally:
        bar.close()


def task_result(ray: Any, ref: Any) -> Any:
    """The task's result; a task's ProfilerError comes back as itself (one line for the CLI)."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, ProfilerError):
            raise cause from None
        raise ProfilerError(f"a Ray task failed: {cause or e}") from None
    except ray.exceptions.RayError as e:
        raise ProfilerError(f"the Ray cluster failed while analysing: {str(e).splitlines()[0]}") from None


def gather(ray: Any, refs: Sequence[Any], label: str, enabled: bool | None = None) -> list[Any]:
    """The results of `refs` in their order, advancing the progress line as each task finishes (in
    whatever order they finish)."""
    results: dict[Any, Any] = {}
    pending = list(refs)
    with progress_bar(label, len(refs), enabled) as advance:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                results[ref] = task_result(ray, ref)
                advance(1)
    return [results[r] for r in refs]
