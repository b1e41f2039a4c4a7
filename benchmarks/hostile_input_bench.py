"""Time and peak memory of reading a trace with one huge line, at the default line limit and with
the limit raised above it (`ctxprof --max-line-mb`). Each case runs in a fresh process; figures are
printed side by side, never asserted.

    python benchmarks/hostile_input_bench.py [--mb 200]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHILD = """
import resource, sys
from profiler.cli.app import main
try:
    main(sys.argv[1:])
except SystemExit as e:
    print("EXIT", e.code, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, file=sys.stderr)
"""


def write_line_file(path: Path, mb: int) -> None:
    with open(path, "wb") as f:
        f.write(b'{"type":"header","format":"ctxprof-trace","schema_version":1,"attributes":{"pad":"')
        chunk = b"x" * (1 << 20)
        for _ in range(mb):
            f.write(chunk)
        f.write(b'"}}\n')


def run(args: list[str]) -> tuple[str, float, int]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, cwd=REPO)
    wall_s = time.perf_counter() - start
    exit_line = [line for line in out.stderr.splitlines() if line.startswith("EXIT")][-1].split()
    return exit_line[1], wall_s, int(exit_line[2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=200, help="size of the single line (MiB)")
    a = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "huge.jsonl"
        write_line_file(path, a.mb)
        cases = [("default limit (64 MiB)", ["analyze", str(path)]),
                 (f"--max-line-mb {a.mb * 2}", ["--max-line-mb", str(a.mb * 2), "analyze", str(path)]),
                 ("baseline: --version", ["--version"])]
        print(f"one {a.mb} MiB line; analyze in a fresh process")
        print(f"{'case':<28} {'exit':>4} {'wall s':>8} {'peak RSS MiB':>13} {'RSS / line size':>16}")
        for name, args in cases:
            code, wall_s, peak_mb = run(args)
            print(f"{name:<28} {code:>4} {wall_s:>8.2f} {peak_mb:>13,} {peak_mb / a.mb:>16.2f}")


if __name__ == "__main__":
    main()
