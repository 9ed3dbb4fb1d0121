"""End-to-end fixtures: the real `inventory-gateway controller` process, talking over HTTP (with
watches) to a Kubernetes API emulator (kmock, see k8s_emulator.py) and to the real gateway and
simulators (`inventory-gateway demo`). Everything listens on 127.0.0.1 and every process is
stopped by its fixture.
"""

import base64
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
TOKEN = "e2e-controller-token-0123456789abcdef"
CONTROLLER_NS = "igw-system"
NS = "ztp"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binary() -> str:
    explicit = os.environ.get("IGW_BIN")
    if explicit:
        return explicit
    for profile in ("debug", "release"):
        candidate = ROOT / "target" / profile / "inventory-gateway"
        if candidate.exists():
            return str(candidate)
    raise RuntimeError("build the binary first (cargo build) or set IGW_BIN")


def http(method, url, body=None, content_type="application/json", token=None, timeout=5.0):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", content_type)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw and raw[:1] in b"{[" else raw.decode())
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw.decode(errors="replace")


def wait_for(what, predicate, timeout=30.0):
    """Polls an observable condition until it holds; fails with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Kube:
    """The few Kubernetes API calls the tests make, over plain HTTP."""

    GROUPS = {
        "baremetalhostgenerators": "/apis/infra.example.com/v1alpha1",
        "baremetalhosts": "/apis/metal3.io/v1alpha1",
        "nmstateconfigs": "/apis/agent-install.openshift.io/v1beta1",
        "secrets": "/api/v1",
        "leases": "/apis/coordination.k8s.io/v1",
        "events": "/apis/events.k8s.io/v1",
    }

    def __init__(self, base):
        self.base = base

    def url(self, plural, ns, name=None, sub=None):
        u = f"{self.base}{self.GROUPS[plural]}/namespaces/{ns}/{plural}"
        if name:
            u += f"/{name}"
        if sub:
            u += f"/{sub}"
        return u

    def create(self, plural, ns, obj):
        status, body = http("POST", self.url(plural, ns), obj)
        assert status == 201, (status, body)
        return body

    def get(self, plural, ns, name):
        status, body = http("GET", self.url(plural, ns, name))
        if status == 404:
            return None
        assert status == 200, (status, body)
        return body

    def list(self, plural, ns):
        status, body = http("GET", self.url(plural, ns))
        assert status == 200, (status, body)
        return body["items"]

    def list_all(self, plural):
        """Every namespace's objects of `plural`."""
        status, body = http("GET", f"{self.base}{self.GROUPS[plural]}/{plural}")
        assert status == 200, (status, body)
        return body["items"]

    def merge(self, plural, ns, name, patch, sub=None):
        status, body = http("PATCH", self.url(plural, ns, name, sub), patch,
                            content_type="application/merge-patch+json")
        assert status == 200, (status, body)
        return body

    def delete(self, plural, ns, name):
        status, body = http("DELETE", self.url(plural, ns, name))
        assert status in (200, 202), (status, body)
        return body


class Processes:
    def __init__(self):
        self.procs = []

    def start(self, cmd, env=None, name="proc"):
        log = tempfile.NamedTemporaryFile(prefix=f"igw-e2e-{name}-", suffix=".log", delete=False)
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.PIPE)
        proc.log_path = log.name
        self.procs.append(proc)
        return proc

    def stop_all(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p in reversed(self.procs):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def log_tail(proc, lines=40):
    try:
        return "".join(Path(proc.log_path).read_text(errors="replace").splitlines(True)[-lines:])
    except OSError:
        return ""


def demo_gateway(*fleet_args):
    """Starts the real gateway and the simulators (plain HTTP, token auth) serving the
    fleet `fleet_args` choose (`--servers N --seed S` or `--inventory FILE`); yields its URLs,
    then stops them."""
    procs = Processes()
    # Every listener on port 0, its address read back from the banner: a port chosen here
    # and bound seconds later by the demo could meanwhile be another connection's.
    proc = procs.start([
        binary(), "demo", *fleet_args, "--token", TOKEN, "--port", "0",
        "--oneview-port", "0", "--ucsm-port", "0", "--ome-port", "0", "--ucs-central-port", "0",
        "--intersight-port", "0", "--redfish-port", "0",
    ], name="demo")
    banner = {}

    def up():
        if proc.poll() is not None:
            raise RuntimeError(f"demo exited: {log_tail(proc)}")
        text = Path(proc.log_path).read_text(errors="replace")
        if "Ctrl-C stops everything" not in text:
            return False
        for line in text.splitlines():
            m = re.match(r"^  (gateway|oneview|ucsm|ucs-central|ome|intersight|redfish)\s+(http://\S+)",
                         line)
            if m:
                banner[m.group(1).replace("-", "_")] = m.group(2).rstrip("/")
        try:
            return http("GET", f"{banner['gateway']}/readyz")[0] == 200
        except (OSError, KeyError):
            return False

    try:
        wait_for("the demo gateway", up, timeout=60)
        sims = {k: v for k, v in banner.items() if k != "gateway"}
        yield {"url": banner["gateway"], "sims": sims}
    finally:
        procs.stop_all()


@pytest.fixture(scope="session")
def gateway():
    """The real gateway and the three simulators with a generated fleet."""
    yield from demo_gateway("--servers", "20", "--seed", "7")


def usable_servers(gateway, kind):
    status, body = http("GET", f"{gateway['sims'][kind]}/_sim/inventory")
    assert status == 200
    return [s["name"] for s in body["servers"]
            if s.get("assigned", True) and s["nics"] and "." in s["bmc_address"]]


@pytest.fixture
def cluster(tmp_path):
    """A fresh Kubernetes API emulator, with the controller's BMC credentials Secret."""
    procs = Processes()
    kubeconfig = tmp_path / "kubeconfig"
    proc = procs.start([sys.executable, str(HERE / "k8s_emulator.py"), str(kubeconfig),
                        "--exit-with-stdin"], name="emulator")
    proc.stdout_path = None
    port = wait_for("the emulator", lambda: _ready_port(proc), timeout=30)
    kube = Kube(f"http://127.0.0.1:{port}")
    kube.create("secrets", CONTROLLER_NS, {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "bmc-credentials", "namespace": CONTROLLER_NS},
        "stringData": {"hp-username": "ilo-admin", "hp-password": "ilo-pw",
                       "dell-username": "root", "dell-password": "idrac-pw",
                       "cisco-username": "ipmi", "cisco-password": "ipmi-pw",
                       "other-username": "bmc-admin", "other-password": "bmc-pw"},
    })
    kube.kubeconfig = str(kubeconfig)
    kube.procs = procs
    yield kube
    procs.stop_all()


def _ready_port(proc):
    if proc.poll() is not None:
        raise RuntimeError(f"emulator exited: {log_tail(proc)}")
    for line in Path(proc.log_path).read_text(errors="replace").splitlines():
        if line.startswith("READY "):
            return int(line.split()[1])
    return None


class Controller:
    def __init__(self, proc, metrics_url):
        self.proc = proc
        self.metrics_url = metrics_url

    def metric(self, name):
        status, text = http("GET", f"{self.metrics_url}/metrics")
        assert status == 200
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return None

    def log(self):
        return log_tail(self.proc, 200)


@pytest.fixture
def start_controller(cluster, gateway, tmp_path):
    """Starts a controller process against the emulator; returns a Controller."""
    token_file = tmp_path / "gateway-token"
    token_file.write_text(TOKEN + "\n")

    def start(identity="controller-a", wait_ready=True, **env_overrides):
        """`env_overrides` set environment variables (a value of None removes one); with
        `wait_ready=False` the process is returned at once (for settings that must stop it)."""
        port = free_port()
        env = dict(os.environ)
        env.update({
            "KUBECONFIG": cluster.kubeconfig,
            "GATEWAY_URL": gateway["url"],
            "GATEWAY_TOKEN_FILE": str(token_file),
            "POD_NAMESPACE": CONTROLLER_NS,
            "POD_NAME": identity,
            "METRICS_LISTEN": f"127.0.0.1:{port}",
            "LEASE_DURATION": "3s",
            "IGW_LOG_FORMAT": "json",
            "RUST_LOG": "info,inventory_gateway=debug,kube_runtime=warn",
        })
        for k, v in env_overrides.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = str(v)
        proc = cluster.procs.start([binary(), "controller"], env=env, name=identity)
        c = Controller(proc, f"http://127.0.0.1:{port}")
        if not wait_ready:
            return c

        def ready():
            if proc.poll() is not None:
                raise RuntimeError(f"controller exited {proc.returncode}: {log_tail(proc)}")
            try:
                return http("GET", f"{c.metrics_url}/readyz")[0] == 200
            except OSError:
                return False

        wait_for(f"{identity} /readyz", ready)
        return c

    return start


def generator(name, **spec):
    spec.setdefault("infraEnv", "env")
    return {"apiVersion": "infra.example.com/v1alpha1", "kind": "BareMetalHostGenerator",
            "metadata": {"name": name, "namespace": NS}, "spec": spec}


def phase(kube, name):
    g = kube.get("baremetalhostgenerators", NS, name)
    return (g or {}).get("status", {}).get("phase")


def b64(s):
    return base64.b64encode(s.encode()).decode()
