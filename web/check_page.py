#!/usr/bin/env python3
"""Loads web/index.html?check in headless Chromium (through chromedriver's
W3C WebDriver protocol, standard library only), waits for the self-check's
JSON in #results, and fails unless every line passed and the RNG digest is
the native build's.

    python3 web/check_page.py [expected-digest]

Needs web/pkg (web/build.sh), chromium and chromium-driver.
"""

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

NATIVE_DIGEST = sys.argv[1] if len(sys.argv) > 1 else "037a0bf3b8387ae0"
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


def main():
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
    try:
        for _ in range(50):
            try:
                call(base, "GET", "/status")
                break
            except OSError:
                time.sleep(0.2)
        profile = tempfile.mkdtemp()
        caps = {"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "args": ARGS + [f"--user-data-dir={profile}"]}}}}
        session = call(base, "POST", "/session", caps)["sessionId"]
        s = f"/session/{session}"
        try:
            call(base, "POST", s + "/url", {"url": f"http://127.0.0.1:{site.server_port}/index.html?check"})
            find = {"using": "css selector", "value": "#results"}
            element = next(iter(call(base, "POST", s + "/element", find).values()))
            text = ""
            deadline = time.time() + 180
            while not text and time.time() < deadline:
                time.sleep(0.5)
                text = call(base, "GET", f"{s}/element/{element}/text")
        finally:
            call(base, "DELETE", s)
    finally:
        driver.terminate()
        site.shutdown()
    if not text:
        sys.exit("the page wrote nothing into #results within 180 s")
    print(text)
    v = json.loads(text)
    if "error" in v:
        sys.exit(f"the page failed: {v['error']}")
    failed = [r for r in v["results"] if not r["pass"]]
    if failed or not v["results"]:
        sys.exit(f"self-check lines failed: {failed}")
    if v["rng_digest"] != NATIVE_DIGEST:
        sys.exit(f"the page's RNG digest {v['rng_digest']} is not the native {NATIVE_DIGEST}")
    print(f"page check passed on {v['adapter']}: digest {v['rng_digest']}")


if __name__ == "__main__":
    main()
