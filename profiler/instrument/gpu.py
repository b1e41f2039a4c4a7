"""GPU figures for local models: NVML sampling and CUDA-event timing.

- `GpuSampler` samples a `SampleSource` (by default `NvmlSource`, through `pynvml` from the
  `nvidia-ml-py` package) on a background thread: utilisation, memory used, power and the cumulative
  energy counter (`nvmlDeviceGetTotalEnergyConsumption`, Volta and newer). `stats(t0, t1)` turns the
  samples of a time window into `GpuStats`: mean utilisation and power, mean and peak memory, and
  energy from the counter's difference (interpolated at the window's ends) or, where the counter is not
  supported, from the power readings integrated over the window (trapezoids). The recorder asks for
  one window per step and one per run.
- `cuda_timer()` times a block with CUDA events (wall clock when CUDA is absent) and splits it at
  `mark_first_token()` into prefill (up to the first generated token) and decode; `timed_generate()`
  does that around a Hugging Face `generate` call with a streamer that sees the first new token.
  Inside a recorder step the figures land in the step's `gpu.prefill_ms` / `gpu.decode_ms`.

`torch`, `transformers` and `pynvml` are imported inside the functions that use them.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import numpy as np

from profiler.trace.model import GpuStats


class GpuUnavailable(RuntimeError):
    """No NVML / no GPU here; the recorder notes it once and records without GPU figures."""


@dataclass(frozen=True)
class GpuReading:
    """One reading of a device (a `SampleSource` returns these; the sampler adds the time)."""

    utilization_pct: float | None = None
    memory_used_bytes: int | None = None
    power_w: float | None = None
    energy_mj: float | None = None  # cumulative counter since driver load, millijoules


@dataclass(frozen=True)
class GpuSample:
    t_unix_s: float
    reading: GpuReading


class SampleSource(Protocol):
    device: str

    def read(self) -> GpuReading: ...

    def close(self) -> None: ...


def visible_device(env: dict[str, str] | None = None) -> int | str:
    """The GPU a process's CUDA device 0 is: NVML counts every GPU, CUDA only the visible ones, so
    the first entry of `CUDA_VISIBLE_DEVICES` (an index or a `GPU-...` UUID) names it."""
    import os

    value = (env if env is not None else os.environ).get("CUDA_VISIBLE_DEVICES", "")
    first = value.split(",")[0].strip()
    if first.isdigit():
        return int(first)
    if first.startswith(("GPU-", "MIG-")):
        return first
    return 0


class NvmlSource:
    """Readings of one GPU through NVML (by default the process's CUDA device 0)."""

    def __init__(self, index: int | str | None = None) -> None:
        try:
            import pynvml
        except ImportError:
            raise GpuUnavailable("pynvml is not installed (pip install nvidia-ml-py)") from None
        try:
            pynvml.nvmlInit()
        except Exception as e:  # NVMLError_LibraryNotFound, DriverNotLoaded...
            raise GpuUnavailable(f"NVML cannot start here ({e})") from None
        index = visible_device() if index is None else index
        try:
            self._handle = (pynvml.nvmlDeviceGetHandleByUUID(index) if isinstance(index, str)
                            else pynvml.nvmlDeviceGetHandleByIndex(index))
            name = pynvml.nvmlDeviceGetName(self._handle)
        except Exception as e:
            pynvml.nvmlShutdown()
            raise GpuUnavailable(f"no GPU {index} visible to NVML ({e})") from None
        self._nvml = pynvml
        self.device = name.decode() if isinstance(name, bytes) else str(name)
        self._energy = self._try(pynvml.nvmlDeviceGetTotalEnergyConsumption) is not None
        self._power = self._try(pynvml.nvmlDeviceGetPowerUsage) is not None

    def _try(self, fn: Callable[[Any], Any]) -> Any:
        try:
            return fn(self._handle)
        except Exception:
            return None

    def read(self) -> GpuReading:
        nv = self._nvml
        util = self._try(nv.nvmlDeviceGetUtilizationRates)
        mem = self._try(nv.nvmlDeviceGetMemoryInfo)
        power_mw = self._try(nv.nvmlDeviceGetPowerUsage) if self._power else None
        energy_mj = self._try(nv.nvmlDeviceGetTotalEnergyConsumption) if self._energy else None
        return GpuReading(
            utilization_pct=None if util is None else float(util.gpu),
            memory_used_bytes=None if mem is None else int(mem.used),
            power_w=None if power_mw is None else power_mw / 1000.0,
            energy_mj=None if energy_mj is None else float(energy_mj))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._nvml.nvmlShutdown()


class GpuSampler:
    """Samples a source every `interval_s` on a daemon thread; `stats(t0, t1)` summarises a window."""

    def __init__(self, source: SampleSource, *, clock: Callable[[], float] = time.time,
                 interval_s: float = 0.1) -> None:
        self.source = source
        self.clock = clock
        self.interval_s = interval_s
        self._samples: list[GpuSample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def samples(self) -> tuple[GpuSample, ...]:
        with self._lock:
            return tuple(self._samples)

    def sample_once(self) -> GpuSample:
        sample = GpuSample(self.clock(), self.source.read())
        with self._lock:
            self._samples.append(sample)
        return sample

    def start(self) -> None:
        if self._thread is not None:
            return
        self.sample_once()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="ctxprof-gpu-sampler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sample_once()
            except Exception:
                return  # the device went away; keep what was sampled

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=5)
            self._thread = None
        self.source.close()

    def stats(self, t0: float, t1: float) -> GpuStats | None:
        """GPU figures of the window [t0, t1] (None when there are no samples)."""
        if self._thread is not None:
            with self._lock:
                last = self._samples[-1].t_unix_s if self._samples else None
            if last is None or last < t1:
                with contextlib.suppress(Exception):
                    self.sample_once()  # a reading at the window's end
        return summarize(self.samples, t0, t1, device=getattr(self.source, "device", None))


def _series(samples: tuple[GpuSample, ...], name: str) -> tuple[np.ndarray, np.ndarray]:
    pts = [(s.t_unix_s, getattr(s.reading, name)) for s in samples
           if getattr(s.reading, name) is not None]
    if not pts:
        return np.zeros(0), np.zeros(0)
    arr = np.asarray(pts, dtype=np.float64)
    return arr[:, 0], arr[:, 1]


def _window(t: np.ndarray, v: np.ndarray, t0: float, t1: float) -> np.ndarray:
    """Values inside [t0, t1]; the nearest reading when none falls inside (a short step)."""
    inside = (t >= t0) & (t <= t1)
    if inside.any():
        return v[inside]
    return np.interp([(t0 + t1) / 2], t, v)


def integrate_power_j(t: np.ndarray, power_w: np.ndarray, t0: float, t1: float) -> float:
    """Energy (J) of the piecewise-linear power curve through the samples, over [t0, t1] (held flat
    beyond the first and last sample)."""
    if t1 <= t0 or t.size == 0:
        return 0.0
    grid = np.concatenate([[t0], t[(t > t0) & (t < t1)], [t1]])
    p = np.interp(grid, t, power_w)
    return float(np.sum((p[1:] + p[:-1]) / 2 * np.diff(grid)))


def summarize(samples: tuple[GpuSample, ...], t0: float, t1: float, *,
              device: str | None = None) -> GpuStats | None:
    """The figures of a window: mean utilisation, memory and power, peak memory, energy."""
    if not samples or t1 < t0:
        return None
    in_window = sum(1 for s in samples if t0 <= s.t_unix_s <= t1)
    ut, uv = _series(samples, "utilization_pct")
    mt, mv = _series(samples, "memory_used_bytes")
    pt, pv = _series(samples, "power_w")
    et, ev = _series(samples, "energy_mj")
    energy_j = None
    if et.size >= 2 and et[0] <= t0 and et[-1] >= t1:
        # The counter brackets the window: exact up to interpolation between readings.
        e0, e1 = np.interp([t0, t1], et, ev)
        energy_j = float(e1 - e0) / 1000.0
    elif pt.size:
        energy_j = integrate_power_j(pt, pv, t0, t1)
    return GpuStats(
        device=device,
        utilization_pct=float(np.mean(_window(ut, uv, t0, t1))) if ut.size else None,
        memory_used_bytes=int(np.mean(_window(mt, mv, t0, t1))) if mt.size else None,
        memory_peak_bytes=int(np.max(_window(mt, mv, t0, t1))) if mt.size else None,
        power_w=float(np.mean(_window(pt, pv, t0, t1))) if pt.size else None,
        energy_j=energy_j,
        samples=in_window,
    )


# -- CUDA-event timing ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Timing:
    """One timed block: total, and prefill / decode when the first token was marked."""

    device: str
    total_ms: float
    prefill_ms: float | None
    decode_ms: float | None


class cuda_timer(contextlib.ContextDecorator):
    """Time a block with CUDA events on the current device (wall clock without CUDA).

    `mark_first_token()` inside the block splits it into prefill and decode. When the block runs inside
    a recorder step (or `step=` is given) the figures are stored on that step. `timing` holds the result
    after the block.
    """

    def __init__(self, step: Any = None, *, use_cuda: bool | None = None) -> None:
        self._step = step
        self._use_cuda = use_cuda
        self.timing: Timing | None = None

    def __enter__(self) -> "cuda_timer":
        import torch

        cuda = torch.cuda.is_available() if self._use_cuda is None else self._use_cuda
        self._cuda = cuda
        self._first: Any = None
        if cuda:
            self._device = torch.cuda.get_device_name()
            self._start = torch.cuda.Event(enable_timing=True)
            self._end = torch.cuda.Event(enable_timing=True)
            self._start.record()
        else:
            self._device = "cpu"
            self._start = time.perf_counter()
        return self

    def mark_first_token(self) -> None:
        if self._first is not None:
            return
        if self._cuda:
            import torch

            self._first = torch.cuda.Event(enable_timing=True)
            self._first.record()
        else:
            self._first = time.perf_counter()

    def __exit__(self, *exc: Any) -> None:
        if self._cuda:
            import torch

            self._end.record()
            torch.cuda.synchronize()
            total = self._start.elapsed_time(self._end)
            prefill = None if self._first is None else self._start.elapsed_time(self._first)
        else:
            now = time.perf_counter()
            total = (now - self._start) * 1000.0
            prefill = None if self._first is None else (self._first - self._start) * 1000.0
        decode = None if prefill is None else max(total - prefill, 0.0)
        self.timing = Timing(device=self._device, total_ms=total, prefill_ms=prefill, decode_ms=decode)
        step = self._step
        if step is None:
            from profiler.instrument.context import current_step

            step = current_step()
        if step is not None:
            step.set_gpu_timing(prefill_ms=prefill if prefill is not None else total,
                                decode_ms=decode, device=self._device)
            if prefill is not None and step.ttft_ms is None:
                step.ttft_ms = prefill  # a local model's first token arrives when prefill ends


def timed_generate(model: Any, *args: Any, step: Any = None, **kwargs: Any) -> tuple[Any, Timing]:
    """`model.generate(*args, **kwargs)` timed with `cuda_timer`, prefill ending when the first new
    token reaches the streamer (a streamer already given keeps receiving every token)."""
    from transformers.generation.streamers import BaseStreamer

    timer = cuda_timer(step)
    user_streamer = kwargs.pop("streamer", None)

    class _FirstToken(BaseStreamer):
        def __init__(self) -> None:
            self.calls = 0

        def put(self, value: Any) -> None:
            self.calls += 1
            if self.calls == 2:  # the first call carries the prompt, the second the first new token
                timer.mark_first_token()
            if user_streamer is not None:
                user_streamer.put(value)

        def end(self) -> None:
            if user_streamer is not None:
                user_streamer.end()

    with timer:
        out = model.generate(*args, streamer=_FirstToken(), **kwargs)
    assert timer.timing is not None
    return out, timer.timing
