"""A static, self-contained HTML report: the table, the plots and highlighted samples.

One file with no network needs (plots inlined as base64 PNG, CSS and a few lines of JavaScript
inline), so it can be mailed or attached to a paper's supplement. Samples are filtered in the
page by run, step, behaviour and correctness; a link can preset them: ``report.html#step=5&b=backtracking``.
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass
from pathlib import Path

from rlsp.analysis.behaviours import BehaviourProfile, Span
from rlsp.analysis.rollout_schema import LoadedRun
from rlsp.analysis.step_table import StepRow

COLOURS = ("#ffd166", "#8ecae6", "#b5e48c", "#f4acb7", "#cdb4db", "#ffb703", "#90e0ef", "#e9c46a")


@dataclass
class RunView:
    """One run as the report shows it."""

    name: str
    run: LoadedRun
    profiles: list[BehaviourProfile]
    rows: list[StepRow]


def write_report(views: list[RunView], behaviours: tuple[str, ...], plots: list[Path], path: Path,
                 max_samples: int = 400) -> Path:
    colour = {b: COLOURS[i % len(COLOURS)] for i, b in enumerate(behaviours)}
    title = " vs ".join(v.name for v in views)
    style = "".join(f".b-{b}{{background:{c}}}" for b, c in colour.items())
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>rlsp inspect: {html.escape(title)}</title>",
             f"<style>{_CSS}{style}</style></head><body>", f"<h1>rlsp inspect: {html.escape(title)}</h1>"]
    for v in views:
        parts.append(f"<p class='meta'><b>{html.escape(v.name)}</b>: {html.escape(v.run.source)} "
                     f"({v.run.format}, {len(v.run.samples)} samples, {len(v.rows)} step rows, "
                     f"labelled by {html.escape(v.profiles[0].labeller if v.profiles else '-')})</p>")
        parts += [f"<p class='note'>{html.escape(n)}</p>" for n in v.run.notes]
    parts.append("<p class='legend'>" + " ".join(f"<span class='b-{b}'>{b}</span>" for b in behaviours) + "</p>")
    parts.append(_table(views, behaviours))
    for plot in plots:
        data = base64.b64encode(plot.read_bytes()).decode()
        parts.append(f"<img alt='{html.escape(plot.stem)}' src='data:image/png;base64,{data}'>")
    parts.append(_filters(views, behaviours))
    parts.append("<div id='samples'>")
    for v in views:
        for i in _chosen(v, max_samples):
            parts.append(_card(v, i))
    parts.append(f"</div><p id='count'></p><script>{_JS}</script></body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def highlight(text: str, spans: list[Span]) -> str:
    """The text, HTML-escaped, each labelled sentence in a <mark> with one class per behaviour."""
    by_range: dict[tuple[int, int], list[Span]] = {}
    for span in spans:
        by_range.setdefault((span.start, span.end), []).append(span)
    out, cursor = [], 0
    for (start, end), group in sorted(by_range.items()):
        if start < cursor:  # overlapping ranges from a custom labeller: keep the first
            continue
        names = [s.behaviour for s in group]
        tip = "; ".join(f"{s.behaviour}: {s.marker}" for s in group)
        out.append(html.escape(text[cursor:start]))
        out.append(f"<mark class='b-{names[0]}' title='{html.escape(tip, quote=True)}' "
                   f"data-b='{' '.join(names)}'>{html.escape(text[start:end])}</mark>")
        cursor = end
    out.append(html.escape(text[cursor:]))
    return "".join(out)


def _chosen(view: RunView, max_samples: int) -> list[int]:
    """All samples if few; else an even share per step, those with the most labelled sentences first."""
    n = len(view.run.samples)
    if n <= max_samples:
        return list(range(n))
    by_step: dict = {}
    for i, s in enumerate(view.run.samples):
        by_step.setdefault(s.step, []).append(i)
    per_step = max(1, max_samples // len(by_step))
    chosen = []
    for idx in by_step.values():
        chosen += sorted(idx, key=lambda i: -len(view.profiles[i].spans))[:per_step]
    return sorted(chosen)


def _table(views: list[RunView], behaviours) -> str:
    head = (["run"] if len(views) > 1 else []) + ["step", "samples", "length", "accuracy"]
    head += [f"{b} share" for b in behaviours] + [f"{b} /1k" for b in behaviours]
    head += ["acc. with backtracking", "acc. without"] if "backtracking" in behaviours else []
    channels = sorted({c for v in views for r in v.rows for c in r.rewards})
    head += [f"reward {c}" for c in channels]
    lines = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for v in views:
        for r in v.rows:
            cells = ([v.name] if len(views) > 1 else []) + ["-" if r.step is None else r.step, r.samples,
                                                             _fmt(r.length_mean, 1), _fmt(r.accuracy)]
            cells += [_fmt(r.share[b]) for b in behaviours] + [_fmt(r.per_1k[b], 2) for b in behaviours]
            if "backtracking" in behaviours:
                cells += [_fmt(r.accuracy_with["backtracking"]), _fmt(r.accuracy_without["backtracking"])]
            cells += [_fmt(r.rewards.get(c)) for c in channels]
            lines.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    return "\n".join(lines) + "</table>"


def _filters(views: list[RunView], behaviours) -> str:
    steps = sorted({s.step for v in views for s in v.run.samples if s.step is not None})
    runs = f"run <select id='f-run'><option value=''>all</option>{_options([v.name for v in views])}</select> " \
        if len(views) > 1 else "<select id='f-run' hidden><option value=''></option></select>"
    return (f"<div class='filters'>{runs}step "
            f"<select id='f-step'><option value=''>all</option>{_options(steps)}</select> "
            f"behaviour <select id='f-b'><option value=''>any or none</option>{_options(behaviours)}"
            f"<option value='-'>none of them</option></select> correct <select id='f-c'><option value=''>all"
            f"</option><option value='1'>correct</option><option value='0'>wrong</option></select></div>")


def _options(values) -> str:
    return "".join(f"<option value='{html.escape(str(x))}'>{html.escape(str(x))}</option>" for x in values)


def _card(view: RunView, i: int) -> str:
    s, p = view.run.samples[i], view.profiles[i]
    present = " ".join(b for b, n in p.counts.items() if n)
    facts = [f"step {s.step}" if s.step is not None else "", f"group {s.group}" if s.group is not None else "",
             "correct" if s.correct else ("wrong" if s.correct is False else ""),
             f"{p.tokens} tokens" + (" (estimated)" if p.tokens_estimated else ""),
             f"finish: {s.finish_reason}" if s.finish_reason else "",
             ", ".join(f"{k} {v:.3g}" for k, v in s.rewards.items() if isinstance(v, (int, float))),
             ", ".join(f"{b} {n}" for b, n in p.counts.items() if n)]
    system = f"<div class='system'>system: {html.escape(s.system_prompt)}</div>" if s.system_prompt else ""
    return (f"<div class='card' data-run='{html.escape(view.name)}' data-step='{'' if s.step is None else s.step}' "
            f"data-b='{present}' data-c='{'' if s.correct is None else int(s.correct)}'>"
            f"<div class='facts'>{html.escape(' · '.join(f for f in facts if f))}</div>{system}"
            f"<details><summary>prompt</summary><pre>{html.escape(s.prompt)}</pre></details>"
            f"<pre>{highlight(s.completion, p.spans)}</pre></div>")


def _fmt(value, digits: int = 3) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.{digits}f}"


_CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;max-width:1400px}table{border-collapse:collapse;
font-size:12px}th,td{border:1px solid #ccc;padding:2px 6px;text-align:right}img{max-width:100%;display:block;
margin:1em 0}.card{border:1px solid #ddd;border-radius:6px;padding:.5em 1em;margin:.8em 0}.facts{color:#555;
font-size:12px}pre{white-space:pre-wrap;font-size:13px}mark{border-radius:3px}.note{color:#a40}.legend span{
padding:1px 6px;margin-right:4px;border-radius:3px}.filters{position:sticky;top:0;background:#fff;padding:.5em 0;
border-bottom:1px solid #ccc}.system{font-size:12px;color:#264}"""

_JS = """const f=id=>document.getElementById(id);function apply(){let shown=0;for(const c of
document.querySelectorAll('.card')){const b=f('f-b').value,bs=c.dataset.b.split(' ').filter(x=>x);
const ok=(!f('f-run').value||c.dataset.run===f('f-run').value)&&(!f('f-step').value||c.dataset.step===f('f-step')
.value)&&(!b||(b==='-'?bs.length===0:bs.includes(b)))&&(!f('f-c').value||c.dataset.c===f('f-c').value);
c.style.display=ok?'':'none';shown+=ok}f('count').textContent=shown+' samples shown'}
const keys={run:'f-run',step:'f-step',b:'f-b',c:'f-c'};for(const kv of location.hash.slice(1).split('&')){
const [k,v]=kv.split('=');if(keys[k])f(keys[k]).value=decodeURIComponent(v||'')}
for(const id of Object.values(keys))f(id).addEventListener('change',apply);apply();"""
