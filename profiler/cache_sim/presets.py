"""KV-cache sizes of common open models, and capacities written as tokens or bytes.

A token's KV cache takes `layers x kv_heads x head_dim x 2 (K and V) x dtype bytes`. The presets carry
the published configurations (`config.json` of each checkpoint on the Hugging Face hub):

| preset        | layers | KV heads | head dim | bf16 bytes/token |
|---------------|-------:|---------:|---------:|-----------------:|
| llama-3.1-8b  | 32     | 8        | 128      | 131,072          |
| llama-3.1-70b | 80     | 8        | 128      | 327,680          |
| llama-3.2-1b  | 16     | 8        | 64       | 32,768           |
| qwen2.5-0.5b  | 24     | 2        | 64       | 12,288           |
| qwen2.5-1.5b  | 28     | 2        | 128      | 28,672           |
| qwen2.5-7b    | 28     | 4        | 128      | 57,344           |
| mistral-7b    | 32     | 8        | 128      | 131,072          |

`parse_capacity("8GiB", "llama-3.1-8b")` -> tokens that fit (65,536); `parse_capacity("100000", None)`
-> 100,000 tokens. A preset may name its KV dtype after a colon (`llama-3.1-8b:fp8`); bf16 by default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from profiler.errors import ConfigError

DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4, "fp8": 1, "int8": 1}
DEFAULT_DTYPE = "bf16"


@dataclass(frozen=True)
class ModelPreset:
    """The shape of a model: its KV cache (layers, KV heads, head dim) and, for the models replay can
    build with random weights, the transformers `architecture` and `config`, the reserved special ids
    and a description."""

    name: str
    layers: int
    kv_heads: int
    head_dim: int
    architecture: str | None = None  # "llama" or "qwen2" (the transformers config class)
    config: Mapping[str, Any] | None = None
    special_ids: tuple[int, ...] = ()
    description: str = ""
    real: bool = True  # False: a toy shape for tests and CPU smoke runs (not a KV-size preset)

    def kv_bytes_per_token(self, dtype: str = DEFAULT_DTYPE) -> int:
        return self.layers * self.kv_heads * self.head_dim * 2 * DTYPE_BYTES[dtype]


def _shape(name: str, architecture: str, config: dict[str, Any], special_ids: tuple[int, ...],
           description: str) -> ModelPreset:
    heads = config["num_attention_heads"]
    return ModelPreset(name, config["num_hidden_layers"], config["num_key_value_heads"],
                       config.get("head_dim", config["hidden_size"] // heads), architecture, config,
                       special_ids, description, real=name not in ("small", "tiny"))


_LLAMA3_ROPE = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}

_ARCHITECTURES = (
    _shape("llama-3.2-1b", "llama", dict(
        vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
        num_attention_heads=32, num_key_value_heads=8, head_dim=64, max_position_embeddings=131072,
        rms_norm_eps=1e-5, tie_word_embeddings=True, bos_token_id=128000, eos_token_id=128001,
        rope=_LLAMA3_ROPE),
        tuple(range(128000, 128256)), "Llama-3.2-1B shape (1.24B parameters, GQA 32/8, tied embeddings)"),
    _shape("qwen2.5-0.5b", "qwen2", dict(
        vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
        num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
        rms_norm_eps=1e-6, tie_word_embeddings=True, bos_token_id=151643, eos_token_id=151643,
        rope={"rope_type": "default", "rope_theta": 1000000.0}),
        tuple(range(151643, 151936)), "Qwen2.5-0.5B shape (0.49B parameters, GQA 14/2, tied embeddings)"),
    _shape("qwen2.5-1.5b", "qwen2", dict(
        vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
        num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=32768,
        rms_norm_eps=1e-6, tie_word_embeddings=True, bos_token_id=151643, eos_token_id=151643,
        rope={"rope_type": "default", "rope_theta": 1000000.0}),
        tuple(range(151643, 151936)), "Qwen2.5-1.5B shape (1.54B parameters, GQA 12/2, tied embeddings)"),
    _shape("small", "llama", dict(
        vocab_size=32000, hidden_size=512, intermediate_size=1536, num_hidden_layers=8,
        num_attention_heads=8, num_key_value_heads=2, head_dim=64, max_position_embeddings=32768,
        rms_norm_eps=1e-5, tie_word_embeddings=True, bos_token_id=31998, eos_token_id=31999,
        rope={"rope_type": "default", "rope_theta": 500000.0}),
        (31998, 31999), "a small Llama-style model for CPU smoke runs (~40M parameters)"),
    _shape("tiny", "llama", dict(
        vocab_size=4096, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=32768,
        rms_norm_eps=1e-5, tie_word_embeddings=True, bos_token_id=4094, eos_token_id=4095,
        rope={"rope_type": "default", "rope_theta": 10000.0}),
        (4094, 4095), "a tiny Llama-style model for tests (2 layers, hidden 64)"),
)


# The one model-shape table (replay's architecture presets are its entries with a config).
MODEL_SHAPES: dict[str, ModelPreset] = {p.name: p for p in (
    ModelPreset("llama-3.1-8b", layers=32, kv_heads=8, head_dim=128),
    ModelPreset("llama-3.1-70b", layers=80, kv_heads=8, head_dim=128),
    *_ARCHITECTURES,
    ModelPreset("qwen2.5-7b", layers=28, kv_heads=4, head_dim=128),
    ModelPreset("mistral-7b", layers=32, kv_heads=8, head_dim=128),
)}
# KV-size presets: the real models.
KV_PRESETS: dict[str, ModelPreset] = {name: p for name, p in MODEL_SHAPES.items() if p.real}

_BYTE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_TOKEN_UNITS = {"": 1, "k": 10**3, "m": 10**6}
_CAPACITY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def resolve_preset(preset: str) -> tuple[ModelPreset, str]:
    """`"Llama-3.1-8B"` or `"llama-3.1-8b:fp8"` -> (preset, dtype). Names are case-insensitive; an
    organisation prefix (`meta-llama/`) and an `-Instruct` suffix are ignored."""
    name, _, dtype = preset.strip().lower().partition(":")
    name = name.rsplit("/", 1)[-1].removesuffix("-instruct")
    dtype = dtype or DEFAULT_DTYPE
    if name.startswith("mistral-7b"):
        name = "mistral-7b"  # v0.1 / v0.2 / v0.3 share the KV shape
    if name not in KV_PRESETS:
        raise ConfigError(f"unknown model preset {preset!r}; use one of {', '.join(KV_PRESETS)}")
    if dtype not in DTYPE_BYTES:
        raise ConfigError(f"unknown KV dtype {dtype!r} in {preset!r}; use one of {', '.join(DTYPE_BYTES)}")
    return KV_PRESETS[name], dtype


def parse_capacity(text: str, preset: str | None) -> int:
    """A cache capacity in tokens: `"100000"`, `"128k"`, `"1M"` are token counts; `"8GiB"`, `"512MiB"`,
    `"40GB"` are bytes, turned into tokens with the KV size of `preset` (required for bytes)."""
    m = _CAPACITY.match(text)
    if not m:
        raise ConfigError(f"cannot read capacity {text!r}: write a token count (100000, 128k) or a size "
                          "in bytes (8GiB, 512MiB)")
    number, unit = float(m.group(1)), m.group(2).lower()
    if unit in _TOKEN_UNITS or unit in ("tok", "tokens"):
        return int(number * _TOKEN_UNITS.get(unit, 1))
    if unit not in _BYTE_UNITS:
        raise ConfigError(f"unknown unit {m.group(2)!r} in capacity {text!r}: use tokens (k, M) or bytes "
                          f"({', '.join(u for u in ('KiB', 'MiB', 'GiB', 'TiB', 'KB', 'MB', 'GB'))})")
    if preset is None:
        raise ConfigError(f"capacity {text!r} is in bytes: name the model whose KV cache it holds with "
                          f"--model-preset ({', '.join(KV_PRESETS)})")
    model, dtype = resolve_preset(preset)
    return int(number * _BYTE_UNITS[unit]) // model.kv_bytes_per_token(dtype)
