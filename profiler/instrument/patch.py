"""Install and remove the SDK patches (process-wide, reference-counted).

`install()` wraps the SDK resource methods listed by `openai_sdk.targets()` and
`anthropic_sdk.targets()` / `special_targets()` the first time a recorder asks, and `uninstall()`
restores the originals when the last recorder exits. An SDK is patched when it is already imported, or
else the moment the program imports it (a `sys.meta_path` hook), so recording never pays for importing
an SDK the program does not use. A wrapped method with no active recorder calls straight through.
`ThreadPoolExecutor.submit` is wrapped too, to carry the recording context into worker threads
(asyncio tasks and `loop.run_in_executor` already copy it).
"""

from __future__ import annotations

import contextvars
import importlib
import importlib.abc
import importlib.util
import sys
import threading
from typing import Any, Callable

from profiler.instrument.calls import record_async, record_sync

SDKS = {"openai": "profiler.instrument.openai_sdk", "anthropic": "profiler.instrument.anthropic_sdk"}
# Frameworks whose own hooks name and nest steps (`profiler.instrument.frameworks`): registered once
# per process when the framework is imported; they act only while a recorder is active.
FRAMEWORKS = {"agents": "install_agents", "langchain_core": "install_langchain"}

_lock = threading.RLock()
_users = 0
_originals: list[tuple[type, str, Any]] = []
_patched: set[str] = set()
_hook: "_PatchOnImport | None" = None


def _plans(sdk: str) -> list[tuple[type, str, Callable[[Any], Any]]]:
    """(class, method, make_wrapper) for every method of one SDK."""
    mod = importlib.import_module(SDKS[sdk])
    plans: list[tuple[type, str, Callable[[Any], Any]]] = []
    for cls, method, api, prompt, result, acc, keys, is_async in mod.targets():
        wrap = record_async if is_async else record_sync
        plans.append((cls, method, lambda f, wrap=wrap, api=api, prompt=prompt, result=result,
                      acc=acc, keys=keys: wrap(api, sdk, f, prompt, result, acc, keys)))
    if hasattr(mod, "special_targets"):
        plans.extend(mod.special_targets())
    return plans


def _patch(sdk: str) -> None:
    with _lock:
        if _users == 0 or sdk in _patched:
            return
        if sdk in FRAMEWORKS:
            from profiler.instrument import frameworks

            try:
                getattr(frameworks, FRAMEWORKS[sdk])()
            except Exception as e:  # a framework version we do not know: plain step names
                import warnings

                warnings.warn(f"ctxprof: {sdk} step names not available ({type(e).__name__}: {e})",
                              RuntimeWarning, stacklevel=2)
            return
        _patched.add(sdk)
        for cls, method, make_wrapper in _plans(sdk):
            original = cls.__dict__.get(method)
            if original is None:
                continue
            _originals.append((cls, method, original))
            setattr(cls, method, make_wrapper(original))


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Patches an SDK right after its package has been imported."""

    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in self.names:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_module = loader.exec_module

        def exec_and_patch(module: Any) -> None:
            exec_module(module)
            self.names.discard(fullname)
            _patch(fullname)

        loader.exec_module = exec_and_patch  # type: ignore[method-assign]
        return spec


def _submit_in_context(original: Callable[..., Any]) -> Callable[..., Any]:
    """`ThreadPoolExecutor.submit` that runs the task in a copy of the submitter's context, so calls
    fanned out inside a step fill or nest under that step instead of landing at the root."""
    import functools

    @functools.wraps(original)
    def submit(self: Any, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        from profiler.instrument.context import current_run

        if current_run() is None:
            return original(self, fn, *args, **kwargs)
        ctx = contextvars.copy_context()
        return original(self, ctx.run, fn, *args, **kwargs)

    return submit


def _patch_executor() -> None:
    from concurrent.futures import ThreadPoolExecutor

    original = ThreadPoolExecutor.__dict__["submit"]
    _originals.append((ThreadPoolExecutor, "submit", original))
    ThreadPoolExecutor.submit = _submit_in_context(original)  # type: ignore[method-assign]


def install() -> list[str]:
    """Patch the SDKs (once, however many recorders are active). Returns notices."""
    global _users, _hook
    notices: list[str] = []
    with _lock:
        _users += 1
        if _users > 1:
            return notices
        _patch_executor()
        pending = set()
        for sdk in [*SDKS, *FRAMEWORKS]:
            if sdk in sys.modules:
                _patch(sdk)
            elif importlib.util.find_spec(sdk) is not None:
                pending.add(sdk)
            elif sdk in SDKS:
                notices.append(f"the {sdk} SDK is not installed; its calls are not recorded")
        if pending:
            _hook = _PatchOnImport(pending)
            sys.meta_path.insert(0, _hook)
    return notices


def uninstall() -> None:
    """Undo `install()` once; the originals come back when the last user is gone."""
    global _users, _hook
    with _lock:
        if _users == 0:
            return
        _users -= 1
        if _users:
            return
        if _hook is not None:
            if _hook in sys.meta_path:
                sys.meta_path.remove(_hook)
            _hook = None
        while _originals:
            cls, method, original = _originals.pop()
            setattr(cls, method, original)
        _patched.clear()


def installed() -> bool:
    with _lock:
        return _users > 0
