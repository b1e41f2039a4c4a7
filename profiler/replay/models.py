"""Models to replay with: architecture presets with random weights, or a local Hugging Face checkpoint.

Contract: `load_model(spec, device=, dtype=, seed=)` returns a `LoadedModel` (the torch module, its
`Vocabulary`, and a `ModelInfo` with the shape figures the FLOP model needs). `spec` is a preset name
(`ARCHITECTURE_PRESETS`) or a path to a checkpoint directory. Nothing is downloaded (`local_files_only=True`).

Presets reproduce the shapes of real models (layers, hidden size, heads, KV heads, head dimension,
MLP size, vocabulary, tied embeddings, RoPE settings) from their published `config.json`, and are built
with seeded random weights: prefill time depends on the shape, not on the weight values. Their special
ids (which mapped token sequences avoid) are the real models' reserved ranges. `tiny` and `small` are
not real models: they exist so replay runs in seconds on a CPU.

torch and transformers are imported inside the functions that need them.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from profiler.cache_sim.presets import MODEL_SHAPES, ModelPreset
from profiler.errors import ConfigError
from profiler.replay.sequences import Vocabulary

DTYPES = ("float32", "float16", "bfloat16")
DEVICES = ("cpu", "cuda")


# The architecture presets are the entries of the one model-shape table that carry a full config.
Preset = ModelPreset
ARCHITECTURE_PRESETS: dict[str, Preset] = {name: p for name, p in MODEL_SHAPES.items() if p.architecture}


@dataclass(frozen=True)
class ModelInfo:
    """The model a replay ran: where it came from and the shape figures of the FLOP model."""

    name: str
    source: str  # "preset" (random weights) or "checkpoint"
    architecture: str
    num_layers: int
    hidden_size: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    params: int
    non_embedding_params: int
    kv_bytes_per_token: int
    dtype: str
    device: str
    device_name: str
    has_tokenizer: bool
    seed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LoadedModel:
    module: Any  # a transformers PreTrainedModel in eval mode
    vocab: Vocabulary
    info: ModelInfo
    eos_token_id: int | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def torch_dtype(name: str) -> Any:
    import torch

    if name not in DTYPES:
        raise ConfigError(f"unknown dtype {name!r}: use one of {', '.join(DTYPES)}")
    return getattr(torch, name)


def _config_for(preset: Preset) -> Any:
    from transformers import LlamaConfig, Qwen2Config

    cls = {"llama": LlamaConfig, "qwen2": Qwen2Config}[preset.architecture]
    kwargs = dict(preset.config)
    rope = dict(kwargs.pop("rope"))
    probe = cls()
    if hasattr(probe, "rope_parameters"):  # transformers >= 5
        kwargs["rope_parameters"] = rope
    else:  # transformers 4.x: rope_theta and rope_scaling
        kwargs["rope_theta"] = rope.pop("rope_theta")
        if rope.get("rope_type", "default") != "default":
            kwargs["rope_scaling"] = rope
    return cls(**kwargs)


def _device_name(device: str) -> str:
    import torch

    if device == "cuda":
        return torch.cuda.get_device_name(0)
    import platform

    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def _check_device(device: str) -> None:
    import torch

    if device not in DEVICES:
        raise ConfigError(f"unknown device {device!r}: use cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but torch sees no CUDA GPU "
                          f"(torch {torch.__version__}); use --device cpu")


def _shape_info(module: Any, name: str, source: str, dtype: str, device: str, has_tokenizer: bool,
                seed: int | None) -> ModelInfo:
    cfg = module.config.get_text_config() if hasattr(module.config, "get_text_config") else module.config
    heads = cfg.num_attention_heads
    kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    params = sum(p.numel() for p in module.parameters())
    embedding = sum(p.numel() for p in module.get_input_embeddings().parameters())
    out = module.get_output_embeddings()
    if out is not None and out.weight.data_ptr() != module.get_input_embeddings().weight.data_ptr():
        embedding += out.weight.numel()
    element = {"float32": 4, "float16": 2, "bfloat16": 2}[dtype]
    return ModelInfo(
        name=name, source=source, architecture=type(module).__name__,
        num_layers=cfg.num_hidden_layers, hidden_size=cfg.hidden_size, num_attention_heads=heads,
        num_kv_heads=kv_heads, head_dim=head_dim, vocab_size=cfg.vocab_size, params=params,
        non_embedding_params=params - embedding,
        kv_bytes_per_token=2 * cfg.num_hidden_layers * kv_heads * head_dim * element,
        dtype=dtype, device=device, device_name=_device_name(device), has_tokenizer=has_tokenizer,
        seed=seed)


def load_model(spec: str, *, device: str = "cpu", dtype: str = "float32", seed: int = 0) -> LoadedModel:
    """A preset (random weights from `seed`) or a local checkpoint directory, in eval mode."""
    _check_device(device)
    tdtype = torch_dtype(dtype)
    if spec in ARCHITECTURE_PRESETS:
        return _load_preset(ARCHITECTURE_PRESETS[spec], device, dtype, tdtype, seed)
    path = Path(os.path.expanduser(spec))
    if path.is_dir():
        return _load_checkpoint(path, device, dtype, tdtype)
    raise ConfigError(f"--model {spec!r} is neither a preset ({', '.join(ARCHITECTURE_PRESETS)}) nor a local "
                      "checkpoint directory; pass a preset name or the path of a folder holding "
                      "config.json and the weights")


def _load_preset(preset: Preset, device: str, dtype: str, tdtype: Any, seed: int) -> LoadedModel:
    import torch
    from transformers import AutoModelForCausalLM

    config = _config_for(preset)
    # Initialise on the target device (much faster than on the CPU for billion-parameter shapes),
    # from a generator seeded here: the weights are a function of `seed` on a given device.
    torch.manual_seed(seed)
    if device == "cuda":
        torch.cuda.manual_seed_all(seed)
    with torch.device(device):
        module = AutoModelForCausalLM.from_config(config)
    module = module.to(dtype=tdtype).eval()
    vocab = Vocabulary(size=config.vocab_size, special_ids=preset.special_ids)
    info = _shape_info(module, preset.name, "preset", dtype, device, False, seed)
    return LoadedModel(module=module, vocab=vocab, info=info, eos_token_id=config.eos_token_id)


def _load_checkpoint(path: Path, device: str, dtype: str, tdtype: Any) -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (path / "config.json").is_file():
        raise ConfigError(f"{path}: no config.json; a checkpoint directory needs config.json and weights")
    try:
        module = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=tdtype)
    except TypeError:  # transformers 4.x names it torch_dtype
        module = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, torch_dtype=tdtype)
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: could not load the checkpoint ({e})") from None
    module = module.to(device=device, dtype=tdtype).eval()
    tokenizer = None
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, TypeError):
        tokenizer = None  # weights without a tokenizer: sequences are hash-mapped instead
    cfg = module.config.get_text_config() if hasattr(module.config, "get_text_config") else module.config
    specials = tuple(sorted(set(getattr(tokenizer, "all_special_ids", []) or [])))
    vocab = Vocabulary(size=cfg.vocab_size, special_ids=specials, tokenizer=tokenizer)
    info = _shape_info(module, path.name, "checkpoint", dtype, device, tokenizer is not None, None)
    eos = getattr(cfg, "eos_token_id", None)
    if isinstance(eos, (list, tuple)):
        eos = eos[0] if eos else None
    return LoadedModel(module=module, vocab=vocab, info=info, eos_token_id=eos)
