"""A Bearer token server of the test's own, signing tokens docker-registry trusts.

The registry's `auth.token` config names our realm, service, issuer and a
root certificate bundle; tokens are RS256 JWTs whose `x5c` header carries the
(self-signed) signing certificate, which distribution 2.8 verifies against
that bundle. Requests are recorded so tests can assert which scopes were asked.
Every token is distinct (a serial in `jti`), so a renewed token is a new one.
`revoke_after=N` grants nothing after the first N token requests (push access
withdrawn mid-push): the registry then refuses the new tokens itself.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import http.server
import itertools
import json
import time
import urllib.parse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from tests.support import loopback


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_signing_cert(cert_path: str):
    """A fresh RSA key and self-signed cert; the cert is written as the registry's root bundle."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test token issuer")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert


class TokenServer:
    def __init__(self, key, cert, *, issuer: str, service: str, users: dict,
                 revoke_after: int | None = None):
        self.key, self.cert = key, cert
        self.issuer, self.service, self.users = issuer, service, users
        self.revoke_after = revoke_after
        self.requests: list[dict] = []  # {"user", "scopes"} per token request
        self._serial = itertools.count()

    def sign(self, user: str, access: list[dict]) -> str:
        now = int(time.time())
        header = {
            "alg": "RS256",
            "typ": "JWT",
            "x5c": [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()],
        }
        claims = {
            "iss": self.issuer, "sub": user, "aud": self.service,
            "exp": now + 300, "nbf": now - 10, "iat": now, "jti": f"{now}-{user}-{next(self._serial)}",
            "access": access,
        }
        signing_input = _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        sig = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + _b64url(sig)

    def grant(self, query: dict, user: str) -> list[dict]:
        if self.revoke_after is not None and len(self.requests) > self.revoke_after:
            return []
        access = []
        for scope in query.get("scope", []):
            kind, name, actions = scope.split(":")[0], ":".join(scope.split(":")[1:-1]), scope.split(":")[-1]
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        return access


@contextlib.contextmanager
def running_token_server(server: TokenServer):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            parsed = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(parsed.query)
            user = _basic_user(self.headers.get("Authorization", ""), server.users)
            server.requests.append({"user": user, "scopes": query.get("scope", [])})
            if user is None:
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"details": "bad credentials"}')
                return
            token = server.sign(user, server.grant(query, user))
            body = json.dumps({"token": token, "access_token": token, "expires_in": 300}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with loopback.serving(Handler) as url:
        yield url + "/token"


def _basic_user(header: str, users: dict):
    if not header.startswith("Basic "):
        return None
    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    return user if users.get(user) == password else None
