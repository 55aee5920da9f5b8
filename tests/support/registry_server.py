"""A real registry (Debian's docker-registry, CNCF distribution 2.8) on loopback for tests.

Each test starts its own process with its own config on a free port: Debian's
default config enables htpasswd auth, and a shared registry would leak blobs
between tests (a "skipped" blob must be skipped because of *this* test).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import socket
import subprocess
import time
import warnings

import requests


def require_tool(name: str) -> str:
    """The tool's path, or a failure that says how to get it (never a silent skip)."""
    path = shutil.which(name)
    if not path:
        raise RuntimeError(
            f"{name} not found on PATH: install it (Debian package "
            f"{ {'docker-registry': 'docker-registry', 'skopeo': 'skopeo', 'umoci': 'umoci'}.get(name, name)}) "
            "on the host and into the Bazel root (tools/bazel-root/packages.txt)"
        )
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bcrypt_hash(password: str) -> str:
    """bcrypt cost 4 (fast tests) via libcrypt; htpasswd(1) when Python's crypt is gone."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt  # stdlib until 3.13; libxcrypt does bcrypt

        h = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
        if h and h.startswith("$2"):
            return h
    except ImportError:
        pass
    out = subprocess.run(
        [require_tool("htpasswd"), "-nbBC", "4", "u", password], capture_output=True, text=True, check=True
    )
    return out.stdout.strip().split(":", 1)[1]


@dataclasses.dataclass
class Registry:
    url: str  # http://127.0.0.1:PORT
    host: str  # 127.0.0.1:PORT
    root: str  # storage root directory
    process: subprocess.Popen
    log_path: str

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()


def _config(port: int, root: str, auth_yaml: str) -> str:
    return f"""version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
  secret: test-secret
{auth_yaml}"""


def htpasswd_auth(workdir: str, users: dict) -> str:
    path = os.path.join(workdir, "htpasswd")
    with open(path, "w") as f:
        for user, password in users.items():
            f.write(f"{user}:{bcrypt_hash(password)}\n")
    return f"auth:\n  htpasswd:\n    realm: test\n    path: {path}\n"


def token_auth(realm: str, service: str, issuer: str, cert_path: str) -> str:
    return (
        "auth:\n  token:\n"
        f"    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n"
        f"    rootcertbundle: {cert_path}\n"
    )


@contextlib.contextmanager
def running_registry(workdir: str, auth_yaml: str = ""):
    """Starts docker-registry on a free loopback port and stops it afterwards."""
    binary = require_tool("docker-registry")
    root = os.path.join(workdir, "storage")
    os.makedirs(root, exist_ok=True)
    port = free_port()
    config = os.path.join(workdir, "config.yml")
    with open(config, "w") as f:
        f.write(_config(port, root, auth_yaml))
    log_path = os.path.join(workdir, "registry.log")
    log = open(log_path, "wb")
    proc = subprocess.Popen([binary, "serve", config], stdout=log, stderr=subprocess.STDOUT)
    reg = Registry(f"http://127.0.0.1:{port}", f"127.0.0.1:{port}", root, proc, log_path)
    try:
        _wait_ready(reg)
        yield reg
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _wait_ready(reg: Registry, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if reg.process.poll() is not None:
            raise RuntimeError(f"docker-registry exited {reg.process.returncode}:\n{reg.log()}")
        try:
            requests.get(reg.url + "/v2/", timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.02)
    raise RuntimeError(f"docker-registry not ready after {timeout}s:\n{reg.log()}")


def skopeo_inspect_raw(ref: str, creds: str | None = None, token: bool = False) -> bytes:
    """The manifest bytes as an independent client (skopeo) reads them."""
    args = [require_tool("skopeo"), "inspect", "--raw", "--tls-verify=false"]
    if creds:
        args += ["--creds", creds]
    out = subprocess.run(args + [f"docker://{ref}"], capture_output=True, check=False)
    if out.returncode:
        raise AssertionError(f"skopeo inspect failed: {out.stderr.decode()}")
    return out.stdout


def skopeo_copy_to_layout(ref: str, dest_dir: str, creds: str | None = None) -> str:
    """Pulls REF with skopeo into an OCI layout (every blob verified); returns the digest."""
    digest_file = dest_dir + ".digest"
    args = [require_tool("skopeo"), "copy", "--preserve-digests", "--src-tls-verify=false",
            "--digestfile", digest_file]
    if creds:
        args += ["--src-creds", creds]
    out = subprocess.run(args + [f"docker://{ref}", f"oci:{dest_dir}:pulled"],
                         capture_output=True, check=False)
    if out.returncode:
        raise AssertionError(f"skopeo copy failed: {out.stderr.decode()}")
    with open(digest_file) as f:
        return f.read().strip()
