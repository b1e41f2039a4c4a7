"""The public API (profiler/__init__.py): real objects with their real signatures, imported lazily."""

from __future__ import annotations

import importlib
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

import profiler

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(profiler._LAZY))
def test_each_lazy_name_is_the_real_object(name):
    module_name, attribute = profiler._LAZY[name]
    real = importlib.import_module(module_name)
    if attribute is not None:
        real = getattr(real, attribute)
    assert getattr(profiler, name) is real


@pytest.mark.parametrize("name", ["load_trace", "record", "step", "analyze", "profile", "simulate_provider",
                                  "simulate_engine", "diagnose", "report", "render", "check", "replay"])
def test_the_functions_users_call_show_their_parameters_and_docstring(name):
    fn = getattr(profiler, name)
    params = inspect.signature(fn).parameters.values()
    assert fn.__doc__
    # THEN help() shows real parameters, not a (*args, **kwargs) wrapper
    assert [p for p in params if p.kind is p.POSITIONAL_OR_KEYWORD or p.kind is p.KEYWORD_ONLY]


def test_functions_named_like_their_subpackages_stay_functions():
    # GIVEN the modules check, diagnose, profile, render and replay imported as modules
    import profiler.check
    import profiler.diagnose
    import profiler.profile
    import profiler.render
    import profiler.replay
    from profiler.check import Budgets  # noqa: F401  (the submodule stays importable)
    # THEN the package attributes are still the functions
    for name in ("check", "diagnose", "profile", "render", "replay"):
        assert inspect.isfunction(getattr(profiler, name)), name


def test_every_public_name_is_listed():
    assert set(profiler._LAZY) <= set(profiler.__all__) <= set(dir(profiler))
    for name in profiler.__all__:
        getattr(profiler, name)


def test_import_profiler_loads_no_heavy_dependency():
    code = ("import sys, profiler; heavy = ('torch', 'plotly', 'pandas', 'numpy', 'transformers', "
            "'openai', 'anthropic', 'pynvml', 'genai_prices', 'tiktoken', 'ray'); "
            "print(sorted(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.stdout.strip() == "[]"


def test_unknown_names_are_attribute_errors():
    with pytest.raises(AttributeError, match="no attribute 'analyse'"):
        profiler.analyse  # noqa: B018
