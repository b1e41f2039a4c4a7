"""Offline tiktoken encodings: fetching them without the network, and which model uses which.

Contract:
- `EncodingCache().get(name)` returns a tiktoken encoding (`o200k_base`, `cl100k_base`), each loaded
  once per cache object, without touching the network: from tiktoken's own cache when it holds the
  file, else from the `.tiktoken` file shipped in the `bpe-openai` package, checked against the sha256
  tiktoken expects and placed in tiktoken's cache directory (where tiktoken itself would have put a
  download), so tiktoken reads and re-verifies it there. The process environment is never changed.
- `default_encodings()` is the process-wide cache that tokenizers use unless given their own;
  `get_encoding(name)` reads from it.
- `encoding_for_model(model)` maps a model name to an encoding (exact for OpenAI models; an
  approximation, flagged as such, for other providers whose tokenizers are not available offline).
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from profiler.errors import TokenizerError

DEFAULT_ENCODING = "o200k_base"

# Where tiktoken fetches each encoding and the sha256 it expects (from tiktoken_ext.openai_public).
TIKTOKEN_FILES = {
    "o200k_base": ("https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
                   "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"),
    "cl100k_base": ("https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
                    "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"),
}


def tiktoken_cache_dir() -> Path | None:
    """tiktoken's cache directory, as tiktoken itself decides it; None when caching is switched off
    (`TIKTOKEN_CACHE_DIR=""`)."""
    for var in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if var in os.environ:
            return Path(os.environ[var]) if os.environ[var] else None
    return Path(tempfile.gettempdir()) / "data-gym-cache"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _cache_path(name: str) -> Path | None:
    directory = tiktoken_cache_dir()
    url, _ = TIKTOKEN_FILES[name]
    return None if directory is None else directory / hashlib.sha1(url.encode()).hexdigest()


def _cached_in_tiktoken(name: str) -> bool:
    path = _cache_path(name)
    try:
        return path is not None and _sha256(path.read_bytes()) == TIKTOKEN_FILES[name][1]
    except OSError:
        return False


def _bpe_openai_file(name: str) -> bytes:
    """The encoding file shipped in `bpe-openai`, checked against the sha256 tiktoken expects."""
    expected = TIKTOKEN_FILES[name][1]
    try:
        # Locate the file without importing bpe_openai: its import builds every encoding it ships.
        spec = importlib.util.find_spec("bpe_openai")
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError("bpe_openai is not installed")
        package_dir = Path(next(iter(spec.submodule_search_locations)))
        data = gzip.decompress((package_dir / "data" / f"{name}.tiktoken.gz").read_bytes())
    except (ModuleNotFoundError, FileNotFoundError, OSError) as e:
        raise TokenizerError(
            f"encoding {name!r} is not available offline: tiktoken has no cached copy and the "
            f"'bpe-openai' package is missing or lacks it ({e}); install it with `pip install bpe-openai`"
        ) from None
    if _sha256(data) != expected:
        raise TokenizerError(
            f"the {name} file shipped in bpe-openai has sha256 {_sha256(data)}, tiktoken expects "
            f"{expected}; reinstall bpe-openai or put tiktoken's own file in TIKTOKEN_CACHE_DIR")
    return data


def _place_in_tiktoken_cache(name: str, data: bytes) -> None:
    target = _cache_path(name)
    if target is None:
        raise TokenizerError(
            f"encoding {name!r} is not in tiktoken's cache and TIKTOKEN_CACHE_DIR is empty (tiktoken "
            "caching off), so the offline copy cannot be handed to it: unset TIKTOKEN_CACHE_DIR or "
            "point it at a folder")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)  # whole or not at all: another process may read it meanwhile
    except OSError as e:
        raise TokenizerError(f"cannot write encoding {name!r} into tiktoken's cache {target.parent} "
                             f"({e}); set TIKTOKEN_CACHE_DIR to a writable folder") from None


def _ctxprof_cache_dir() -> Path:
    base = os.environ.get("CTXPROF_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME")
    path = Path(base) / "ctxprof" if base and "CTXPROF_CACHE_DIR" not in os.environ else (
        Path(base) if base else Path.home() / ".cache" / "ctxprof")
    try:
        path.mkdir(parents=True, exist_ok=True)
        return path
    except OSError:
        fallback = Path(tempfile.gettempdir()) / "ctxprof-cache"
        fallback.mkdir(parents=True, exist_ok=True)
        return fallback


# Parsing an encoding file (200k base64 lines) took about half of loading an encoding, which was a
# third of `ctxprof analyze` on a small trace. The parsed ranks are kept in ctxprof's cache directory
# as a marshal blob named by the source file's sha256 and preceded by the blob's own sha256, checked
# on every load (a damaged or foreign file is ignored and rewritten).
_PARSED_FORMAT = 1


def _parsed_path(name: str) -> Path:
    expected = TIKTOKEN_FILES[name][1]
    return _ctxprof_cache_dir() / "tiktoken-parsed" / f"{name}-{expected[:24]}.v{_PARSED_FORMAT}.marshal"


def _load_parsed(name: str) -> Any:
    import marshal

    import tiktoken

    try:
        blob = _parsed_path(name).read_bytes()
        digest, payload = blob[:64].decode("ascii"), blob[64:]
        if _sha256(payload) != digest:
            return None
        fields = marshal.loads(payload)
        return tiktoken.Encoding(fields["name"], pat_str=fields["pat_str"],
                                 mergeable_ranks=fields["mergeable_ranks"],
                                 special_tokens=fields["special_tokens"])
    except (OSError, ValueError, EOFError, TypeError, KeyError, UnicodeDecodeError):
        return None


def _store_parsed(name: str, enc: Any) -> None:
    import marshal

    try:
        payload = marshal.dumps({"name": enc.name, "pat_str": enc._pat_str,
                                 "mergeable_ranks": enc._mergeable_ranks,
                                 "special_tokens": enc._special_tokens})
        target = _parsed_path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(_sha256(payload).encode("ascii") + payload)
        os.replace(tmp, target)
    except (OSError, AttributeError, ValueError):
        pass  # a cache we cannot write only costs the next run the parse


class EncodingCache:
    """Loaded encodings by name, each loaded once (thread-safe); see the module docstring."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        with self._lock:
            if name in self._loaded:
                return self._loaded[name]
            if name not in TIKTOKEN_FILES:
                raise TokenizerError(f"unknown encoding {name!r}; use one of {', '.join(TIKTOKEN_FILES)}")
            import tiktoken

            encoding = _load_parsed(name)
            if encoding is None:
                if not _cached_in_tiktoken(name):
                    _place_in_tiktoken_cache(name, _bpe_openai_file(name))
                # tiktoken reads (and re-verifies) the file from its cache directory: no download.
                encoding = tiktoken.get_encoding(name)
                _store_parsed(name, encoding)
            self._loaded[name] = encoding
            return encoding


_DEFAULT = EncodingCache()


def default_encodings() -> EncodingCache:
    """The process-wide encoding cache (tokenizers take their own where a caller passes one)."""
    return _DEFAULT


def get_encoding(name: str) -> Any:
    """A tiktoken encoding by name (`o200k_base`, `cl100k_base`), loaded without network access."""
    return _DEFAULT.get(name)


def encoding_for_model(model: str | None) -> tuple[str, bool]:
    """`(encoding name, exact)` for a model: exact for OpenAI models tiktoken knows; otherwise the
    default encoding as an approximation (Claude, Gemini, DeepSeek... have no offline tokenizer)."""
    if model:
        import tiktoken.model

        bare = model.split("/")[-1]
        try:
            name = tiktoken.model.encoding_name_for_model(bare)
            if name in TIKTOKEN_FILES:
                return name, True
        except KeyError:
            pass
    return DEFAULT_ENCODING, False
