"""Assemble converted Rego into an OPA bundle, sign it, and write it as a directory or a ``.tar.gz``, atomically.

Signing runs the real ``opa sign`` on the bundle's files, so the ``.signatures.json`` it adds is
exactly what OPA's ``--verification-key`` (or a bundle's ``signing.keyid``) verifies.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final

from regogate.converters._load import parse_policy
from regogate.converters._model import Policy
from regogate.converters._rego import generate_rego
from regogate.converters._testgen import generate_tests
from regogate.core import ConfigError

GENERATOR = "regogate 0.1.0"
SIGNATURES: Final = ".signatures.json"
#: ``opa sign`` hashes a few small files and signs once; it exits well within this.
SIGN_TIMEOUT: Final = 30.0


@dataclass(frozen=True)
class Bundle:
    """The files of an OPA bundle, by path inside the bundle (``.manifest`` included)."""

    files: dict[str, bytes]
    revision: str

    @property
    def manifest(self) -> dict[str, object]:
        """The parsed ``.manifest``."""
        loaded: dict[str, object] = json.loads(self.files[".manifest"])
        return loaded


def manifest_bytes(revision: str, roots: list[str], metadata: dict[str, object]) -> bytes:
    """A bundle's ``.manifest``: revision, roots, Rego v1 and metadata, as stable JSON."""
    document = {"revision": revision, "roots": roots, "rego_version": 1, "metadata": metadata}
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()


def policy_bundle(policy: Policy, text: str, *, tests: bool = True) -> Bundle:
    """The bundle of one converted policy: its package, its generated tests and a manifest.

    ``tests=False`` leaves the tests out (the revision is the same): the bundle a running OPA loads,
    which compiles and holds every file it is given but never runs a test.
    """
    base = f"regogate/policies/{policy.server_id}"
    revision = hashlib.sha256("\0".join([GENERATOR, policy.source, policy.server_id, text]).encode()).hexdigest()[:32]
    files = {f"{base}/policy.rego": generate_rego(policy).encode()}
    if tests:
        files[f"{base}/policy_test.rego"] = generate_tests(policy).encode()
    files[".manifest"] = manifest_bytes(
        revision,
        [base, f"{base}_test"],
        {"generator": GENERATOR, "source": policy.source, "server_id": policy.server_id},
    )
    return Bundle(files=dict(sorted(files.items())), revision=revision)


def convert(text: str, *, source: str, server_id: str) -> Bundle:
    """Validate policy text and convert it; a pure function of its arguments.

    Raises:
        PolicySourceError: the policy is not valid; lists every problem.
    """
    return policy_bundle(parse_policy(text, source=source, server_id=server_id), text)


def gate_bundle(*, tests: bool = True) -> Bundle:
    """The hand-written gate shipped with regogate (``rego/``), as a bundle; ``tests=False`` as in ``policy_bundle``."""
    root = resources.files("regogate.rego")
    files: dict[str, bytes] = {".manifest": root.joinpath(".manifest").read_bytes()}
    gate_dir = root.joinpath("regogate").joinpath("gate")
    for entry in sorted(gate_dir.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".rego") and (tests or not entry.name.endswith("_test.rego")):
            files[f"regogate/gate/{entry.name}"] = entry.read_bytes()
    revision = json.loads(files[".manifest"])["revision"]
    return Bundle(files=files, revision=str(revision))


def sign_bundle(
    bundle: Bundle,
    *,
    opa_bin: str,
    signing_key: Path,
    algorithm: str = "RS256",
    claims_file: Path | None = None,
) -> Bundle:
    """The bundle with a ``.signatures.json`` made by ``opa sign`` (an old signature is replaced).

    ``signing_key`` is a PEM private key (RSA or ECDSA) for ``algorithm`` (``RS256``, ``ES256``, ...).

    Raises:
        ConfigError: the key cannot be read or ``opa sign`` fails (its message is quoted).
    """
    if not signing_key.is_file():
        raise ConfigError(f"--signing-key {signing_key}: no such file")
    unsigned = {name: content for name, content in bundle.files.items() if name != SIGNATURES}
    with tempfile.TemporaryDirectory(prefix="regogate-sign-") as tmp:
        root = Path(tmp) / "bundle"
        for name, content in unsigned.items():
            target = root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        argv = [opa_bin, "sign", "--bundle", ".", "--output-file-path", ".", "--signing-alg", algorithm]
        argv += ["--signing-key", str(signing_key.absolute())]
        if claims_file is not None:
            argv += ["--claims-file", str(claims_file.absolute())]
        try:
            # Run inside the bundle so the signed file names are the bundle's own paths.
            done = subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=SIGN_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ConfigError(f"cannot run opa sign ({opa_bin}): {exc}") from exc
        if done.returncode != 0:
            raise ConfigError(f"opa sign failed: {(done.stderr or done.stdout).strip()}")
        signatures = (root / SIGNATURES).read_bytes()
    files = {**unsigned, SIGNATURES: signatures}
    return Bundle(files=dict(sorted(files.items())), revision=bundle.revision)


def write_bundle(bundle: Bundle, out: Path) -> None:
    """Write the bundle to ``out``: a ``.tar.gz`` file, or else a directory, replaced as a whole.

    Nothing is left half-written: the output is built beside its destination and renamed into place.
    """
    out = out.absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.name.endswith((".tar.gz", ".tgz")):
        data = _tarball(bundle)
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            # A bundle is no secret, and a bundle server's workers must be able to read it.
            os.chmod(tmp, 0o644)
            os.replace(tmp, out)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        for name, content in bundle.files.items():
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        os.chmod(staging, 0o755)
        if out.exists():
            old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old."))
            os.replace(out, old / "bundle")
            os.replace(staging, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _tarball(bundle: Bundle) -> bytes:
    """A byte-for-byte reproducible gzip tarball: fixed order, times, owners and modes."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in bundle.files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(content), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(content))
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw.getvalue())
    return packed.getvalue()
