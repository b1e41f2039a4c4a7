#!/usr/bin/env bash
# One prepared GPU check for a machine with an NVIDIA GPU and no internet (about 5-8 minutes).
#
#   benchmarks/gpu_check.sh WHEEL_DIR [OUT.json]      (or CTXPROF_WHEELS=WHEEL_DIR benchmarks/gpu_check.sh)
#
# 1. makes a virtualenv (.gpu-venv) and installs ctxprof with the `test` extra from WHEEL_DIR only
#    (pip --no-index: nothing is fetched from the internet);
# 2. runs the GPU-marked tests (pytest -m gpu);
# 3. runs benchmarks/replay_bench.py with the llama-3.2-1b preset in bfloat16 on cuda (cold vs reuse
#    prefill and TTFT, energy per mode, predicted vs measured saving) while NVML is sampled every
#    100 ms for the whole run (mean/peak power, peak memory, energy);
# 4. writes one JSON (default gpu_check.json) with the environment, the test outcome, the benchmark
#    summary and the NVML figures.
#
# WHEEL_DIR must hold wheels for: torch==2.13.0 built for the machine's CUDA (from
# download.pytorch.org, e.g. the cu128 index) with its nvidia-* runtime wheels, transformers and its
# dependencies (tokenizers, safetensors, huggingface-hub, ...), nvidia-ml-py, numpy, pandas,
# tiktoken, bpe-openai, typer, rich, genai-prices, pytest, hypothesis, plotly, pyarrow, ray, the rest
# of the `test` extra, and setuptools + wheel (to install ctxprof itself in editable mode). On a
# machine with internet, for the same Python version and platform:
#
#   pip download -d wheels "torch==2.13.0" --index-url https://download.pytorch.org/whl/cu128
#   pip download -d wheels ".[test]" setuptools wheel
#
# The preset uses random weights of Llama-3.2-1B's shape: no model download is needed.
set -euo pipefail

WHEELS="${1:-${CTXPROF_WHEELS:-}}"
OUT="${2:-gpu_check.json}"
if [[ -z "$WHEELS" || ! -d "$WHEELS" ]]; then
  echo "usage: benchmarks/gpu_check.sh WHEEL_DIR [OUT.json]  (or set CTXPROF_WHEELS)" >&2
  exit 2
fi
WHEELS="$(cd "$WHEELS" && pwd)"
cd "$(dirname "$0")/.."
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_check: no NVIDIA GPU visible (nvidia-smi -L failed)" >&2
  exit 2
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

echo "== install from $WHEELS (no index)" >&2
python3 -m venv .gpu-venv
# shellcheck disable=SC1091
. .gpu-venv/bin/activate
timeout 240 pip install -q --no-index --find-links "$WHEELS" "torch==2.13.0" -e ".[test]"

echo "== GPU-marked tests" >&2
set +e
timeout 150 python -m pytest -m gpu -q -rs --junitxml="$WORK/gpu_tests.xml" > "$WORK/gpu_tests.log" 2>&1
TESTS_RC=$?
set -e
tail -5 "$WORK/gpu_tests.log" >&2

echo "== replay_bench.py: llama-3.2-1b, bfloat16, cuda, under NVML sampling" >&2
timeout 300 python - "$WORK" "$OUT" "$TESTS_RC" <<'PY'
import json, platform, subprocess, sys, time
from pathlib import Path

work, out, tests_rc = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
import torch
from profiler.instrument.gpu import GpuSampler, NvmlSource

sampler = GpuSampler(NvmlSource(), interval_s=0.1)
sampler.start()
t0 = time.time()
bench = subprocess.run([sys.executable, "benchmarks/replay_bench.py", "--device", "cuda",
                        "--model", "llama-3.2-1b", "--dtype", "bfloat16", "--repeats", "3",
                        "--json", str(work / "replay.json")], capture_output=True, text=True)
t1 = time.time()
sampler.stop()
stats = sampler.stats(t0, t1)
samples = sampler.samples
powers = [s.reading.power_w for s in samples if getattr(s.reading, "power_w", None) is not None]
replay = json.loads((work / "replay.json").read_text()) if (work / "replay.json").exists() else None
log = (work / "gpu_tests.log").read_text()
doc = {
    "schema": "ctxprof.gpu_check/1",
    "machine": {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
                "cuda": torch.version.cuda, "python": platform.python_version()},
    "gpu_tests": {"exit_code": tests_rc, "summary": log.strip().splitlines()[-1] if log.strip() else ""},
    "replay_bench": {"exit_code": bench.returncode, "stdout": bench.stdout,
                     "stderr_tail": bench.stderr[-4000:],
                     "summary": None if replay is None else replay["summary"]},
    "nvml": {"window_s": t1 - t0, "samples": len(samples),
             "stats": None if stats is None else stats.to_dict(),
             "peak_power_w": max(powers) if powers else None},
}
out.write_text(json.dumps(doc, indent=2))
print(bench.stdout)
print(f"Wrote {out}", file=sys.stderr)
sys.exit(0 if bench.returncode == 0 and tests_rc == 0 else 1)
PY
