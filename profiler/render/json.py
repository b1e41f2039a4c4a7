"""The JSON report: `Profile.to_dict()` (schema `ctxprof.profile/1`), keys sorted, for machines;
`Profile.from_dict` reads it back."""

from __future__ import annotations

import json
import math
from typing import IO, Any

from profiler.profile import Profile


def _finite(obj: Any) -> Any:
    """NaN and infinities are not JSON; write them as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def render_json(data: Profile, stream: IO[str]) -> None:
    json.dump(_finite(data.to_dict()), stream, indent=2, sort_keys=True, allow_nan=False)
    stream.write("\n")
