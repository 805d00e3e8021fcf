"""Keys and certificates made with the `openssl` CLI (no Python crypto dependency is needed for that)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {result.stderr.strip()}")


def rsa_keypair(directory: Path, name: str) -> tuple[Path, Path]:
    """`name.key` (PKCS#8 private key) and `name.pub` (its public key), e.g. for signing service-account tokens."""
    key, pub = directory / f"{name}.key", directory / f"{name}.pub"
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(key), cwd=directory)
    _openssl("pkey", "-in", str(key), "-pubout", "-out", str(pub), cwd=directory)
    return key, pub


def serving_certificate(directory: Path, name: str, ip: str = "127.0.0.1") -> tuple[Path, Path, Path]:
    """A CA and a server certificate it signs for `ip`: returns (ca.crt, name.crt, name.key).

    A separate CA (rather than one self-signed leaf) is what webhook clients expect in `caBundle`: Go rejects a
    leaf used as its own root when it is not marked as a CA. ECDSA P-256 keys: the API server opens hundreds of
    webhook connections when a ReplicaSet creates pods in a burst, and an RSA handshake costs a Python server
    about ten times as much.
    """
    ca_key, ca_crt = directory / f"{name}-ca.key", directory / f"{name}-ca.crt"
    key, csr, crt = directory / f"{name}.key", directory / f"{name}.csr", directory / f"{name}.crt"
    extensions = directory / f"{name}.ext"
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
        "-subj", f"/CN={name}-ca", "-keyout", str(ca_key), "-out", str(ca_crt),
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", f"/CN={ip}",
        "-keyout", str(key), "-out", str(csr),
        cwd=directory,
    )  # fmt: skip
    extensions.write_text(
        f"subjectAltName=IP:{ip}\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    )
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key), "-CAcreateserial",
        "-days", "2", "-extfile", str(extensions), "-out", str(crt),
        cwd=directory,
    )  # fmt: skip
    return ca_crt, crt, key
