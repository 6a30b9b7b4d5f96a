"""Assemble converted Rego into an OPA bundle and write it as a directory or a ``.tar.gz``, atomically."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from regogate.converters._load import parse_policy
from regogate.converters._model import Policy
from regogate.converters._rego import generate_rego
from regogate.converters._testgen import generate_tests

GENERATOR = "regogate 0.1.0"


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


def _manifest(revision: str, roots: list[str], metadata: dict[str, object]) -> bytes:
    document = {"revision": revision, "roots": roots, "rego_version": 1, "metadata": metadata}
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()


def policy_bundle(policy: Policy, text: str) -> Bundle:
    """The bundle of one converted policy: its package, its generated tests and a manifest."""
    base = f"regogate/policies/{policy.server_id}"
    revision = hashlib.sha256("\0".join([GENERATOR, policy.source, policy.server_id, text]).encode()).hexdigest()[:32]
    files = {
        f"{base}/policy.rego": generate_rego(policy).encode(),
        f"{base}/policy_test.rego": generate_tests(policy).encode(),
    }
    files[".manifest"] = _manifest(
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


def gate_bundle() -> Bundle:
    """The hand-written gate shipped with regogate (``rego/``), as a bundle."""
    root = resources.files("regogate.rego")
    files: dict[str, bytes] = {".manifest": root.joinpath(".manifest").read_bytes()}
    gate_dir = root.joinpath("regogate").joinpath("gate")
    for entry in sorted(gate_dir.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".rego"):
            files[f"regogate/gate/{entry.name}"] = entry.read_bytes()
    revision = json.loads(files[".manifest"])["revision"]
    return Bundle(files=files, revision=str(revision))


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
