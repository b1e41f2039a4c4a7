"""The JSON report: `ReportData.to_dict()` (schema `ctxprof.report/1`), keys sorted, for machines."""

from __future__ import annotations

import json
import math
from typing import IO, Any

from profiler.report.data import ReportData


def _finite(obj: Any) -> Any:
    """NaN and infinities are not JSON; write them as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def render_json(data: ReportData, stream: IO[str]) -> None:
    json.dump(_finite(data.to_dict()), stream, indent=2, sort_keys=True, allow_nan=False)
    stream.write("\n")
