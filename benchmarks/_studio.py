"""The ``studio`` workloads: tokens on screen, a responsive page under a long run, asset size.

``python -m benchmarks --only studio``: ``stepstream serve examples/weather.py`` runs in a child
process, with the weather agent on a local :class:`~stepstream.testing.ModelServer`; Debian's
Chromium (headless, driven by Playwright, the flags of ``tests/studio``) opens the Studio's
page of the run. One pass each (a browser's figures are distributions already).

``studio-tokens``  the model streams ``studio_tokens`` tokens (5,000), one every 2 ms. The
                   model server notes the wall-clock time it sends each one; the page notes
                   (``Date.now()``, the same clock) when each token's text is in the answer box,
                   at the frame that paints it. Reported: the median, 99th percentile and worst
                   of send-to-screen latency, and its two halves at the 99th percentile: until
                   the bytes reach the page (the engine, storage and SSE: a copy of the page's
                   event stream notes their arrival) and from there to the screen (the Studio's
                   own rendering path). Target: every token under 50 ms.
``studio-long``    a run of ``studio_events`` events (100,000: as many tokens, streamed as fast
                   as the socket takes them) followed by the page from its start; a
                   ``PerformanceObserver`` counts long tasks (over 50 ms, Chromium's definition)
                   while the page takes them. Reported: the longest task and the time until the
                   last event is shown. Target: no task over 100 ms.
``studio-assets``  the Studio's files, each gzipped (what a compressing proxy would send),
                   summed; target under 300 KB. ``first paint``: Chromium's
                   first-contentful-paint of ``/``; target under 500 ms.

Without Playwright or Chromium (``/usr/bin/chromium``) the rows are ``FAILED``, saying which.
"""

from __future__ import annotations

import gzip
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from stepstream.testing import ModelServer, TextReply, tokens

from ._report import Report
from ._suite import Row
from ._workloads import Sizes

ROOT = Path(__file__).resolve().parents[1]
STUDIO = ROOT / "core" / "server" / "studio"
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Injected before the page's own modules: note when the answer box's text grows, every long
# task, and when each token's bytes reach the page (a tee of the events stream it fetches).
PROBE = """
window.__seen = []; window.__long = []; window.__arrived = [];
const realFetch = window.fetch;
window.fetch = async (...args) => {
  const response = await realFetch(...args);
  if (!String(args[0]).endsWith("/events") || !response.body) return response;
  const [mine, copy] = response.body.tee();
  (async () => {
    const reader = copy.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const now = Date.now();
      const tokens = value.split("event: tool-call-delta").length - 1;
      for (let k = 0; k < tokens; k++) __arrived.push(now);
    }
  })();
  return new Response(mine, { status: response.status, headers: response.headers });
};
new PerformanceObserver((l) => { for (const e of l.getEntries()) __long.push(e.duration); })
  .observe({ type: "longtask", buffered: true });
const watch = () => {
  const box = document.querySelector('.agent-text');
  if (!box) return requestAnimationFrame(watch);
  let last = 0;
  new MutationObserver(() => {
    const n = Number(box.dataset.length || 0);  // the answer's length (the box shows its end)
    // Called right after the page writes the text (in the frame's callback), before it
    // paints that frame.
    if (n !== last) { last = n; __seen.push([Date.now(), n]); }
  }).observe(box, { attributes: true, attributeFilter: ["data-length"] });
};
requestAnimationFrame(watch);
"""


class Paced:
    """A model streaming ``n`` tokens ``delay`` seconds apart, noting when each is sent."""

    def __init__(self, n: int, delay: float) -> None:
        self.words = tokens(n)
        self.delay = delay
        self.sent: list[float] = []

    def __call__(self, body: dict[str, Any]) -> TextReply:
        def chunks() -> Iterator[str]:
            for word in self.words:
                self.sent.append(time.time() * 1000)
                yield word
                if self.delay:
                    time.sleep(self.delay)

        return TextReply(chunks())


def _serve(model_url: str) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OPENAI_API_KEY": "bench", "OPENAI_BASE_URL": model_url}
    env["STEPSTREAM_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stepstream.cli",
            "serve",
            "examples/weather.py",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            httpx.get(url, timeout=2)
            return proc, url
        except httpx.ConnectError:
            time.sleep(0.05)
    raise RuntimeError("stepstream serve did not start")


def _browser(session: Any, profile: str) -> Any:
    return session.chromium.launch_persistent_context(
        profile, executable_path=CHROMIUM, headless=True, args=FLAGS
    )


def _start(page: Any, url: str) -> None:
    page.goto(f"{url}/#/workflows/weatherWorkflow")
    page.get_by_label("City").fill("Oslo")
    page.get_by_role("button", name="Start run").click()


def bench_tokens(session: Any, n: int) -> dict[str, float]:
    model = Paced(n, 0.002)
    with ModelServer(model) as server, tempfile.TemporaryDirectory() as profile:
        proc, url = _serve(server.base_url)
        try:
            context = _browser(session, profile)
            page = context.new_page()
            page.add_init_script(PROBE)
            _start(page, url)
            page.wait_for_function(
                "document.querySelector('#run-status')?.dataset.status === 'success'",
                timeout=300_000,
            )
            seen: list[list[int]] = page.evaluate("__seen")
            arrived: list[int] = page.evaluate("__arrived")
            context.close()
        finally:
            proc.terminate()
            proc.wait(10)
    ends = [0]
    for word in model.words:
        ends.append(ends[-1] + len(word))
    latencies = []
    j = 0
    for i, sent in enumerate(model.sent):
        while j < len(seen) and seen[j][1] < ends[i + 1]:
            j += 1
        if j >= len(seen):
            raise RuntimeError(f"token {i} never reached the screen")
        latencies.append(seen[j][0] - sent)
    to_page = [at - sent for at, sent in zip(arrived, model.sent, strict=True)]
    in_page = [total - part for total, part in zip(latencies, to_page, strict=True)]
    return {
        "tokens": n,
        "median_ms": statistics.median(latencies),
        "p99_ms": _p99(latencies),
        "max_ms": max(latencies),
        "to_page_p99_ms": _p99(to_page),
        "in_page_p99_ms": _p99(in_page),
    }


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return float(ordered[int(len(ordered) * 0.99) - 1])


def bench_long(session: Any, n: int) -> dict[str, float]:
    with ModelServer(lambda body: TextReply(tokens(n))) as server:
        proc, url = _serve(server.base_url)
        try:
            done = httpx.post(
                f"{url}/api/workflows/weatherWorkflow/start-async",
                json={"inputData": {"city": "Oslo"}},
                timeout=600,
            )
            if done.json()["status"] != "success":
                raise RuntimeError(f"the long run did not succeed: {done.text[:300]}")
            run_id = httpx.get(f"{url}/api/workflows/weatherWorkflow/runs").json()["runs"][0]
            with tempfile.TemporaryDirectory() as profile:
                context = _browser(session, profile)
                page = context.new_page()
                page.add_init_script(PROBE)
                started = time.perf_counter()
                page.goto(f"{url}/#/runs/weatherWorkflow/{run_id['runId']}")
                page.wait_for_function(
                    "document.querySelector('#run-status')?.dataset.status === 'success' && "
                    f"Number(document.querySelector('#timeline').dataset.count) >= {n}",
                    timeout=600_000,
                )
                shown = time.perf_counter() - started
                page.locator("#timeline").focus()
                for key in ("Home", "PageDown", "End"):  # still answers the keyboard
                    page.keyboard.press(key)
                longest: list[float] = page.evaluate("__long")
                count = int(page.locator("#timeline").get_attribute("data-count"))
                context.close()
        finally:
            proc.terminate()
            proc.wait(10)
    return {
        "events": count,
        "shown_s": shown,
        "long_tasks": len(longest),
        "longest_ms": max(longest, default=0.0),
    }


def bench_assets(session: Any) -> dict[str, float]:
    size = sum(len(gzip.compress(p.read_bytes(), 9)) for p in STUDIO.iterdir())
    with ModelServer() as server, tempfile.TemporaryDirectory() as profile:
        proc, url = _serve(server.base_url)
        try:
            context = _browser(session, profile)
            page = context.new_page()
            page.goto(f"{url}/")
            page.locator(".card").first.wait_for()
            paint = page.evaluate(
                "performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? -1"
            )
            context.close()
        finally:
            proc.terminate()
            proc.wait(10)
    return {"gzip_kb": size / 1024, "first_paint_ms": paint}


def _failed(workload: str, metric: str, exc: BaseException) -> list[Row]:
    return [Row(workload, "studio", metric, math.nan, note=f"{type(exc).__name__}: {exc}"[:300])]


def studio_workloads(report: Report, sizes: Sizes, log: Callable[[str], None]) -> None:
    """The three ``studio-*`` workloads into ``report`` (rows, their notes)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        report.rows += _failed("studio-assets", "KB gzip", exc)
        return
    if not Path(CHROMIUM).exists():
        report.rows += _failed("studio-assets", "KB gzip", RuntimeError(f"no {CHROMIUM}"))
        return
    with sync_playwright() as session:
        log("  studio: assets and first paint ...")
        try:
            a = bench_assets(session)
            report.rows += [
                Row("studio-assets", "studio", "KB gzip", a["gzip_kb"]),
                Row("studio-assets", "studio", "ms first paint", a["first_paint_ms"]),
            ]
        except Exception as exc:
            report.rows += _failed("studio-assets", "KB gzip", exc)
        log(f"  studio: {sizes.studio_tokens:,} tokens on screen ...")
        try:
            t = bench_tokens(session, sizes.studio_tokens)
            report.rows += [
                Row("studio-tokens", "studio", "ms p50", t["median_ms"]),
                Row("studio-tokens", "studio", "ms p99", t["p99_ms"]),
                Row("studio-tokens", "studio", "ms max", t["max_ms"]),
                Row("studio-tokens", "to the page", "ms p99", t["to_page_p99_ms"]),
                Row("studio-tokens", "in the page", "ms p99", t["in_page_p99_ms"]),
            ]
        except Exception as exc:
            report.rows += _failed("studio-tokens", "ms max", exc)
        log(f"  studio: a stored run of {sizes.studio_events:,} events ...")
        try:
            g = bench_long(session, sizes.studio_events)
            report.rows += [
                Row("studio-long", "studio", "ms longest task", g["longest_ms"]),
                Row("studio-long", "studio", "s until shown", g["shown_s"]),
            ]
            report.extra_notes.append(
                f"studio-long: {g['long_tasks']} tasks over 50 ms while the page took "
                f"{g['events']:,} events"
            )
        except Exception as exc:
            report.rows += _failed("studio-long", "ms longest task", exc)
