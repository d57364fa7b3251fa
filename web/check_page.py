#!/usr/bin/env python3
"""Loads web/index.html in headless Chromium (through chromedriver's W3C
WebDriver protocol, standard library only) and checks what the page wrote.

    python3 web/check_page.py                      # ?check: every line passed, digest is native
    python3 web/check_page.py --bench 'vocab=1000,10000&batch=512&dim=32&reps=3'
                                                   # ?bench: the sweep ran, paths agree, chart drawn
    python3 web/check_page.py --screenshot out.png ['vocab=...']
                                                   # the whole page (check and benchmark)

Needs web/pkg (web/build.sh), chromium and chromium-driver.
"""

import base64
import functools
import http.server
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

NATIVE_DIGEST = "037a0bf3b8387ae0"
SCHEMA = "wgpu-embed/bench/v1"
ARGS = ["--headless=new", "--no-sandbox", "--enable-unsafe-webgpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)["value"]


def page(query, element, timeout, screenshot=None):
    """Serves web/, opens index.html?query, and returns the text the page
    writes into #element (waiting up to timeout seconds)."""
    here = os.path.dirname(os.path.abspath(__file__))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=here)
    site = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    port = free_port()
    driver = subprocess.Popen([os.environ.get("CHROMEDRIVER", "chromedriver"), f"--port={port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    text = ""
    try:
        for _ in range(50):
            try:
                call(base, "GET", "/status")
                break
            except OSError:
                time.sleep(0.2)
        profile = tempfile.mkdtemp()
        caps = {"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "args": ARGS + [f"--user-data-dir={profile}", "--window-size=1300,2600"]}}}}
        session = call(base, "POST", "/session", caps)["sessionId"]
        s = f"/session/{session}"
        try:
            call(base, "POST", s + "/url", {"url": f"http://127.0.0.1:{site.server_port}/index.html?{query}"})
            read = {"script": f"return document.getElementById('{element}').textContent", "args": []}
            deadline = time.time() + timeout
            while not text and time.time() < deadline:
                time.sleep(0.5)
                text = call(base, "POST", s + "/execute/sync", read)
            if screenshot:
                png = call(base, "GET", s + "/screenshot")
                with open(screenshot, "wb") as f:
                    f.write(base64.b64decode(png))
                print(f"wrote {screenshot}")
        finally:
            call(base, "DELETE", s)
    finally:
        driver.terminate()
        site.shutdown()
    if not text:
        sys.exit(f"the page wrote nothing into #{element} within {timeout} s")
    return text


def check_self_check(text):
    v = json.loads(text)
    if "error" in v:
        sys.exit(f"the page failed: {v['error']}")
    failed = [r for r in v["results"] if not r["pass"]]
    if failed or not v["results"]:
        sys.exit(f"self-check lines failed: {failed}")
    if v["rng_digest"] != NATIVE_DIGEST:
        sys.exit(f"the page's RNG digest {v['rng_digest']} is not the native {NATIVE_DIGEST}")
    print(f"page check passed on {v['adapter']}: {len(v['results'])} lines, digest {v['rng_digest']}")


def check_bench(text, vocabs):
    v = json.loads(text)
    if "error" in v:
        sys.exit(f"the page's benchmark failed: {v['error']}")
    if v["schema"] != SCHEMA:
        sys.exit(f"schema {v['schema']!r}, not {SCHEMA!r}")
    rows = {(r["vocab"], r["path"]): r for r in v["rows"]}
    for vocab in vocabs:
        g, h = rows.get((vocab, "gather")), rows.get((vocab, "one_hot"))
        if not g or not h or g["forward_ms_median"] is None:
            sys.exit(f"vocab {vocab}: rows missing in {sorted(rows)}")
        if h["forward_ms_median"] is not None and "forward equal bit for bit" not in g["note"]:
            sys.exit(f"vocab {vocab}: the paths were not compared: {g['note']!r}")
    print(f"page benchmark passed on {v['adapter']} ({v['clock']}): {len(v['rows'])} rows")
    for r in v["rows"]:
        print(f"  {r['vocab']:>8} {r['path']:<8} fwd {r['forward_ms_median']} ms  bwd {r['backward_ms_median']} ms  "
              f"fwd+ {r['forward_extra_bytes']} B  {r['note']}")


def main():
    args = sys.argv[1:]
    if args[:1] == ["--bench"] and len(args) == 2:
        query = args[1]
        vocabs = [int(x) for x in dict(p.split("=", 1) for p in query.split("&") if "=" in p)
                  .get("vocab", "").split(",") if x]
        text = page("bench&" + query, "bench-results", 600)
        print(text)
        check_bench(text, vocabs)
    elif args[:1] == ["--screenshot"] and len(args) in (2, 3):
        page(args[2] if len(args) == 3 else "", "bench-results", 900, screenshot=args[1])
    elif not args:
        text = page("check", "results", 180)
        print(text)
        check_self_check(text)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
