"""``o3video serve``: a local web page where a person asks about a video and sees the evidence.

The page (``static/index.html``): upload a video or pick an example, type a question, pick a
task preset; the reasoning streams in and every evidence claim becomes a chip (object ·
time) as soon as it is complete; a click seeks the player to the claim's time and draws its
boxes over the video, scaled to the player's displayed picture (letterboxing of
``object-fit: contain`` included); a timeline under the player marks every evidence time.
Then the answer, the parser's problems, the timings, the samples and their vote weights,
and ``answer.json`` and ``report.html`` to download.

Why it is built this way:

- **Starlette on uvicorn** (:mod:`.app`): HTTP is parsed by uvicorn's h11 protocol (every
  body framed by its length or chunks; every refusal closes its connection), idle and slow
  clients are timed out and cost a socket, not a thread; one self-contained HTML/CSS/JS page
  shipped as package data, nothing fetched from a CDN, so it works offline; a test starts it
  on port 0 in a thread with any :class:`~o3video.models.base.Backend`.
- **One parser**: the server streams JSON lines; with each text delta it sends every
  complete claim of the text so far, parsed and mapped to source pixels by the same
  :func:`o3video.answer.build_answer` that makes the final answer (DESIGN principle 1: the
  browser never sees a model's box space). The page only scales source pixels to the
  player.
- **Safe by default**: binds 127.0.0.1 and answers only to loopback host names; uploads are
  limited in size (HTTP 413), duration and frame size (:func:`o3video.video.probe_video`,
  from the headers, before anything is decoded); question requests in size and JSON nesting
  (:mod:`o3video.safejson`); uploads are kept in a
  private temporary folder (0700) that is deleted at exit; the browser names videos only by
  ids from the server's own lists, never by path; one request at a time per model, the
  others queued with their position shown (:class:`~o3video.serve.state.ModelQueue`).

>>> from o3video.serve import make_server                      # doctest: +SKIP
>>> server = make_server(backend, port=0, examples_dir="ex")   # doctest: +SKIP
>>> print(server.url); server.serve_forever()                  # doctest: +SKIP
"""

from __future__ import annotations

from o3video.serve.app import App, ServeServer, make_server
from o3video.serve.job import AskOptions, settled_evidence
from o3video.serve.state import Limits, ensure_examples, load_examples

__all__ = [
    "App",
    "AskOptions",
    "Limits",
    "ServeServer",
    "ensure_examples",
    "load_examples",
    "make_server",
    "settled_evidence",
]
