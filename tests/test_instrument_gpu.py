"""GPU figures: the sampler's arithmetic (on CPU, with a fake sample source, because NVML cannot run
without an NVIDIA driver), per-step and per-run aggregation through the recorder, prefill/decode
timing (wall clock on CPU, CUDA events on a GPU), and a real-GPU test that is skipped without CUDA."""

from __future__ import annotations

from pathlib import Path

import pytest

import profiler
from profiler.instrument.gpu import (GpuReading, GpuSample, GpuSampler, cuda_timer, integrate_power_j,
                                     summarize, timed_generate)
from profiler.trace import load_trace

from recording_helpers import FakeClock


class FakeSource:
    """Readings scripted as functions of the (fake) time: stands in for NVML, which needs a GPU."""

    device = "Fake GPU 80GB"

    def __init__(self, clock: FakeClock, *, energy_counter: bool) -> None:
        self.clock = clock
        self.energy_counter = energy_counter
        self.closed = False

    def read(self) -> GpuReading:
        t = self.clock.now - 1_700_000_000.0
        power = 100.0 + 10.0 * t  # W, rising linearly
        energy_mj = (100.0 * t + 5.0 * t * t) * 1000.0 + 7e6  # integral of power, plus an offset
        return GpuReading(utilization_pct=50.0 + t, memory_used_bytes=int(1e9 + 1e8 * t),
                          power_w=power, energy_mj=energy_mj if self.energy_counter else None)

    def close(self) -> None:
        self.closed = True


def sampled(clock: FakeClock, source: FakeSource, times: list[float]) -> GpuSampler:
    sampler = GpuSampler(source, clock=clock)
    for t in times:
        clock.now = 1_700_000_000.0 + t
        sampler.sample_once()
    return sampler


@pytest.mark.parametrize("counter", [True, False])
def test_energy_of_a_window_from_counter_or_integrated_power(counter: bool) -> None:
    # GIVEN readings every 0.5 s of a power ramp P(t) = 100 + 10 t  (energy over [1, 3] = 240 J)
    clock = FakeClock()
    sampler = sampled(clock, FakeSource(clock, energy_counter=counter), [i * 0.5 for i in range(9)])
    base = 1_700_000_000.0
    stats = summarize(sampler.samples, base + 1.0, base + 3.0, device="Fake GPU 80GB")
    assert stats is not None
    # THEN both the counter difference and the trapezoid integral of a linear ramp are exact
    assert stats.energy_j == pytest.approx(240.0)
    assert stats.samples == 5  # t = 1.0, 1.5, 2.0, 2.5, 3.0
    assert stats.utilization_pct == pytest.approx(52.0)  # mean of 51..53
    assert stats.memory_peak_bytes == int(1e9 + 3e8)
    assert stats.power_w == pytest.approx(120.0)
    assert stats.device == "Fake GPU 80GB"


def test_power_integration_between_samples_and_short_windows() -> None:
    import numpy as np

    t = np.array([0.0, 1.0, 2.0])
    p = np.array([100.0, 200.0, 100.0])
    assert integrate_power_j(t, p, 0.0, 2.0) == pytest.approx(300.0)
    assert integrate_power_j(t, p, 0.5, 1.0) == pytest.approx(0.5 * (150 + 200) / 2)
    # A window shorter than the sampling interval still gets the interpolated figures.
    samples = tuple(GpuSample(x, GpuReading(utilization_pct=u, power_w=pw))
                    for x, u, pw in [(0.0, 10.0, 100.0), (1.0, 30.0, 200.0)])
    short = summarize(samples, 0.4, 0.6)
    assert short is not None and short.samples == 0
    assert short.utilization_pct == pytest.approx(20.0)
    assert short.energy_j == pytest.approx(0.2 * 150.0)
    assert summarize((), 0.0, 1.0) is None


def test_recorder_aggregates_gpu_figures_per_step_and_per_run(tmp_path: Path) -> None:
    # GIVEN a recorder with an injected sampler on the same fake clock (no background thread)
    clock = FakeClock()
    source = FakeSource(clock, energy_counter=True)
    sampler = GpuSampler(source, clock=clock, interval_s=3600)
    path = tmp_path / "t.jsonl"
    with profiler.record(path, gpu=True, instrument=False, clock=clock, gpu_sampler=sampler) as rec:
        for name, seconds in (("prefill-heavy", 2.0), ("short", 1.0)):
            with rec.step(name):
                for _ in range(int(seconds / 0.5)):
                    clock.advance(0.5)
                    sampler.sample_once()
    trace = load_trace(path)
    a, b = trace.steps
    # THEN each step has its window's energy, and the run covers both
    assert a.gpu.energy_j == pytest.approx(100 * 2 + 5 * 4, rel=1e-6)  # t in [0, 2]
    assert b.gpu.energy_j == pytest.approx((100 * 3 + 5 * 9) - (100 * 2 + 5 * 4), rel=1e-6)
    assert trace.runs[0].gpu.energy_j == pytest.approx(a.gpu.energy_j + b.gpu.energy_j, rel=1e-6)
    assert a.gpu.device == "Fake GPU 80GB" and a.gpu.samples >= 4
    assert source.closed is False  # an injected sampler belongs to the caller


def test_cuda_timer_on_cpu_splits_prefill_and_decode_into_the_current_step(tmp_path: Path) -> None:
    import time

    path = tmp_path / "t.jsonl"
    with profiler.record(path, gpu=False, instrument=False) as rec:
        with rec.step("local-model"):
            with cuda_timer(use_cuda=False) as timer:
                time.sleep(0.02)
                timer.mark_first_token()
                time.sleep(0.01)
    (step,) = load_trace(path).steps
    assert step.gpu.device == "cpu"
    assert step.gpu.prefill_ms >= 15 and step.gpu.decode_ms >= 5
    assert timer.timing.total_ms == pytest.approx(step.gpu.prefill_ms + step.gpu.decode_ms)


def tiny_model():  # a randomly initialised 2-layer GPT-2: no download, timing depends on shape only
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=64, n_head=2, vocab_size=500, n_positions=256))


def test_timed_generate_on_cpu_records_prefill_before_decode(tmp_path: Path) -> None:
    import torch

    model = tiny_model()
    ids = torch.randint(0, 500, (1, 40))
    path = tmp_path / "t.jsonl"
    with profiler.record(path, gpu=False, instrument=False) as rec:
        with rec.step("generate"):
            out, timing = timed_generate(model, ids, max_new_tokens=8, do_sample=False,
                                         pad_token_id=0)
    assert out.shape[1] == 48
    (step,) = load_trace(path).steps
    assert timing.prefill_ms is not None and timing.decode_ms is not None
    assert 0 < step.gpu.prefill_ms < timing.total_ms and step.gpu.decode_ms > 0
    assert step.ttft_ms == step.gpu.prefill_ms


@pytest.mark.gpu
def test_gpu_timing_and_nvml_sampling_on_a_real_gpu(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    model = tiny_model().cuda()
    ids = torch.randint(0, 500, (1, 128), device="cuda")
    path = tmp_path / "t.jsonl"
    with profiler.record(path, gpu=True, instrument=False) as rec:
        with rec.step("generate"):
            _, timing = timed_generate(model, ids, max_new_tokens=16, do_sample=False, pad_token_id=0)
    (step,) = load_trace(path).steps
    assert timing.device != "cpu" and step.gpu.prefill_ms > 0 and step.gpu.decode_ms > 0
    assert step.gpu.memory_used_bytes and step.gpu.memory_used_bytes > 0
    assert step.gpu.utilization_pct is not None and step.gpu.power_w is not None
    assert load_trace(path).runs[0].gpu.energy_j is not None


def test_the_sampled_gpu_follows_cuda_visible_devices() -> None:
    from profiler.instrument.gpu import visible_device

    assert visible_device({}) == 0
    assert visible_device({"CUDA_VISIBLE_DEVICES": "3,1"}) == 3
    assert visible_device({"CUDA_VISIBLE_DEVICES": "GPU-8f6c1a2b-0000"}) == "GPU-8f6c1a2b-0000"
