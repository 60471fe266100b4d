"""A self-contained HTML page of an answer: ``report.html`` that works offline.

The page shows the question and answer, every sampled frame with its true time (a strip),
a timeline with a marker at every claim, the reasoning with every claim and bare time as a
clickable tag, a viewer that shows the clicked claim's frame large with its boxes drawn as
overlays, the parser's problems and the timings. Everything is inline: frames are JPEG data
URLs, CSS and JavaScript are in the page, and its Content-Security-Policy allows no network
request and runs only the page's own script (pinned by hash).

Spaces: a box overlay is placed in percent of the frame, ``x / source_w · 100`` for
``boxes_source``; the frame's picture fills the overlays' container exactly, so a box stays
right at any display size.

Model text is untrusted: every piece of it is HTML-escaped where the page is written, the
data the script reads is JSON inside ``<script type="application/json">`` with ``<``, ``>``
and ``&`` escaped, and the script writes model text only through ``textContent``.

Hooks for tests: ``.evidence-tag[data-index]`` (claims), ``.time-tag[data-time]`` (bare
times), ``#frames .frame[data-index][data-time] img`` (the strip), ``#viewer img``,
``#viewer .box`` (one per box), ``#viewer [data-time]`` (the time of the frame shown),
``#problems .problem[data-kind]`` and ``#timings tr[data-stage]``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import re
from pathlib import Path
from typing import Any

from PIL import Image

from o3video.answer import Answer
from o3video.viz.render import evidence_frame_index, object_color, text_color, time_caption

_TAG = re.compile(r"</?(?:think|answer|obj|box|t)>")
JPEG_QUALITY = 90

CSS = """
:root { color-scheme: light dark; --bg: #fafafa; --fg: #1b1b1b; --dim: #777; --card: #fff; }
@media (prefers-color-scheme: dark) { :root { --bg: #141414; --fg: #e6e6e6; --card: #1e1e1e; } }
body { margin: 0; font: 15px/1.5 system-ui, sans-serif; background: var(--bg); color: var(--fg); }
header, main { max-width: 1280px; margin: 0 auto; padding: 12px 20px; }
.top { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 0 12px;
  align-items: start; }
@media (max-width: 860px) { .top { grid-template-columns: minmax(0, 1fr); } }
#viewer { position: sticky; top: 0; z-index: 1; }
h1 { font-size: 1.2em; margin: .2em 0; }
h2 { font-size: 1em; margin: 1em 0 .4em; color: var(--dim); }
#answer { font-size: 1.15em; font-weight: 600; }
.meta { color: var(--dim); font-size: .85em; }
section { background: var(--card); border-radius: 8px; padding: 8px 14px; margin: 10px 0; }
#viewer .stage { position: relative; line-height: 0;
  width: min(100%, calc(60vh * var(--aspect))); }
#viewer img { display: block; width: 100%; height: auto; background: #333; }
#viewer .box { position: absolute; box-sizing: border-box; border: 2px solid var(--c); }
#viewer .box .label { position: absolute; left: -2px; bottom: 100%; line-height: 1.3;
  font-size: 13px; padding: 0 4px; background: var(--c); color: var(--fg-c); white-space: nowrap; }
#viewer .caption { margin: .4em 0; }
#viewer .caption .name { font-weight: 600; }
.trace { white-space: pre-wrap; word-wrap: break-word; }
.markup { color: var(--dim); font-size: .85em; }
.evidence-tag, .time-tag { font: inherit; border: 0; border-radius: 4px; padding: 0 5px;
  cursor: pointer; background: var(--c, #666); color: var(--fg-c, #fff); }
.time-tag { --c: #555; }
.evidence-tag .t { opacity: .75; font-size: .85em; }
.active { outline: 3px solid var(--fg); outline-offset: 1px; }
#timeline { position: relative; height: 16px; background: #5557; border-radius: 3px; }
#timeline .marker { position: absolute; top: 0; width: 6px; height: 16px; margin-left: -3px;
  border: 0; padding: 0; background: var(--c); cursor: pointer; }
#timeline .tick { position: absolute; bottom: 0; width: 1px; height: 5px; background: var(--dim); }
.strip { display: flex; flex-wrap: wrap; gap: 6px; }
.frame { margin: 0; cursor: pointer; flex: 0 0 auto; text-align: center; font-size: .8em; }
.frame img { display: block; height: 84px; width: auto; }
.frame.has-evidence figcaption { font-weight: 700; }
.frame.current img { outline: 3px solid var(--fg); outline-offset: 1px; }
table { border-collapse: collapse; } td, th { padding: 2px 12px 2px 0; text-align: left; }
.problem code { font-weight: 600; }
"""

SCRIPT = """
(() => {
  const data = JSON.parse(document.getElementById("o3-data").textContent);
  const viewer = document.getElementById("viewer");
  const stage = viewer.querySelector(".stage");
  const img = stage.querySelector("img");
  const nameEl = viewer.querySelector(".name");
  const timeEl = viewer.querySelector(".time");
  const strip = Array.from(document.querySelectorAll("#frames .frame img"));
  function reset() {
    stage.querySelectorAll(".box").forEach((b) => b.remove());
    document.querySelectorAll(".active").forEach((e) => e.classList.remove("active"));
  }
  function showFrame(k, caption) {
    document.querySelectorAll("#frames .current").forEach((e) => e.classList.remove("current"));
    if (k !== null && strip[k]) strip[k].parentElement.classList.add("current");
    if (k === null || k === undefined || !strip[k]) {
      img.removeAttribute("src");
      img.dataset.frameIndex = "";
      timeEl.dataset.time = "";
    } else {
      img.src = strip[k].src;
      img.dataset.frameIndex = String(k);
      timeEl.dataset.time = String(data.frame_times_s[k]);
    }
    timeEl.textContent = caption;
  }
  function showEvidence(i) {
    const ev = data.evidence[i];
    reset();
    viewer.dataset.index = String(i);
    showFrame(ev.frame, ev.caption);
    nameEl.textContent = ev.name;
    for (const b of ev.boxes_pct) {
      const box = document.createElement("div");
      box.className = "box";
      box.style.setProperty("--c", ev.color);
      box.style.setProperty("--fg-c", ev.text_color);
      box.style.left = b[0] + "%";
      box.style.top = b[1] + "%";
      box.style.width = b[2] + "%";
      box.style.height = b[3] + "%";
      const label = document.createElement("span");
      label.className = "label";
      label.textContent = ev.name;
      box.appendChild(label);
      stage.appendChild(box);
    }
    document.querySelectorAll('[data-index="' + i + '"]:is(.evidence-tag, .marker)')
      .forEach((e) => e.classList.add("active"));
  }
  function showPlain(k, caption, source) {
    reset();
    viewer.dataset.index = "";
    nameEl.textContent = "";
    showFrame(k, caption);
    if (source) source.classList.add("active");
  }
  document.addEventListener("click", (e) => {
    const tag = e.target.closest(".evidence-tag, .marker");
    if (tag) return showEvidence(Number(tag.dataset.index));
    const t = e.target.closest(".time-tag");
    if (t) {
      const k = t.dataset.frame === "" ? null : Number(t.dataset.frame);
      return showPlain(k, t.dataset.caption, t);
    }
    const f = e.target.closest(".frame");
    if (f) showPlain(Number(f.dataset.index), f.dataset.caption, f);
  });
  if (data.evidence.length) showEvidence(0);
  else if (strip.length) showPlain(0, "t = " + data.frame_times_s[0].toFixed(2) + " s", null);
})();
"""

_SCRIPT_HASH = base64.b64encode(hashlib.sha256(SCRIPT.encode("utf-8")).digest()).decode("ascii")
CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    f"script-src 'sha256-{_SCRIPT_HASH}'; base-uri 'none'; form-action 'none'"
)


def _e(value: object) -> str:
    """HTML-escaped text, quotes included (safe in element content and attribute values)."""
    return html.escape(str(value), quote=True)


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _data_url(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=JPEG_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _script_json(value: Any) -> str:
    """JSON that cannot end its ``<script>`` element or open markup inside it."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    for char, code in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, code)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _plain(segment: str) -> str:
    """Model text between tags: escaped, its markup tags dimmed."""
    out, pos = [], 0
    for m in _TAG.finditer(segment):
        out += [_e(segment[pos : m.start()]), f'<span class="markup">{_e(m.group())}</span>']
        pos = m.end()
    out.append(_e(segment[pos:]))
    return "".join(out)


def evidence_data(answer: Answer) -> list[dict[str, Any]]:
    """What the page's script needs per claim: frame, caption, colours, boxes in percent."""
    sw, sh = answer.clip.source_wh
    rows = []
    for ev in answer.evidence:
        color = object_color(ev.name)
        rows.append(
            {
                "name": ev.name,
                "t_s": ev.t_s,
                "frame": evidence_frame_index(answer, ev),
                "caption": time_caption(answer, ev),
                "color": _hex(color),
                "text_color": _hex(text_color(color)),
                "boxes_source": [list(b) for b in ev.boxes_source],
                "boxes_pct": [
                    [100 * x1 / sw, 100 * y1 / sh, 100 * (x2 - x1) / sw, 100 * (y2 - y1) / sh]
                    for x1, y1, x2, y2 in ev.boxes_source
                ],
            }
        )
    return rows


def _reasoning(answer: Answer) -> str:
    """The whole model text, escaped, with claims and bare times as clickable tags."""
    clip = answer.clip
    marks: list[tuple[int, int, str]] = []
    for i, ev in enumerate(answer.evidence):
        color = object_color(ev.name)
        when = "" if ev.t_s is None else f' <span class="t">{_e(f"{ev.t_s:g}")} s</span>'
        marks.append(
            (
                ev.span[0],
                ev.span[1],
                f'<button type="button" class="evidence-tag" data-index="{i}" '
                f'style="--c:{_hex(color)};--fg-c:{_hex(text_color(color))}" '
                f'title="{_e(answer.text[ev.span[0] : ev.span[1]])}">'
                f"{_e(ev.name or '?')}{when}</button>",
            )
        )
    for t, span in zip(answer.trace.times_s, answer.trace.time_spans, strict=True):
        k = clip.nearest_frame(t) if clip.num_frames else None
        caption = "no frame" if k is None else f"claimed {t:g} s · frame {clip.times_s[k]:.2f} s"
        marks.append(
            (
                span[0],
                span[1],
                f'<button type="button" class="time-tag" data-time="{t!r}" '
                f'data-frame="{"" if k is None else k}" data-caption="{_e(caption)}" '
                f'title="{_e(answer.text[span[0] : span[1]])}">{_e(f"{t:g}")} s</button>',
            )
        )
    out, pos = [], 0
    for start, end, markup in sorted(marks):
        if start < pos:
            continue
        out += [_plain(answer.text[pos:start]), markup]
        pos = end
    out.append(_plain(answer.text[pos:]))
    return "".join(out)


def _frames(answer: Answer) -> str:
    clip = answer.clip
    on_frames = {evidence_frame_index(answer, ev) for ev in answer.evidence}
    figures = []
    for k in range(clip.num_frames):
        t = clip.times_s[k]
        cls = "frame has-evidence" if k in on_frames else "frame"
        figures.append(
            f'<figure class="{cls}" data-index="{k}" data-time="{t!r}" '
            f'data-caption="t = {t:.2f} s"><img src="{_data_url(Image.fromarray(clip.frames[k]))}" '
            f'width="{clip.frame_wh[0]}" height="{clip.frame_wh[1]}" alt="frame {k} at {t:.2f} s">'
            f"<figcaption>{t:.2f} s</figcaption></figure>"
        )
    return "".join(figures) or "<p>No frames.</p>"


def _timeline(answer: Answer) -> str:
    clip = answer.clip
    span_s = max([clip.duration_s, *clip.times_s, 1e-6])

    def pct(t: float) -> str:
        return f"{100 * min(max(t / span_s, 0.0), 1.0):.3f}%"

    parts = [f'<span class="tick" style="left:{pct(t)}"></span>' for t in clip.times_s]
    for i, ev in enumerate(answer.evidence):
        t = ev.t_s if ev.t_s is not None else ev.frame_t_s
        if t is not None:
            parts.append(
                f'<button type="button" class="marker" data-index="{i}" '
                f'style="left:{pct(t)};--c:{_hex(object_color(ev.name))}" '
                f'title="{_e(ev.name)} at {t:g} s"></button>'
            )
    return "".join(parts)


def _problems(answer: Answer) -> str:
    items = []
    for p in answer.trace.problems:
        snippet = answer.text[p.span[0] : p.span[1]]
        snippet = snippet if len(snippet) <= 80 else snippet[:80] + "…"
        items.append(
            f'<li class="problem" data-kind="{_e(p.kind)}" data-start="{p.span[0]}" '
            f'data-end="{p.span[1]}"><code>{_e(p.kind)}</code> {_e(p.message)} '
            f'<span class="markup">[{p.span[0]}:{p.span[1]}] {_e(snippet)}</span></li>'
        )
    return f"<ol>{''.join(items)}</ol>" if items else "<p>None: the trace is well formed.</p>"


def _timings(answer: Answer) -> str:
    rows = [
        f'<tr data-stage="{_e(k)}"><td>{_e(k)}</td><td>{v:.3f} s</td></tr>'
        for k, v in answer.timings.items()
    ]
    return f"<table>{''.join(rows)}</table>" if rows else "<p>No timings recorded.</p>"


def render_report(answer: Answer) -> str:
    """The report page as one HTML string (see the module docstring)."""
    clip = answer.clip
    data = {
        "evidence": evidence_data(answer),
        "frame_times_s": list(clip.times_s),
        "source_wh": list(clip.source_wh),
        "duration_s": clip.duration_s,
    }
    answer_text = answer.answer_text if answer.answer_text is not None else "(no answer)"
    video = (
        f"{_e(clip.source or 'frames in memory')} · {clip.source_wh[0]}×{clip.source_wh[1]} "
        f"shown at {clip.frame_wh[0]}×{clip.frame_wh[1]} · {clip.duration_s:.2f} s · "
        f"{clip.num_frames} frames"
    )
    samples = ""
    if answer.samples or answer.votes:
        items = "".join(f"<li><pre>{_e(s)}</pre></li>" for s in answer.samples)
        votes = _e(json.dumps(list(answer.votes), indent=1, ensure_ascii=False, default=str))
        samples = (
            f'<section id="samples"><h2>Samples ({len(answer.samples)})</h2><details>'
            f"<summary>texts and votes</summary><ol>{items}</ol><pre>{votes}</pre></details>"
            "</section>"
        )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>o3video: {_e(answer.question[:80] or "answer")}</title>
<style>{CSS}</style></head>
<body>
<header>
<h1 id="question">{_e(answer.question or "(no question)")}</h1>
<p id="answer">{_e(answer_text)}</p>
<p class="meta">model {_e(answer.model or "?")} · task {_e(answer.task)} · boxes written in
{_e(answer.box_space)} · {video}</p>
</header>
<main>
<div class="top">
<section id="viewer" data-index="">
<div class="stage" style="--aspect:{clip.frame_wh[0] / clip.frame_wh[1]:.6f}">
<img alt="the frame of the selected evidence"></div>
<p class="caption"><span class="name"></span> <span class="time" data-time=""></span></p>
<div id="timeline">{_timeline(answer)}</div>
</section>
<section id="reasoning"><h2>Reasoning ({len(answer.evidence)} claims)</h2>
<div class="trace">{_reasoning(answer)}</div></section>
</div>
<section id="frames"><h2>Frames (true times)</h2><div class="strip">{_frames(answer)}</div>
</section>
<section id="problems"><h2>Problems ({len(answer.trace.problems)})</h2>
{_problems(answer)}</section>
<section id="timings"><h2>Timings</h2>{_timings(answer)}</section>
{samples}
</main>
<script type="application/json" id="o3-data">{_script_json(data)}</script>
<script>{SCRIPT}</script>
</body></html>
"""


def write_report(answer: Answer, path: str | Path) -> Path:
    """Write :func:`render_report` to ``path`` (UTF-8) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(answer), encoding="utf-8")
    return path
