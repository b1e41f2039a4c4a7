"""Plotly figures of an analysis, for notebooks and the HTML report.

Every function takes a `ReportData` (from `profiler.report.build_report_data`) or a bare `Analysis`
and returns a `plotly.graph_objects.Figure`; none recomputes the analysis. plotly is imported inside
the functions (it is the `report` extra), so importing this module costs nothing.

- `tokens_per_step`: prompt tokens per step stacked as prefix-reused / repeated / novel, plus output;
- `cumulative_cost`: cumulative cost against depth with no caching, as recorded, and with ideal reuse
  (tokens instead of USD when no prices are known);
- `reuse_heatmap`: which earlier step each step's reused context came from;
- `cached_vs_ideal`: the provider's reported cached tokens against the ideal (prefix_reused), with each
  simulated provider's prediction where available;
- `scenario_costs`: total cost under each caching scenario.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from profiler.analysis import Analysis, StepMetrics

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from profiler.report.data import ReportData

# Past this many steps, per-step charts aggregate by depth (step index, summed over runs).
MAX_STEP_BARS = 120

COLORS = {
    "prefix": "#2b8a3e",     # reusable by a prefix cache
    "repeated": "#f08c00",   # repeated, not reusable by a prefix cache
    "novel": "#1c7ed6",
    "output": "#adb5bd",
    "reported": "#7048e8",
    "no_cache": "#e03131",
    "actual": "#1c7ed6",
    "ideal": "#2b8a3e",
}
SCENARIO_COLORS = {"openai": "#10a37f", "anthropic": "#d97757", "gemini": "#4285f4"}
_LAYOUT = dict(template="plotly_white", margin=dict(l=60, r=20, t=50, b=60), height=380,
               legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="left", x=0,
                           traceorder="normal"),
               font=dict(family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size=12))


def _analysis(obj: "ReportData | Analysis") -> Analysis:
    return obj if isinstance(obj, Analysis) else obj.analysis


def _steps(analysis: Analysis) -> list[tuple[str, StepMetrics]]:
    from profiler.report.data import step_labels

    return list(zip(step_labels(analysis), analysis.steps))


def _by_depth(analysis: Analysis, names: Sequence[str]) -> tuple[list[int], dict[str, list[Any]]]:
    """Per depth (step index), the sum over runs of each field (None when no run knows it)."""
    depth = max((s.index for s in analysis.steps), default=-1) + 1
    out: dict[str, list[Any]] = {n: [None] * depth for n in names}
    for s in analysis.steps:
        for n in names:
            v = getattr(s, n)
            if v is not None:
                out[n][s.index] = (out[n][s.index] or 0) + v
    return list(range(depth)), out


def _figure(title: str, xtitle: str, ytitle: str) -> "go.Figure":
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.update_layout(title=dict(text=title, x=0, xanchor="left"), xaxis_title=xtitle,
                      yaxis_title=ytitle, **_LAYOUT)
    return fig


def _per_step_axis(analysis: Analysis, names: Sequence[str]) -> tuple[list[Any], dict[str, list[Any]],
                                                                       str, bool]:
    steps = _steps(analysis)
    if len(steps) <= MAX_STEP_BARS:
        return ([label for label, _ in steps], {n: [getattr(s, n) for _, s in steps] for n in names},
                "step", False)
    x, values = _by_depth(analysis, names)
    return x, values, f"depth (step index; sum over {len(analysis.runs)} runs)", True


def tokens_per_step(obj: "ReportData | Analysis") -> "go.Figure":
    """Stacked bars: each step's prompt as prefix-reused / repeated / novel tokens, then its output."""
    import plotly.graph_objects as go

    analysis = _analysis(obj)
    names = ("prefix_reused_tokens", "repeated_tokens", "novel_tokens", "output_tokens")
    x, v, xtitle, _ = _per_step_axis(analysis, names)
    fig = _figure("Tokens per step", xtitle, "tokens")
    for name, label, color in (("prefix_reused_tokens", "prefix-reused", COLORS["prefix"]),
                               ("repeated_tokens", "repeated (non-prefix)", COLORS["repeated"]),
                               ("novel_tokens", "novel", COLORS["novel"]),
                               ("output_tokens", "output", COLORS["output"])):
        fig.add_trace(go.Bar(name=label, x=x, y=v[name], marker_color=color,
                             hovertemplate="%{x}<br>" + label + ": %{y:,} tokens<extra></extra>"))
    fig.update_layout(barmode="stack", xaxis=dict(type="category"))
    return fig


def _cumulative(values: Sequence[Any]) -> list[Any]:
    total = 0.0
    out: list[Any] = []
    for v in values:
        if v is None:
            out.append(None)
            continue
        total += v
        out.append(total)
    return out


def cumulative_cost(obj: "ReportData | Analysis") -> "go.Figure":
    """Cumulative cost against depth: no caching, as recorded (actual), and with an ideal prefix cache.

    Without prices, the same curves in prefill tokens: every input token, and those left after an
    ideal prefix cache (input - prefix_reused).
    """
    import plotly.graph_objects as go

    analysis = _analysis(obj)
    priced = any(s.cost_no_cache_usd is not None for s in analysis.steps)
    if priced:
        x, v = _by_depth(analysis, ("cost_no_cache_usd", "cost_actual_usd", "cost_ideal_usd"))
        fig = _figure("Cumulative cost against depth", "depth (step index)", "USD")
        series = (("cost_no_cache_usd", "no caching", COLORS["no_cache"], "dash"),
                  ("cost_actual_usd", "actual (provider's caching)", COLORS["actual"], "solid"),
                  ("cost_ideal_usd", "ideal prefix reuse", COLORS["ideal"], "solid"))
        fmt = "$%{y:,.4f}"
    else:
        x, v = _by_depth(analysis, ("input_tokens", "prefix_reused_tokens"))
        v = {"all": v["input_tokens"],
             "ideal": [None if a is None else a - (b or 0)
                       for a, b in zip(v["input_tokens"], v["prefix_reused_tokens"])]}
        fig = _figure("Cumulative prefill tokens against depth (no prices known)",
                      "depth (step index)", "prefill tokens")
        series = (("all", "no reuse", COLORS["no_cache"], "dash"),
                  ("ideal", "ideal prefix reuse", COLORS["ideal"], "solid"))
        fmt = "%{y:,}"
    fig.update_xaxes(tickformat="d", dtick=1 if len(x) <= 30 else None)
    for key, label, color, dash in series:
        fig.add_trace(go.Scatter(name=label, x=x, y=_cumulative(v[key]), mode="lines+markers",
                                 line=dict(color=color, dash=dash),
                                 hovertemplate="depth %{x}<br>" + label + ": " + fmt + "<extra></extra>"))
    return fig


def reuse_heatmap(obj: "ReportData | Analysis") -> "go.Figure":
    """Rows: steps; columns: the earlier step their reused tokens came from; colour: tokens."""
    import plotly.graph_objects as go

    from profiler.report.data import reuse_matrix

    matrix = reuse_matrix(obj) if isinstance(obj, Analysis) else obj.matrix
    fig = _figure("Where each step's context came from", "source step (earlier)", "step")
    if matrix is None:
        return fig
    z = [[v if v else None for v in row] for row in matrix.tokens]
    custom = [[[p, t - p] for p, t in zip(prow, trow)] for prow, trow in zip(matrix.prefix, matrix.tokens)]
    fig.add_trace(go.Heatmap(
        z=z, x=list(matrix.labels), y=list(matrix.labels), customdata=custom,
        colorscale="Viridis", colorbar=dict(title="tokens"), hoverongaps=False,
        hovertemplate=("step %{y}<br>from %{x}: %{z:,} tokens<br>"
                       "prefix %{customdata[0]:,} / repeated %{customdata[1]:,}<extra></extra>")))
    n = len(matrix.labels)
    fig.update_layout(height=min(900, max(420, 160 + 22 * n)),
                      xaxis=dict(type="category", tickangle=-45),
                      yaxis=dict(type="category", autorange="reversed"))
    if n > 40:
        fig.update_xaxes(showticklabels=False)
        fig.update_yaxes(showticklabels=False)
    return fig


def cached_vs_ideal(obj: "ReportData | Analysis") -> "go.Figure":
    """Per step: ideal reusable prefix, what the provider reported as cached, and simulated predictions."""
    import plotly.graph_objects as go

    analysis = _analysis(obj)
    # Both bars in the provider's tokens (`profiler.units`): the ideal is the calibrated prefix.
    names = ("provider_prefix_reused_tokens", "reported_cached_tokens")
    x, v, xtitle, by_depth = _per_step_axis(analysis, names)
    unit = "provider tokens" if analysis.totals.unit == "provider" else f"tokens ({analysis.totals.unit} units)"
    fig = _figure("Provider-reported cached tokens against the ideal", xtitle, unit)
    fig.add_trace(go.Bar(name="ideal (prefix reusable)", x=x, y=v["provider_prefix_reused_tokens"],
                         marker_color=COLORS["ideal"],
                         hovertemplate="%{x}<br>ideal: %{y:,}<extra></extra>"))
    fig.add_trace(go.Bar(name="reported cached", x=x, y=v["reported_cached_tokens"],
                         marker_color=COLORS["reported"],
                         hovertemplate="%{x}<br>reported cached: %{y:,}<extra></extra>"))
    simulations = () if isinstance(obj, Analysis) else obj.simulations
    if not by_depth:
        index = {(s.run_id, s.step_id): i for i, (_, s) in enumerate(_steps(analysis))}
        for sim in simulations:
            y: list[Any] = [None] * len(x)
            for st in sim.steps:
                i = index.get((st.run_id, st.step_id))
                if i is not None:
                    y[i] = st.predicted_cached_tokens
            fig.add_trace(go.Scatter(name=f"{sim.provider} (simulated)", x=x, y=y, mode="markers",
                                     marker=dict(color=SCENARIO_COLORS.get(sim.provider, "#495057"),
                                                 symbol="diamond", size=9),
                                     hovertemplate="%{x}<br>" + sim.provider
                                     + " predicted: %{y:,}<extra></extra>"))
    fig.update_layout(barmode="group", xaxis=dict(type="category"))
    return fig


def scenario_costs(data: "ReportData") -> "go.Figure":
    """Total cost under each caching scenario (bars), with what each saves against no caching."""
    import plotly.graph_objects as go

    labels: list[str] = []
    values: list[float] = []
    colors: list[str] = []
    if data.costs is not None and data.costs.no_cache_usd is not None:
        labels.append("no caching")
        values.append(data.costs.no_cache_usd)
        colors.append(COLORS["no_cache"])
        if data.costs.actual_usd is not None:
            labels.append("actual (recorded)")
            values.append(data.costs.actual_usd)
            colors.append(COLORS["actual"])
    for sim in data.simulations:
        if sim.cost_usd is not None:
            labels.append(f"{sim.provider} rules" + (" (what-if)" if sim.what_if_steps else ""))
            values.append(sim.cost_usd)
            colors.append(SCENARIO_COLORS.get(sim.provider, "#495057"))
    if data.costs is not None and data.costs.ideal_usd is not None:
        labels.append("ideal prefix cache")
        values.append(data.costs.ideal_usd)
        colors.append(COLORS["ideal"])
    fig = _figure("Cost under each caching scenario", "", "USD")
    fig.add_trace(go.Bar(x=labels, y=values, marker_color=colors, showlegend=False,
                         hovertemplate="%{x}: $%{y:,.4f}<extra></extra>"))
    return fig


def all_figures(data: "ReportData") -> dict[str, "go.Figure"]:
    """Every figure of the HTML report, by section id."""
    figs = {"tokens": tokens_per_step(data), "cumulative": cumulative_cost(data)}
    if data.costs is not None or data.simulations:
        figs["scenarios"] = scenario_costs(data)
    figs["matrix"] = reuse_heatmap(data)
    figs["cached"] = cached_vs_ideal(data)
    return figs
