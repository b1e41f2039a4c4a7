"""Optional dependencies: which extra installs each one, and the one-line error when one is missing.

ctxprof imports optional packages inside the function that needs them. When such an import fails,
`missing_dependency_error` turns the `ModuleNotFoundError` into a `ProfilerError` naming the package
and the `pip install 'ctxprof[EXTRA]'` that brings it; the CLI applies it to every command.
"""

from __future__ import annotations

from profiler.errors import ProfilerError

# top-level module name -> extra of pyproject.toml that installs it
EXTRA_FOR_MODULE = {
    "torch": "replay",
    "transformers": "replay",
    "plotly": "report",
    "openai": "instrument",
    "anthropic": "instrument",
    "pynvml": "gpu",
    "nbclient": "notebooks",
    "nbformat": "notebooks",
    "ipykernel": "notebooks",
}

# torch is pinned as the README says; a bare `pip install torch` may pull a different build.
_INSTALL_NOTE = {"torch": ' (torch itself as the README says: pip install "torch==2.13.0")'}


class MissingDependency(ProfilerError):
    """An optional package that this feature needs is not installed."""


def missing_dependency_error(e: ModuleNotFoundError, what: str | None = None) -> ProfilerError | None:
    """The one-line error for `e` when it names an optional package, else None (a real bug)."""
    name = (e.name or "").split(".")[0]
    extra = EXTRA_FOR_MODULE.get(name)
    if extra is None:
        return None
    needs = f"{what} needs {name}" if what else f"this command needs {name}"
    return MissingDependency(f"{needs}, which is not installed: pip install 'ctxprof[{extra}]'"
                             + _INSTALL_NOTE.get(name, ""))
