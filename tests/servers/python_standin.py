"""A stand-in for the "Python MCP server" of the seed policy (its npm package cannot be installed here).

It exposes the same tool names, categories and required arguments, and does nothing real: each
tool reports what it would have run. `pip-install` of a package named `fail-me` returns a tool
error, so tests can watch a rate-limit reservation roll back. Written for regogate's tests.
"""

from __future__ import annotations

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

server = MCPServer("python-standin", version="1.0.0")

WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False)
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True)
READ = ToolAnnotations(read_only_hint=True)


def _ran(command: str) -> str:
    return f"(stand-in) would run: {command}"


@server.tool(name="pip-install", annotations=WRITE, description="Runs pip install (stand-in).")
def pip_install(packages: list[str]) -> str:
    if "fail-me" in packages:
        raise ToolError("pip failed: no matching distribution for fail-me")
    return _ran("pip install " + " ".join(packages))


@server.tool(name="uv-install", annotations=WRITE, description="Runs uv pip install (stand-in).")
def uv_install(packages: list[str]) -> str:
    return _ran("uv pip install " + " ".join(packages))


@server.tool(name="conda", annotations=DESTRUCTIVE, description="Runs conda commands (stand-in).")
def conda(command: str) -> str:
    return _ran(f"conda {command}")


@server.tool(name="poetry", annotations=DESTRUCTIVE, description="Runs Poetry commands (stand-in).")
def poetry(command: str) -> str:
    return _ran(f"poetry {command}")


@server.tool(name="uv-run", description="Runs a command in a uv-managed environment (stand-in).")
def uv_run(command: str, cwd: str | None = None) -> str:
    return _ran(f"uv run {command}" + (f" (in {cwd})" if cwd else ""))


def _read_only(name: str) -> None:
    @server.tool(name=name, annotations=READ, description=f"Runs {name} (stand-in, read-only).")
    def tool(path: str = ".") -> str:
        return _ran(f"{name} {path}")


for _name in ("black", "mypy", "pip-audit", "pip-list", "pip-show", "pyenv", "pytest", "ruff-check", "ruff-format"):
    _read_only(_name)


if __name__ == "__main__":
    server.run("stdio")
