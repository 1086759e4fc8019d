"""The fake GitHub served over TLS, with a self-signed certificate for 127.0.0.1, for the tests and benches that
need HTTPS as production has it (a CA bundle to load, a handshake, a certificate to verify)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from pathlib import Path

from tests.fakes.github import FakeGitHub


def serve_over_tls(fake: FakeGitHub, folder: Path, *, rsa: bool = False) -> Path:
    """Wrap the fake's listening socket (before it serves) in TLS with a new certificate for 127.0.0.1, and turn
    its URLs to https. Returns a CA bundle in `folder` that trusts it: certifi's roots and the certificate (as large
    a bundle to load as GitHub's clients load). An EC key unless `rsa` (a 2048-bit RSA key, a costlier handshake)."""
    import certifi
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric import rsa as rsa_keys
    from cryptography.x509.oid import NameOID

    key: ec.EllipticCurvePrivateKey | rsa_keys.RSAPrivateKey
    if rsa:
        key = rsa_keys.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certificate_pem = certificate.public_bytes(serialization.Encoding.PEM)
    (folder / "cert.pem").write_bytes(certificate_pem)
    (folder / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    bundle = folder / "bundle.pem"
    bundle.write_bytes(Path(certifi.where()).read_bytes() + certificate_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    server = fake._server
    server.socket = context.wrap_socket(server.socket, server_side=True)
    fake.web_url = fake.web_url.replace("http://", "https://", 1)
    fake.url = fake.url.replace("http://", "https://", 1)
    return bundle
