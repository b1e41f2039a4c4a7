"""An importer with the single-path signature (`import_x(path) -> Trace`) that the Mooncake and OTel
importers use, built on a real importer, to exercise the registry's walk-and-merge path."""

from __future__ import annotations

from profiler.importers.swe_agent import import_mini_swe_agent
from profiler.trace.model import Trace


def import_single(path) -> Trace:
    return import_mini_swe_agent(path)
