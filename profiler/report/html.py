"""The HTML report: one self-contained file that works offline.

`render_html(data, stream, cdn=False)` writes a page with plotly.js embedded from the installed plotly
package (or, with `cdn=True`, linked from cdn.plot.ly), the figures of `profiler.figures` as JSON, and
tables. Every piece of text that comes from a trace (run ids, step names, models, prompt excerpts in
the diagnosis) goes through `profiler.safe_text.html_text` (control characters shown escaped, then
HTML-escaped); the figure JSON escapes `<`, `>` and `&` as `\\u003c` etc., so neither `</script>`
nor `<!--` inside a prompt can end the script element it sits in.

The page reports its own health for tests and users: a script error is written into an element with
id `ctxprof-errors`, and once every chart is drawn `<body>` gets `data-charts-rendered="N"`.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import IO, Any

from profiler import __version__
from profiler.report.data import (
    SECTION_COSTS,
    SECTION_DIAGNOSIS,
    SECTION_SIMULATIONS,
    Finding,
    ReportData,
    step_label,
)
from profiler.reporters import fmt as _fmt
from profiler.safe_text import html_text, visible

# Per-step table rows in the page; the JSON report has them all.
MAX_TABLE_ROWS = 2000
MAX_FINDINGS = 500
PLOTLY_CDN = "https://cdn.plot.ly/plotly-{version}.min.js"

SECTIONS = (
    ("headline", "Summary"),
    ("tokens", "Tokens per step"),
    ("cumulative", "Cumulative cost"),
    ("scenarios", "Cache scenarios"),
    ("matrix", "Reuse matrix"),
    ("cached", "Reported vs ideal"),
    ("diagnosis", "Diagnosis"),
    ("steps", "Steps"),
)


def esc(value: Any) -> str:
    return "" if value is None else html_text(value)


def _visible_strings(obj: Any) -> Any:
    """`obj` (a figure as JSON-able data) with every string passed through `visible`: chart labels
    are trace names, and the browser would otherwise draw their control and bidi characters."""
    if isinstance(obj, str):
        return visible(obj)
    if isinstance(obj, dict):
        return {k: _visible_strings(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_visible_strings(v) for v in obj]
    return obj


def script_json(obj: Any) -> str:
    """JSON safe to place inside a <script> element: no `</`, `<!--` or `]]>` can appear."""
    import plotly.utils

    text = json.dumps(obj, cls=plotly.utils.PlotlyJSONEncoder, sort_keys=True)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


_CSS = """
:root { --fg:#212529; --muted:#6c757d; --line:#dee2e6; --bg:#f8f9fa; --accent:#1c7ed6; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--fg);
       background:#fff; }
header { padding:20px 32px 12px; border-bottom:1px solid var(--line); background:var(--bg); }
header h1 { margin:0 0 4px; font-size:22px; }
header p { margin:2px 0; color:var(--muted); }
nav { position:sticky; top:0; z-index:10; background:#fff; border-bottom:1px solid var(--line);
      padding:6px 32px; }
nav a { margin-right:14px; color:var(--accent); text-decoration:none; font-size:13px; }
main { padding:8px 32px 40px; max-width:1400px; }
section { margin:22px 0 8px; }
h2 { font-size:17px; margin:0 0 6px; }
.lead { color:var(--muted); margin:0 0 8px; max-width:900px; }
.cards { display:flex; flex-wrap:wrap; gap:12px; }
.card { border:1px solid var(--line); border-radius:8px; padding:10px 14px; min-width:190px;
        background:#fff; }
.card .v { font-size:22px; font-weight:600; }
.card .k { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.03em; }
.card .s { color:var(--muted); font-size:12px; }
.note { border-left:4px solid #fab005; background:#fff9db; padding:6px 10px; margin:6px 0;
        max-width:900px; }
.warn { border-left-color:#e8590c; background:#fff4e6; }
table { border-collapse:collapse; font-size:12.5px; margin:6px 0; }
th, td { border-bottom:1px solid var(--line); padding:3px 8px; text-align:left; vertical-align:top; }
th { background:var(--bg); position:sticky; top:0; }
td.n, th.n { text-align:right; font-variant-numeric:tabular-nums; }
code { font:12px ui-monospace,SFMono-Regular,Menlo,monospace; background:#f1f3f5; padding:0 3px;
       border-radius:3px; word-break:break-all; white-space:pre-wrap; }
.chart { width:100%; min-height:380px; }
.scroll { max-height:640px; overflow:auto; border:1px solid var(--line); }
#ctxprof-errors { color:#c92a2a; background:#fff5f5; border:1px solid #ffc9c9; padding:8px;
                  white-space:pre-wrap; }
"""

# Installed first, so an error anywhere later (plotly included) is shown and visible to tests.
_ERROR_HOOK = """
window.ctxprofErrors = [];
window.onerror = function (msg, src, line, col) {
  window.ctxprofErrors.push(String(msg) + " (" + src + ":" + line + ":" + col + ")");
  var show = function () {
    var el = document.getElementById("ctxprof-errors");
    if (!el) {
      el = document.createElement("pre");
      el.id = "ctxprof-errors";
      document.body.insertBefore(el, document.body.firstChild);
    }
    el.textContent = "Script error(s) in this report:\\n" + window.ctxprofErrors.join("\\n");
  };
  if (document.body) { show(); } else { document.addEventListener("DOMContentLoaded", show); }
  return false;
};
"""

_RENDER = """
(function () {
  var figures = JSON.parse(document.getElementById("ctxprof-figures").textContent);
  var ids = Object.keys(figures);
  if (typeof Plotly === "undefined") {
    ids.forEach(function (id) {
      document.getElementById("chart-" + id).textContent =
        "Charts need plotly.js, which did not load (offline with --cdn?).";
    });
    throw new Error("plotly.js did not load");
  }
  var config = {displaylogo: false, responsive: true};
  Promise.all(ids.map(function (id) {
    var f = figures[id];
    return Plotly.newPlot(document.getElementById("chart-" + id), f.data, f.layout, config);
  })).then(function () {
    document.body.setAttribute("data-charts-rendered", String(ids.length));
  }, function (err) { setTimeout(function () { throw err; }); });
})();
"""


def render_html(data: ReportData, stream: IO[str], *, cdn: bool = False) -> None:
    """Write the whole report page to `stream`."""
    from profiler.figures import all_figures

    figures = {}
    for key, fig in all_figures(data).items():
        fig.update_layout(title=None)  # the section heading names it
        figures[key] = _visible_strings(fig.to_plotly_json())
    w = stream.write
    w("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
    w("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n")
    w(f"<meta name=\"generator\" content=\"ctxprof {esc(__version__)}\">\n")
    w(f"<title>{esc(data.title)}</title>\n<style>{_CSS}</style>\n")
    w(f"<script>{_ERROR_HOOK}</script>\n")
    w(_plotly_script(cdn))
    w("</head>\n<body>\n")
    _header(data, w)
    w("<nav>" + "".join(f"<a href=\"#{sid}\">{esc(title)}</a>" for sid, title in SECTIONS) + "</nav>\n")
    w("<main>\n")
    _headline(data, w)
    _chart_section(w, "tokens", "Tokens per step",
                   "Each step's prompt split into the prefix an ideal prefix cache could skip, tokens "
                   "repeated elsewhere in earlier context (computed before, not reusable as a prefix), "
                   "and novel tokens; output tokens on top.", figures)
    _chart_section(w, "cumulative", "Cumulative cost against depth",
                   "Running total over steps (depth = position in the run, summed over runs): with no "
                   "caching, as recorded, and with ideal prefix reuse.", figures,
                   note=_note(data, SECTION_COSTS) if data.costs is None else None)
    _scenarios(data, w, figures)
    _matrix(data, w, figures)
    _chart_section(w, "cached", "Provider-reported cached tokens against the ideal",
                   "The ideal is the reusable prefix in the provider's tokens (provider_prefix_reused_tokens); "
                   "the gap is reuse that was available and not taken; a step whose reported cached "
                   "tokens exceed it is a finding named in the warnings. Diamonds: each provider's caching rules, simulated.",
                   figures, note=_cached_note(data))
    _diagnosis(data, w)
    _steps_table(data, w)
    w("</main>\n")
    w(f"<script type=\"application/json\" id=\"ctxprof-figures\">{script_json(figures)}</script>\n")
    w(f"<script>{_RENDER}</script>\n</body>\n</html>\n")


def _plotly_script(cdn: bool) -> str:
    import plotly
    from plotly.offline import get_plotlyjs, get_plotlyjs_version

    if cdn:
        url = PLOTLY_CDN.format(version=get_plotlyjs_version())
        return f"<script src=\"{esc(url)}\" charset=\"utf-8\"></script>\n"
    js = get_plotlyjs()
    # The bundle never contains "</script" (plotly ships it for inline use), but make sure.
    if "</script" in js.lower():
        raise RuntimeError(f"plotly {plotly.__version__}'s bundle cannot be inlined")
    return f"<script>/* plotly.js {get_plotlyjs_version()} */\n{js}</script>\n"


def _header(data: ReportData, w: Any) -> None:
    a = data.analysis
    traces = ", ".join(t for t in a.traces if t) or "(in memory)"
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    w(f"<header><h1>{esc(data.title)}</h1>")
    w(f"<p>Traces: {esc(traces)}</p>")
    w(f"<p>Scope <b>{esc(a.options.scope)}</b>, block size {a.options.block_size}, repeated runs of "
      f"at least {a.options.min_repeat} tokens &middot; ctxprof {esc(__version__)} &middot; {when}</p>"
      "</header>\n")


def _card(key: str, value: str, sub: str = "") -> str:
    return (f"<div class=\"card\"><div class=\"k\">{esc(key)}</div><div class=\"v\">{esc(value)}</div>"
            f"<div class=\"s\">{esc(sub)}</div></div>")


def _note(data: ReportData, section: str) -> str | None:
    return data.unavailable.get(section)


def _headline(data: ReportData, w: Any) -> None:
    h = data.headline()
    w("<section id=\"headline\"><h2>Summary</h2><div class=\"cards\">")
    w(_card("total tokens", _fmt.tokens(h["total_tokens"]),
            f"{_fmt.tokens(h['input_tokens'])} input + {_fmt.tokens(h['output_tokens'])} output, "
            f"{h['runs']} run(s), {h['steps']} step(s)"
            + (f"; {_fmt.tokens(h['provider_input_tokens'])} input in the provider's tokens"
               if h["unit"] != "ctxprof" and h["provider_input_tokens"] != h["input_tokens"] else "")))
    w(_card("redundant share of input", _fmt.pct(h["redundant_share"]),
            f"{_fmt.tokens(h['redundant_tokens'])} tokens: {_fmt.tokens(h['prefix_reused_tokens'])} "
            f"prefix, {_fmt.tokens(h['repeated_tokens'])} repeated"))
    if data.costs is not None:
        w(_card("redundant context, full price", _fmt.usd(h["cost_redundant_usd"]),
                f"its tokens at the input price; {_fmt.usd(h['cost_actual_usd'])} spent in all"))
        w(_card("saving, ideal prefix cache", _fmt.usd(h["ideal_saving_usd"]),
                f"vs {_fmt.usd(data.costs.no_cache_usd)} with no caching"))
    else:
        w(_card("redundant context, full price", "-", "prices not available"))
    for sim in data.simulations:
        w(_card(f"saving, {sim.label}", _fmt.usd(sim.saving_usd),
                f"{_fmt.pct(sim.predicted_cached_share)} of input cached (simulated)"))
    if h["reported_cached_tokens"] is not None:
        w(_card("provider-reported cached", _fmt.tokens(h["reported_cached_tokens"]),
                f"ideal {_fmt.tokens(h['ideal_prefix_tokens'])} ({h['unit']} tokens)"))
    w("</div>")
    for section, label in ((SECTION_COSTS, "Costs"), (SECTION_SIMULATIONS, "Cache scenarios"),
                           (SECTION_DIAGNOSIS, "Diagnosis")):
        if section in data.unavailable:
            w(f"<p class=\"note\">{esc(label)}: {esc(data.unavailable[section])}</p>")
    for warning in data.warnings:
        w(f"<p class=\"note warn\">Warning: {esc(warning)}</p>")
    w("</section>\n")


def _chart_section(w: Any, sid: str, title: str, lead: str, figures: dict[str, Any],
                   note: str | None = None, extra: str = "") -> None:
    w(f"<section id=\"{sid}\"><h2>{esc(title)}</h2><p class=\"lead\">{esc(lead)}</p>")
    if note:
        w(f"<p class=\"note\">{esc(note)}</p>")
    if sid in figures:
        w(f"<div class=\"chart\" id=\"chart-{sid}\"></div>")
    w(extra)
    w("</section>\n")


def _cached_note(data: ReportData) -> str | None:
    if data.analysis.totals.reported_cached_tokens is None:
        return "No step of these traces carries provider-reported cache figures."
    return None


def _scenarios(data: ReportData, w: Any, figures: dict[str, Any]) -> None:
    rows = []
    if data.costs is not None:
        c = data.costs
        rows.append(("no caching", "-", _fmt.usd(c.no_cache_usd), "-"))
        rows.append(("actual (as recorded)", _fmt.tokens(data.analysis.totals.reported_cached_tokens),
                     _fmt.usd(c.actual_usd),
                     _fmt.usd(None if c.no_cache_usd is None or c.actual_usd is None
                              else c.no_cache_usd - c.actual_usd)))
    for s in data.simulations:
        rows.append((s.label, _fmt.tokens(s.predicted_cached_tokens),
                     _fmt.usd(s.cost_usd), _fmt.usd(s.saving_usd)))
    if data.costs is not None:
        rows.append(("ideal prefix cache", _fmt.tokens(data.analysis.totals.provider_prefix_reused_tokens),
                     _fmt.usd(data.costs.ideal_usd), _fmt.usd(data.costs.ideal_saving_usd)))
    table = ""
    if rows:
        table = ("<table><tr><th>scenario</th><th class=\"n\">cached tokens</th><th class=\"n\">cost"
                 "</th><th class=\"n\">saving vs no caching</th></tr>"
                 + "".join(f"<tr><td>{esc(a)}</td><td class=\"n\">{esc(b)}</td><td class=\"n\">{esc(c)}"
                           f"</td><td class=\"n\">{esc(d)}</td></tr>" for a, b, c, d in rows)
                 + "</table>")
    notes = [n for n in (_note(data, SECTION_SIMULATIONS), _note(data, SECTION_COSTS)) if n]
    if not rows and not notes:
        notes.append("No prices and no cache scenarios in this report.")
    _chart_section(w, "scenarios", "Cost under each cache scenario",
                   "What these traces cost with no caching, as recorded, under each provider's caching "
                   "rules replayed on the trace's timestamps, and with an ideal prefix cache.",
                   figures, note="; ".join(notes) or None, extra=table)


def _matrix(data: ReportData, w: Any, figures: dict[str, Any]) -> None:
    m = data.matrix
    notes = []
    if m is not None and m.omitted_steps:
        notes.append(f"Showing the first {len(m.keys)} steps; {m.omitted_steps} more are left out "
                     "(the JSON report has every step's sources).")
    if m is not None and m.outside_tokens:
        notes.append(f"{m.outside_tokens:,} reused tokens came from steps not shown.")
    if m is None:
        notes.append("No steps.")
    elif not any(any(row) for row in m.tokens):
        notes.append("No step shown reuses context of another step shown.")
    _chart_section(w, "matrix", "Reuse matrix",
                   "Row: a step; column: the earlier step whose processed context (prompt and output) "
                   "that step's reused tokens came from; colour: tokens (prefix + repeated).",
                   figures, note=" ".join(notes) or None)


def _finding_rows(findings: tuple[Finding, ...]) -> str:
    out = []
    for f in findings[:MAX_FINDINGS]:
        where = f"{f.run_id}:{f.step_index if f.step_index is not None else f.step_id}"
        if f.occurrences > 1:
            where += f" (+{f.occurrences - 1} more)"
        if f.where:
            where += f", {f.where}"
        change = (f"<code>{esc(_fmt.shorten(f.before_text, 240))}</code> &rarr; "
                  f"<code>{esc(_fmt.shorten(f.after_text, 240))}</code>")
        out.append(f"<tr><td>{esc(where)}</td><td>{esc(f.kind)}</td>"
                   f"<td class=\"n\">{esc(_fmt.tokens(f.token_position))}</td><td>{change}</td>"
                   f"<td class=\"n\">{esc(_fmt.tokens(f.tokens_lost))}</td>"
                   f"<td class=\"n\">{esc(_fmt.usd(f.usd_lost))}</td>"
                   f"<td>{esc(f.fix)}{'<br><small>' + esc(f.detail) + '</small>' if f.detail else ''}"
                   "</td></tr>")
    return "".join(out)


def _diagnosis(data: ReportData, w: Any) -> None:
    w("<section id=\"diagnosis\"><h2>Diagnosis</h2><p class=\"lead\">Where prefix reuse breaks "
      "although the content repeats later: the step, the token position, the differing text, what it "
      "costs, and the fix.</p>")
    if data.diagnosis is None:
        w(f"<p class=\"note\">{esc(_note(data, SECTION_DIAGNOSIS) or 'not available')}</p>")
    elif not data.diagnosis:
        w("<p>No reuse breaks found.</p>")
    else:
        if len(data.diagnosis) > MAX_FINDINGS:
            w(f"<p class=\"note\">Showing {MAX_FINDINGS} of {len(data.diagnosis)} findings.</p>")
        w("<div class=\"scroll\"><table><tr><th>step</th><th>kind</th><th class=\"n\">token</th>"
          "<th>before &rarr; after</th><th class=\"n\">tokens lost</th><th class=\"n\">USD lost</th>"
          "<th>fix</th></tr>" + _finding_rows(data.diagnosis) + "</table></div>")
    w("</section>\n")


def _steps_table(data: ReportData, w: Any) -> None:
    a = data.analysis
    many = len(a.runs) > 1
    priced = data.costs is not None
    head = ["step", "model", "input", "prefix reused", "repeated", "novel", "output",
            "reported cached", "redundancy"] + (["cost", "redundant $"] if priced else [])
    w("<section id=\"steps\"><h2>Steps</h2>")
    total = a.totals.steps
    if total > MAX_TABLE_ROWS:
        w(f"<p class=\"note\">Showing the first {MAX_TABLE_ROWS} of {total} steps (the JSON and "
          "Markdown reports, and `ctxprof analyze`, list them all).</p>")
    numeric = ' class="n"'
    w("<div class=\"scroll\"><table><tr>" + "".join(
        f"<th{'' if i < 2 else numeric}>{esc(h)}</th>" for i, h in enumerate(head)) + "</tr>")
    shown = 0
    for run in a.runs:
        for s in run.steps:
            if shown >= MAX_TABLE_ROWS:
                break
            shown += 1
            cells = [step_label(run, s, many, limit=72), s.model or "-"]
            nums = [_fmt.tokens(s.input_tokens), _fmt.tokens(s.prefix_reused_tokens),
                    _fmt.tokens(s.repeated_tokens), _fmt.tokens(s.novel_tokens),
                    _fmt.tokens(s.output_tokens), _fmt.tokens(s.reported_cached_tokens),
                    _fmt.pct(s.redundancy_ratio)]
            if priced:
                nums += [_fmt.usd(s.cost_actual_usd), _fmt.usd(s.cost_redundant_usd)]
            w("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells)
              + "".join(f"<td class=\"n\">{esc(c)}</td>" for c in nums) + "</tr>")
    t = a.totals
    tot = [_fmt.tokens(t.input_tokens), _fmt.tokens(t.prefix_reused_tokens), _fmt.tokens(t.repeated_tokens),
           _fmt.tokens(t.novel_tokens), _fmt.tokens(t.output_tokens), _fmt.tokens(t.reported_cached_tokens),
           _fmt.pct(t.redundancy_ratio)]
    if priced:
        tot += [_fmt.usd(t.cost_actual_usd), _fmt.usd(t.cost_redundant_usd)]
    w(f"<tr><th>total</th><th>{t.steps} steps</th>" + "".join(f"<th class=\"n\">{esc(c)}</th>" for c in tot)
      + "</tr></table></div></section>\n")


def render_summary_fragment(data: ReportData) -> str:
    """A compact HTML fragment (no scripts): the headline figures and notes, for Jupyter."""
    import io

    buf = io.StringIO()
    # Scoped to this fragment: Jupyter pages have their own styles.
    buf.write("<style>.ctxprof-summary .cards{display:flex;flex-wrap:wrap;gap:8px}"
              ".ctxprof-summary .card{border:1px solid #dee2e6;border-radius:6px;padding:6px 10px}"
              ".ctxprof-summary .v{font-size:18px;font-weight:600}"
              ".ctxprof-summary .k,.ctxprof-summary .s{color:#6c757d;font-size:11px}"
              ".ctxprof-summary .note{border-left:3px solid #fab005;padding:2px 8px}</style>")
    buf.write(f"<div class=\"ctxprof-summary\"><b>{esc(data.title)}</b>")
    _headline(data, buf.write)
    if data.diagnosis:
        buf.write(f"<p>{len(data.diagnosis)} diagnosis finding(s):</p><table><tr><th>step</th><th>kind"
                  "</th><th>token</th><th>before &rarr; after</th><th>tokens lost</th><th>USD lost</th>"
                  "<th>fix</th></tr>" + _finding_rows(data.diagnosis[:20]) + "</table>")
    buf.write("</div>")
    return buf.getvalue()
