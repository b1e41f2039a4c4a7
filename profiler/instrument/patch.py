"""Install and remove the SDK patches (process-wide, reference-counted).

`install()` wraps the SDK resource methods listed by `openai_sdk.targets()` and
`anthropic_sdk.targets()` / `special_targets()` the first time a recorder asks, and `uninstall()`
restores the originals when the last recorder exits. An SDK that is not installed is skipped (its
name is returned as a notice). A wrapped method with no active recorder calls straight through.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from profiler.instrument.calls import record_async, record_sync

_lock = threading.Lock()
_users = 0
_originals: list[tuple[type, str, Any]] = []


def _collect() -> tuple[list[tuple[type, str, Callable[[Any], Any]]], list[str]]:
    """(class, method, make_wrapper) for every SDK method to patch, and notices."""
    plans: list[tuple[type, str, Callable[[Any], Any]]] = []
    notices: list[str] = []
    for module in ("openai_sdk", "anthropic_sdk"):
        try:
            mod = __import__(f"profiler.instrument.{module}", fromlist=["targets"])
            entries = mod.targets()
            specials = mod.special_targets() if hasattr(mod, "special_targets") else []
        except ImportError:
            notices.append(f"{module.split('_')[0]} SDK not installed; its calls are not recorded")
            continue
        for cls, method, api, prompt, result, acc, keys, is_async in entries:
            wrap = record_async if is_async else record_sync
            plans.append((cls, method, lambda f, wrap=wrap, api=api, prompt=prompt, result=result,
                          acc=acc, keys=keys, provider=module.split("_")[0]:
                          wrap(api, provider, f, prompt, result, acc, keys)))
        plans.extend(specials)
    return plans, notices


def install() -> list[str]:
    """Patch the SDKs (once, however many recorders are active). Returns notices."""
    global _users
    with _lock:
        _users += 1
        if _users > 1:
            return []
        plans, notices = _collect()
        for cls, method, make_wrapper in plans:
            original = cls.__dict__.get(method)
            if original is None:
                continue
            _originals.append((cls, method, original))
            setattr(cls, method, make_wrapper(original))
        return notices


def uninstall() -> None:
    """Undo `install()` once; the originals come back when the last user is gone."""
    global _users
    with _lock:
        if _users == 0:
            return
        _users -= 1
        if _users:
            return
        while _originals:
            cls, method, original = _originals.pop()
            setattr(cls, method, original)


def installed() -> bool:
    with _lock:
        return _users > 0
