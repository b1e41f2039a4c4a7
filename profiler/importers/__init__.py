"""Importers: traces that other tools recorded, turned into ctxprof `Trace`s.

Each importer is a function `import_<format>(sources, **options) -> Trace` in its own module, listed
in `IMPORTERS` as "module:function" and loaded only when used (so `ctxprof analyze` never imports
them). Every importer keeps provider-reported usage (normalised with `profiler.usage.normalize_usage`)
and timestamps where the source has them, and records what it had to reconstruct in the trace header's
`attributes["reconstructed"]`.
"""

from __future__ import annotations

# format name -> "module:function"
IMPORTERS: dict[str, str] = {
    "openai-log": "profiler.importers.openai_logs:import_openai_logs",
    "openhands": "profiler.importers.openhands:import_openhands",
    "swe-agent": "profiler.importers.swe_agent:import_swe_agent",
    "mini-swe-agent": "profiler.importers.swe_agent:import_mini_swe_agent",
    "tau-bench": "profiler.importers.tau_bench:import_tau_bench",
    "otel": "profiler.otel:import_otlp",
    "mooncake": "profiler.importers.mooncake:import_mooncake",
    "vcr": "profiler.importers.vcr:import_vcr",
}
