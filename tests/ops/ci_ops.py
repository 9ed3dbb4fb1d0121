"""Operations checks on the real binary, run by .ci/run.

Starts `inventory-gateway demo` (three simulators and the gateway), then:
  1. looks a server up on each of the four systems with the demo's printed token and curl lines;
  2. validates the committed and the served OpenAPI documents (openapi-spec-validator);
  3. scrapes /metrics and checks the scrape with `promtool check metrics`;
  4. opens /swagger-ui/ in headless Chromium (DevTools protocol): every route is listed, and
     "Authorize" with the token then "Try it out" / "Execute" on GET /servers/{name} shows a
     real record;
  5. opens the page at / in headless Chromium once every system is indexed: "Authorize" with
     the token lists every system of GET /fleet, and searching a server's MAC finds it;
  6. stops the demo with SIGTERM and expects exit code 0.

Usage: python ci_ops.py <inventory-gateway binary>  (chromium and promtool on PATH)
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import websocket  # websocket-client
from openapi_spec_validator import validate

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "ci-ops-token-" + os.urandom(8).hex()
ROUTES = [
    ("GET", "/servers/{name}"),
    ("DELETE", "/servers/{name}/cache"),
    ("GET", "/vendors"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/servers"),
    ("POST", "/servers/lookup"),
    ("GET", "/fleet"),
    ("GET", "/fleet/conflicts"),
    ("POST", "/fleet/sweep"),
]


def step(msg):
    print(f"--- {msg}", flush=True)


def http_get(url, token=None, timeout=10):
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


def start_demo(binary, log):
    # Port 0 everywhere, the gateway's address read from the banner: a port chosen here could
    # be another connection's by the time the demo binds it.
    cmd = [binary, "demo", "--port", "0", "--token", TOKEN,
           "--oneview-port", "0", "--ucsm-port", "0", "--ome-port", "0",
           "--ucs-central-port", "0", "--intersight-port", "0", "--redfish-port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
    gateway, names = None, []
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        log.write(line)
        m = re.search(r"^\s+gateway\s+(http://\S+)", line)
        if m:
            gateway = m.group(1)
        m = re.search(r"curl -s -H 'Authorization: Bearer (\S+)' (\S+)/servers/(\S+)$", line)
        if m and not m.group(3).endswith("does-not-exist"):
            assert m.group(1) == TOKEN, "the demo's curl lines must use its token"
            names.append(m.group(3))
        if "Ctrl-C stops everything" in line or time.monotonic() > deadline:
            break
    # One per management system and one standalone server behind its own Redfish BMC.
    assert gateway and len(names) == 6, f"demo banner not understood: {gateway} {names}"
    # Keep draining stdout into the log so the demo never blocks on a full pipe.
    import threading

    def drain():
        for line in proc.stdout:
            log.write(line)

    threading.Thread(target=drain, daemon=True).start()
    return proc, gateway, names


class Chromium:
    """Headless Chromium driven over the DevTools protocol (one page)."""

    def __init__(self, url, failure_shot="swagger-failure.png"):
        self.failure_shot = failure_shot
        self.profile = tempfile.mkdtemp(prefix="igw-chromium-")
        exe = shutil.which("chromium") or shutil.which("chromium-browser")
        assert exe, "chromium is not installed"
        self.proc = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={self.profile}", "--remote-debugging-port=0",
             "--window-size=1400,2000", url],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        page = None
        while page is None:
            assert time.monotonic() < deadline, "chromium shows no page"
            _, body = http_get(f"http://127.0.0.1:{port}/json/list")
            pages = [t for t in json.loads(body) if t.get("type") == "page"]
            page = pages[0] if pages else None
            if page is None:
                time.sleep(0.1)
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60,
                                              suppress_origin=True)
        self.next_id = 0

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def js(self, expression):
        """Evaluates `expression` (awaiting a promise), returns its JSON value."""
        r = self.call("Runtime.evaluate", expression=expression, awaitPromise=True,
                      returnByValue=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"JS failed: {r['exceptionDetails']}\n{expression}")
        return r["result"].get("value")

    def wait(self, condition_js, what, timeout=30):
        """Polls a JS condition in the page until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            v = self.js(condition_js)
            if v:
                return v
            if time.monotonic() > deadline:
                self.screenshot(self.failure_shot)
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.2)

    def type_into(self, selector, text, enter=False):
        """Types into an input like a user: focus, select what is there, type over it, and
        with `enter` press Enter (Swagger UI debounces parameter inputs; Enter hands the value
        over at once)."""
        found = self.js(f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
                        " if (!e) return false; e.focus(); e.select(); return true; })()")
        assert found, f"no {selector}"
        self.call("Input.insertText", text=text)
        value = self.js(f"document.querySelector({json.dumps(selector)}).value")
        assert value == text, f"{selector} holds {value!r} after typing {text!r}"
        for kind in ("keyDown", "keyUp") if enter else ():
            self.call("Input.dispatchKeyEvent", type=kind, key="Enter", code="Enter",
                      windowsVirtualKeyCode=13, nativeVirtualKeyCode=13,
                      **({"text": "\r"} if kind == "keyDown" else {}))

    def screenshot(self, name):
        try:
            import base64
            data = self.call("Page.captureScreenshot")["data"]
            out = Path(os.environ.get("IGW_CI_ARTIFACTS", tempfile.gettempdir())) / name
            out.write_bytes(base64.b64decode(data))
            print(f"screenshot: {out}", flush=True)
        except Exception as e:  # a screenshot is a diagnostic, never the failure itself
            print(f"no screenshot: {e}", flush=True)

    def close(self):
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            shutil.rmtree(self.profile, ignore_errors=True)


def swagger_check(gateway, name):
    browser = Chromium(f"{gateway}/swagger-ui/")
    try:
        shown = browser.wait(
            "(() => { const o = [...document.querySelectorAll('.opblock')].map(b => "
            "[b.querySelector('.opblock-summary-method')?.textContent.trim(),"
            " b.querySelector('.opblock-summary-path')?.getAttribute('data-path')]);"
            " return o.length ? o : null; })()",
            "the operations list")
        for method, path in ROUTES:
            assert [method, path] in shown, f"Swagger UI does not show {method} {path}: {shown}"

        # Authorize with the bearer token, as a user would.
        browser.js("document.querySelector('.auth-wrapper .authorize').click(), true")
        browser.wait("!!document.querySelector('.modal-ux input')", "the Authorize dialog")
        browser.type_into(".modal-ux input", TOKEN)
        browser.js("document.querySelector('.modal-ux .auth-btn-wrapper .authorize').click(), true")
        browser.wait("[...document.querySelectorAll('.modal-ux button')]"
                     ".some(b => b.textContent.trim() === 'Logout')",
                     "the dialog to show the token as authorized")
        browser.js("document.querySelector('.modal-ux .close-modal').click(), true")
        browser.wait("!document.querySelector('.modal-ux')", "the dialog to close")

        # GET /servers/{name}: expand, Try it out, fill the name, Execute.
        op = "#operations-servers-get_server"
        browser.js(f"document.querySelector('{op} .opblock-summary-control').click(), true")
        browser.wait(f"!!document.querySelector('{op} .try-out__btn')", "Try it out")
        browser.js(f"document.querySelector('{op} .try-out__btn').click(), true")
        name_input = f"{op} tr[data-param-name=\"name\"] input"
        browser.wait(f"!!document.querySelector('{name_input}')", "the name field")
        browser.type_into(name_input, name, enter=True)
        browser.js(f"document.querySelector('{op} .btn.execute').click(), true")
        body = browser.wait(
            f"(() => {{ const r = document.querySelector('{op} .live-responses-table tbody tr.response');"
            " if (!r) return null;"
            " const s = r.querySelector('.response-col_status')?.textContent.trim();"
            " const b = r.querySelector('.highlight-code pre')?.textContent;"
            " const u = document.querySelector('" + op + " .request-url pre')?.textContent;"
            " return s && b ? [s, b, u] : null; })()",
            "the response of Execute")
        status, text, url = body
        assert url.endswith(f"/servers/{name}"), f"Execute asked {url}, not {name}"
        record = json.loads(text)
        assert status == "200", f"Try it out answered {status}: {text}"
        assert record["name"].lower() == name.lower() and record["nics"], record
        print(f"swagger ui: {len(shown)} operations; Try it out -> 200 {record['name']} "
              f"({record['vendor']}, {len(record['nics'])} NICs, BMC {record['bmc']})", flush=True)
        browser.screenshot("swagger-ui.png")
    finally:
        browser.close()


def wait_indexed(gateway, timeout=60):
    """Polls GET /fleet until every system has an index (the demo sweeps them about 2 s after
    it starts); returns the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        _, body = http_get(f"{gateway}/fleet", TOKEN)
        fleet = json.loads(body)
        pending = [s["name"] for s in fleet["systems"] if s["indexed"] is None]
        if fleet["systems"] and not pending:
            return fleet
        assert time.monotonic() < deadline, f"not indexed after {timeout} s: {pending}: {fleet}"
        time.sleep(0.5)


def page_check(gateway):
    fleet = wait_indexed(gateway)
    systems = [s["name"] for s in fleet["systems"]]
    _, body = http_get(f"{gateway}/servers?limit=100", TOKEN)
    record = next((r for r in json.loads(body)["servers"] if r["nics"]), None)
    assert record, f"no indexed server with a NIC: {body[:500]}"
    name, mac = record["name"], record["nics"][0]["mac"]

    browser = Chromium(f"{gateway}/", failure_shot="page-failure.png")
    try:
        # No token is needed to load the page (nor its style sheet and script).
        browser.wait("document.readyState === 'complete' && !!document.querySelector('#token')",
                     "the page and its token field")
        collapse = browser.js("getComputedStyle(document.querySelector('#systems')).borderCollapse")
        assert collapse == "collapse", "the page's style sheet is not applied"
        state = browser.js("document.querySelector('#auth-state').textContent.trim()")
        assert state == "not authorized", f"#auth-state says {state!r} before Authorize"

        # Authorize with the bearer token: the page lists GET /fleet's systems.
        browser.type_into("#token", TOKEN)
        browser.js("document.querySelector('#authorize').click(), true")
        rows = browser.wait(
            "(() => { const r = [...document.querySelectorAll('#systems tbody tr')];"
            f" return r.length === {len(systems)} ? r.map(t => t.innerText) : null; }})()",
            f"{len(systems)} rows in #systems")
        for system in systems:
            assert any(r.startswith(system) for r in rows), f"no row for {system}: {rows}"
        state = browser.js("document.querySelector('#auth-state').textContent.trim()")
        assert state == "authorized", f"#auth-state says {state!r} after Authorize"

        # Search the MAC as a person might paste it (upper case, dashes); Enter submits.
        browser.type_into("#search", mac.upper().replace(":", "-"), enter=True)
        row = browser.wait(
            "[...document.querySelectorAll('#results tbody tr')].map(r => r.innerText)"
            f".find(t => t.includes({json.dumps(name)})) || null",
            f"a #results row for {name}")
        assert mac in row, f"the row for {name} does not show {mac}: {row!r}"
        count = browser.js("document.querySelector('#result-count').textContent.trim()")
        print(f"page: {len(systems)} systems ({fleet['servers']} servers indexed); "
              f"MAC {mac} -> {name} ({count})", flush=True)
        browser.screenshot("page.png")
    finally:
        browser.close()


def main():
    binary = sys.argv[1]
    log_path = Path(tempfile.gettempdir()) / "igw-ci-ops-demo.log"
    with open(log_path, "w") as log:
        proc, gateway, names = start_demo(binary, log)
        try:
            step(f"lookups on every system (a Redfish BMC too) via {gateway}: {names}")
            for name in names:
                status, body = http_get(f"{gateway}/servers/{name}", TOKEN)
                record = json.loads(body)
                assert status == 200 and record["nics"], body
                print(f"  {name}: {record['system']} {len(record['nics'])} NICs", flush=True)

            step("OpenAPI: the committed and the served document validate")
            committed = json.loads((ROOT / "openapi" / "openapi.json").read_text())
            validate(committed)
            _, served = http_get(f"{gateway}/api-docs/openapi.json")
            validate(json.loads(served))
            assert json.loads(served) == committed, "served spec differs from the committed one"

            step("promtool check metrics on a scrape taken after the lookups")
            _, scrape = http_get(f"{gateway}/metrics")
            text = scrape.decode()
            for system in ("oneview-sim", "ucsm-sim", "ucs-central-sim", "ome-sim",
                           "ucs-central-sim/127.0.1.1"):
                assert f'system="{system}"' in text, f"no {system} series in the scrape"
            check = subprocess.run(["promtool", "check", "metrics"], input=scrape,
                                   capture_output=True)
            print(check.stdout.decode() + check.stderr.decode(), end="", flush=True)
            assert check.returncode == 0, "promtool check metrics failed"

            step("Swagger UI in headless Chromium")
            swagger_check(gateway, names[1])

            step("the page at / in headless Chromium: Authorize, systems, search by MAC")
            page_check(gateway)
        finally:
            step("SIGTERM: the demo drains, logs out and exits 0")
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = "killed after 60 s"
    assert code == 0, f"demo exited with {code}; log in {log_path}"
    print("ops: 6 passed, 0 failed", flush=True)


if __name__ == "__main__":
    main()
