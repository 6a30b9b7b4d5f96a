"""The test images, built on this machine from files already here: no registry is reachable in CI.

``python -m tests.images`` (run by scripts/with-docker.sh) builds each image that is missing or stale;
an image's ``org.regogate.inputs`` label is the hash of everything that went into it, so a warm cache
costs one ``inspect`` per image. Every image is ``FROM scratch`` plus the host's own binaries and the
shared libraries ``ldd`` lists for them:

- ``regogate-test/opa``: the pinned static OPA at ``/opa``, user 1000, entrypoint ``/opa``, command
  ``run``: the layout of the official ``-static`` image, so docker-compose.yml runs it unchanged;
- ``regogate-test/redis``: Debian's redis-server and redis-cli, working directory ``/data``;
- ``regogate-test/nginx``: Debian's nginx with the official image's ``conf.d`` include, for the
  compose file's bundle server;
- ``regogate-test/regogate``: Debian's python3.11 and regogate installed from a wheel built from
  this checkout, plus the MCP SDK for the stand-in server a test runs beside it; entrypoint ``regogate``. Its dependencies are a base image of their own
  (``regogate-test/python:deps``), so a source change rebuilds one small layer.
- ``regogate-test/gateway``: that image laid out as deploy/gateway/Dockerfile's (which needs Docker
  Hub and PyPI): entrypoint ``regogate serve``, ``mcp-server-time`` and ``python`` on the path, an
  unprivileged user, ``XDG_STATE_HOME`` under /tmp; docker-compose.yml's ``gateway`` profile runs it.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parent.parent

OPA_VERSION: Final = "1.22.2"
OPA_IMAGE: Final = f"regogate-test/opa:{OPA_VERSION}-static"
REDIS_IMAGE: Final = "regogate-test/redis:debian"
NGINX_IMAGE: Final = "regogate-test/nginx:debian"
REGOGATE_IMAGE: Final = "regogate-test/regogate:checkout"
GATEWAY_IMAGE: Final = "regogate-test/gateway:checkout"
#: Debian's Python with regogate's dependencies: rebuilt only when they change, so a source edit is a small layer.
PYTHON_IMAGE: Final = "regogate-test/python:deps"
LABEL: Final = "org.regogate.inputs"
#: A cold build of the largest image (regogate: a wheel and its dependencies) takes well under this.
BUILD_TIMEOUT: Final = 600

PASSWD: Final = "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:1000:1000:nonroot:/home/nonroot:/sbin/nologin\n"
GROUP: Final = "root:x:0:\nnonroot:x:1000:\n"
NGINX_CONF: Final = """\
user root root;
worker_processes 1;
pid /run/nginx.pid;
error_log /dev/stderr warn;
events { worker_connections 256; }
http {
  types { text/html html; application/json json; application/gzip gz; }
  default_type application/octet-stream;
  access_log /dev/stdout;
  client_body_temp_path /tmp/client_body;
  proxy_temp_path /tmp/proxy;
  fastcgi_temp_path /tmp/fastcgi;
  uwsgi_temp_path /tmp/uwsgi;
  scgi_temp_path /tmp/scgi;
  include /etc/nginx/conf.d/*.conf;
}
"""
PYTHON_PATH: Final = "/usr/local/lib/regogate"
TIME_SCRIPT: Final = "#!/usr/bin/python3.11\nimport sys\n\nfrom mcp_server_time import main\n\nsys.exit(main())\n"
REGOGATE_SCRIPT: Final = (
    "#!/usr/bin/python3.11\nimport sys\n\nfrom regogate.proxy.cli._main import main\n\nsys.exit(main())\n"
)


@dataclass
class Rootfs:
    """What goes into an image: host files (at their own or another path), text files, empty dirs."""

    files: dict[str, Path] = field(default_factory=dict)
    texts: dict[str, tuple[str, int]] = field(default_factory=dict)
    dirs: dict[str, int] = field(default_factory=dict)

    def binary(self, path: str, at: str | None = None) -> None:
        """A host executable and the shared libraries it loads."""
        self.files[at or path] = Path(path).resolve()
        for library in shared_libraries(path):
            self.files.setdefault(library, Path(library).resolve())

    def tree(self, host: Path, at: str) -> None:
        """A host directory, symlinks followed, caches left out."""
        for path in sorted(host.rglob("*")):
            if "__pycache__" in path.parts or not path.is_file():
                continue
            self.files[f"{at}/{path.relative_to(host)}"] = path.resolve()
            if path.suffix == ".so" or ".so." in path.name:
                for library in shared_libraries(str(path)):
                    self.files.setdefault(library, Path(library).resolve())

    def digest(self, extra: str) -> str:
        digest = hashlib.sha256(Path(__file__).read_bytes() + extra.encode())
        for name in sorted(self.files):
            digest.update(f"{name}\0{_file_hash(self.files[name])}\0".encode())
        for name in sorted(self.texts):
            digest.update(f"{name}\0{self.texts[name]}\0".encode())
        digest.update(repr(sorted(self.dirs.items())).encode())
        return digest.hexdigest()

    def write(self, tar: tarfile.TarFile, prefix: str) -> None:
        parents = {str(Path(name).parent) for name in [*self.files, *self.texts]}
        for directory in sorted({p for name in parents for p in _ancestors(name)} | set(self.dirs)):
            info = tarfile.TarInfo(f"{prefix}{directory}")
            info.type, info.mode = tarfile.DIRTYPE, self.dirs.get(directory, 0o755)
            tar.addfile(info)
        for name, host in sorted(self.files.items()):
            info = tar.gettarinfo(str(host), f"{prefix}{name}")
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            with host.open("rb") as data:
                tar.addfile(info, data)
        for name, (text, mode) in sorted(self.texts.items()):
            body = text.encode()
            info = tarfile.TarInfo(f"{prefix}{name}")
            info.size, info.mode = len(body), mode
            tar.addfile(info, io.BytesIO(body))


def _ancestors(directory: str) -> Iterator[str]:
    path = Path(directory)
    while str(path) not in ("/", "."):
        yield str(path)
        path = path.parent


def _file_hash(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_mode:o}"


def shared_libraries(binary: str) -> list[str]:
    """The absolute paths ``ldd`` lists for an ELF file (none for a static one)."""
    done = subprocess.run(["ldd", binary], capture_output=True, text=True, timeout=30, check=False)
    return re.findall(r"(/\S+) \(0x", done.stdout)


def _base(rootfs: Rootfs) -> None:
    rootfs.texts["/etc/passwd"] = (PASSWD, 0o644)
    rootfs.texts["/etc/group"] = (GROUP, 0o644)
    rootfs.dirs["/tmp"] = 0o1777
    certs = Path("/etc/ssl/certs/ca-certificates.crt")
    if certs.is_file():
        rootfs.files[str(certs)] = certs.resolve()


def opa_rootfs(opa_binary: str) -> tuple[Rootfs, str]:
    rootfs = Rootfs()
    _base(rootfs)
    rootfs.files["/opa"] = Path(opa_binary).resolve()
    config = 'USER 1000:1000\nENTRYPOINT ["/opa"]\nCMD ["run"]\n'
    return rootfs, config


def redis_rootfs() -> tuple[Rootfs, str]:
    rootfs = Rootfs()
    _base(rootfs)
    rootfs.binary("/usr/bin/redis-server")
    rootfs.binary("/usr/bin/redis-cli")
    rootfs.dirs["/data"] = 0o777
    config = 'ENV PATH=/usr/local/bin:/usr/bin:/bin\nWORKDIR /data\nCMD ["redis-server"]\n'
    return rootfs, config


def nginx_rootfs() -> tuple[Rootfs, str]:
    rootfs = Rootfs()
    _base(rootfs)
    rootfs.binary("/usr/sbin/nginx")
    rootfs.texts["/etc/nginx/nginx.conf"] = (NGINX_CONF, 0o644)
    for directory in ("/etc/nginx/conf.d", "/run", "/var/log/nginx", "/var/lib/nginx", "/usr/share/nginx/html"):
        rootfs.dirs[directory] = 0o755
    config = 'ENV PATH=/usr/sbin:/usr/bin\nCMD ["nginx", "-g", "daemon off;"]\n'
    return rootfs, config


def python_rootfs(site: Path) -> tuple[Rootfs, str]:
    rootfs = Rootfs()
    _base(rootfs)
    rootfs.binary("/usr/bin/python3.11")
    rootfs.tree(Path("/usr/lib/python3.11"), "/usr/lib/python3.11")
    rootfs.tree(site, PYTHON_PATH)
    config = f"ENV PATH=/usr/local/bin:/usr/bin:/bin PYTHONPATH={PYTHON_PATH} PYTHONDONTWRITEBYTECODE=1\n"
    return rootfs, config


def regogate_rootfs(site: Path) -> tuple[Rootfs, str]:
    rootfs = Rootfs()
    rootfs.tree(site, PYTHON_PATH)
    rootfs.texts["/usr/local/bin/regogate"] = (REGOGATE_SCRIPT, 0o755)
    return rootfs, 'ENTRYPOINT ["/usr/local/bin/regogate"]\nCMD ["--help"]\n'


def gateway_rootfs(site: Path) -> tuple[Rootfs, str]:
    """deploy/gateway/Dockerfile's layout on top of the regogate image: the MCP server in ``site``."""
    rootfs = Rootfs()
    rootfs.tree(site, PYTHON_PATH)
    rootfs.texts["/usr/local/bin/mcp-server-time"] = (TIME_SCRIPT, 0o755)
    rootfs.files["/usr/bin/python"] = Path("/usr/bin/python3.11").resolve()  # the compose healthcheck's command
    config = (
        "USER 1000:1000\nENV XDG_STATE_HOME=/tmp/regogate-state\n"
        'ENTRYPOINT ["/usr/local/bin/regogate", "serve"]\nCMD ["--help"]\n'
    )
    return rootfs, config


def _time_server_requirements() -> list[str]:
    """mcp-server-time as tests/servers/requirements.txt pins it, and its two small dependencies."""
    pins = (ROOT / "tests" / "servers" / "requirements.txt").read_text(encoding="utf-8").splitlines()
    return [line for line in pins if line.startswith("mcp-server-time==")] + ["tzdata", "tzlocal"]


def _dependencies_digest() -> str:
    """The hash of the recipe and of regogate's declared runtime dependencies."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = [*project["dependencies"], *_test_server_requirements()]
    return hashlib.sha256(Path(__file__).read_bytes() + repr(requirements).encode()).hexdigest()


def _source_digest() -> str:
    """The hash of what the wheel is built from: the installed packages' folders and pyproject.toml."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for folder in ("core", "proxy", "converters", "rego", "testing"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(f"{path.relative_to(ROOT)}\0".encode() + path.read_bytes())
    digest.update((ROOT / "pyproject.toml").read_bytes())
    return digest.hexdigest()


def _wheel(out: Path) -> Path:
    """The wheel built from this checkout."""
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)], check=True, timeout=BUILD_TIMEOUT)
    (wheel,) = out.glob("regogate-*.whl")
    return wheel


def _pip_install(target: Path, *requirements: str, deps: bool = True) -> None:
    flags = [] if deps else ["--no-deps"]
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-compile", *flags, "--target", str(target), *requirements],
        check=True,
        timeout=BUILD_TIMEOUT,
    )


def _test_server_requirements() -> list[str]:
    """The MCP SDK, as the dev extra pins it: the stand-in server runs beside regogate in the image."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [r for r in project["optional-dependencies"]["dev"] if r.startswith("mcp")]


def _build_python(client: Any, inputs: str, wheel: Path, tmp: Path) -> None:
    site = tmp / "deps"
    # pip evaluates markers for the host's Python; Debian's 3.11.2 also needs redis-py's async-timeout.
    _pip_install(site, str(wheel), "async-timeout", *_test_server_requirements())
    for installed in [*site.glob("regogate"), *site.glob("regogate-*.dist-info")]:
        shutil.rmtree(installed)
    rootfs, config = python_rootfs(site)
    _build(client, PYTHON_IMAGE, rootfs, config, inputs)


def _label(client: Any, image: str) -> str | None:
    import docker.errors

    try:
        labels = client.images.get(image).labels or {}
    except docker.errors.ImageNotFound:
        return None
    value = labels.get(LABEL)
    return str(value) if value is not None else None


def _build(client: Any, image: str, rootfs: Rootfs, config: str, inputs: str, *, base: str = "scratch") -> None:
    dockerfile = f"FROM {base}\nCOPY rootfs/ /\n{config}LABEL {LABEL}={inputs}\n".encode()
    with tempfile.TemporaryFile() as context:
        with tarfile.open(fileobj=context, mode="w") as tar:
            info = tarfile.TarInfo("Dockerfile")
            info.size = len(dockerfile)
            tar.addfile(info, io.BytesIO(dockerfile))
            rootfs.write(tar, "rootfs")
        context.seek(0)
        client.images.build(
            fileobj=context, custom_context=True, tag=image, rm=True, forcerm=True, timeout=BUILD_TIMEOUT
        )


def build_all(client: Any, opa_binary: str) -> list[str]:
    """Build every stale or missing image; returns the names it built."""
    built = []
    plans: list[tuple[str, Callable[[], tuple[Rootfs, str]]]] = [
        (OPA_IMAGE, lambda: opa_rootfs(opa_binary)),
        (REDIS_IMAGE, redis_rootfs),
        (NGINX_IMAGE, nginx_rootfs),
    ]
    for image, plan in plans:
        rootfs, config = plan()
        inputs = rootfs.digest(config)
        if _label(client, image) != inputs:
            _build(client, image, rootfs, config, inputs)
            built.append(image)
    dependencies = _dependencies_digest()
    source = hashlib.sha256(f"{dependencies}{_source_digest()}".encode()).hexdigest()
    stale_base = _label(client, PYTHON_IMAGE) != dependencies
    if stale_base or _label(client, REGOGATE_IMAGE) != source:
        with tempfile.TemporaryDirectory(prefix="regogate-image-") as name:
            tmp = Path(name)
            wheel = _wheel(tmp / "wheel")
            if stale_base:
                _build_python(client, dependencies, wheel, tmp)
                built.append(PYTHON_IMAGE)
            _pip_install(tmp / "app", str(wheel), deps=False)
            rootfs, config = regogate_rootfs(tmp / "app")
            _build(client, REGOGATE_IMAGE, rootfs, config, source, base=PYTHON_IMAGE)
        built.append(REGOGATE_IMAGE)
    gateway = hashlib.sha256(f"{source}{_time_server_requirements()}".encode()).hexdigest()
    if _label(client, GATEWAY_IMAGE) != gateway:
        with tempfile.TemporaryDirectory(prefix="regogate-image-") as name:
            site = Path(name) / "time"
            # No dependencies: the regogate image below has the MCP SDK and pydantic the server imports.
            _pip_install(site, *_time_server_requirements(), deps=False)
            rootfs, config = gateway_rootfs(site)
            _build(client, GATEWAY_IMAGE, rootfs, config, gateway, base=REGOGATE_IMAGE)
        built.append(GATEWAY_IMAGE)
    if built:
        client.images.prune(filters={"dangling": True})
    return built


def main() -> int:
    import docker

    from tests.conftest import find_opa_binary

    client = docker.from_env(timeout=BUILD_TIMEOUT)
    try:
        built = build_all(client, find_opa_binary())
    finally:
        client.close()
    names = ", ".join(built) if built else "none (all cached)"
    sys.stderr.write(f"test images built: {names}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
