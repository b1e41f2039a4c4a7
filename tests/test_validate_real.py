"""benchmarks/validate_real.py runs on a small copy of the real data and prints one table."""

from __future__ import annotations

import importlib.util
import shutil
import sys

from importer_helpers import ROOT, shared


def test_prints_a_row_per_source_and_skips_what_is_absent(tmp_path, capsys, monkeypatch):
    # GIVEN a data folder with only run 2's DeepSeek calls
    src = shared("openhands", "run2_20250904T1943", "nonfncall-deepseek-chat")
    shutil.copytree(src, tmp_path / "openhands" / "run" / src.name)
    spec = importlib.util.spec_from_file_location("validate_real", ROOT / "benchmarks" / "validate_real.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "validate_real", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    # WHEN the script runs on it
    assert module.main(["--data", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    # THEN the DeepSeek row shows 4 steps and the provider's cached ratio; absent sources are skipped
    row = next(line for line in out.splitlines() if line.startswith("openhands / deepseek"))
    assert row.split()[3:5] == ["1", "4"]
    assert "96.6%" in row
    assert "swe-agent: skipped" in out and "tau-bench: skipped" in out
    # AND a second row sets the bill figures in both units, with the DeepSeek simulator's error per call
    units = [line for line in out.splitlines() if line.startswith("openhands / deepseek")][1].split()
    assert units[3] in ("provider", "mixed") and units[-4] == "deepseek"
    assert "Bill figures in both units" in out
