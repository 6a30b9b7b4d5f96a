"""Generate the ``system.log`` policy that masks tool arguments in OPA's decision log, as a bundle.

OPA logs every decision's ``input`` verbatim, so without a mask the tool arguments regogate sends
end up in the decision log in clear. The generated package follows ``--log-args``, like regogate's
own audit log:

- ``hash`` replaces ``/input/tool/arguments`` with ``{"sha256": <hex>}``, the SHA-256 of the
  arguments' ``json.marshal``; for plain ASCII arguments it equals the audit log's ``args_hash``;
- ``none`` erases ``/input/tool/arguments``;
- ``full`` leaves them.

Every mode also drops (``data.system.log.drop``) the decision-log events of ``data.system.bundles``
queries: regogate reads the active bundle revisions there every second, and those reads decide nothing.
In a mask policy ``input`` is the decision-log event, so the call's arguments are at
``input.input.tool.arguments``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Final

from regogate.converters._bundle import GENERATOR, Bundle, manifest_bytes
from regogate.core import LOG_ARGS, LogArgs

#: The bundle root; OPA reads the mask at ``data.system.log.mask`` and the drop rule at ``.drop``.
MASK_ROOT: Final = "system/log"
ARGUMENTS_POINTER: Final = "/input/tool/arguments"
#: regogate's revision probes: ``GET /v1/data/system/bundles``.
PROBE_PATH: Final = "system/bundles"
#: The arguments the generated tests mask, with their canonical JSON's SHA-256 (as in the audit log).
_SAMPLE_ARGUMENTS: Final = {"command": "pytest", "packages": ["requests"], "token": "s3cret"}

_DESCRIPTIONS: Final[dict[LogArgs, str]] = {
    "hash": "Tool arguments in OPA's decision log are replaced by the SHA-256 of their JSON (--log-args hash)",
    "none": "Tool arguments are erased from OPA's decision log (--log-args none)",
    "full": "Tool arguments stay in OPA's decision log in clear (--log-args full)",
}


def _check(log_args: str) -> LogArgs:
    if log_args not in LOG_ARGS:
        raise ValueError(f"log_args must be one of {', '.join(LOG_ARGS)}, not {log_args!r}")
    return log_args


def _sample_hash() -> str:
    canonical = json.dumps(_SAMPLE_ARGUMENTS, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def generate_mask(log_args: str) -> str:
    """The Rego of package ``system.log`` for ``log_args`` (``hash``, ``none`` or ``full``); ``opa fmt`` clean.

    Raises:
        ValueError: ``log_args`` is not one of ``hash``, ``none``, ``full``.
    """
    mode = _check(log_args)
    pointer = json.dumps(ARGUMENTS_POINTER)
    lines = [
        "# METADATA",
        "# title: regogate decision-log mask",
        f"# description: {_DESCRIPTIONS[mode]}",
        "# custom:",
        f"#   generator: {GENERATOR}",
        f"#   log_args: {mode}",
        "package system.log",
        "",
    ]
    if mode == "hash":
        lines += [
            "# METADATA",
            "# title: hash_arguments",
            "# description: Replaces the call's tool arguments with the SHA-256 of their JSON",
            "mask contains {",
            '\t"op": "upsert",',
            f'\t"path": {pointer},',
            '\t"value": {"sha256": crypto.sha256(json.marshal(arguments))},',
            "} if {",
            "\targuments := input.input.tool.arguments",
            "}",
            "",
        ]
    elif mode == "none":
        lines += [
            "# METADATA",
            "# title: erase_arguments",
            "# description: Erases the call's tool arguments",
            f"mask contains {pointer} if input.input.tool.arguments",
            "",
        ]
    lines += [
        "# METADATA",
        "# title: drop_revision_probes",
        "# description: regogate's reads of the active bundle revisions decide nothing; they are not logged",
        f"drop if input.path == {json.dumps(PROBE_PATH)}",
    ]
    return "\n".join(lines) + "\n"


def generate_mask_tests(log_args: str) -> str:
    """``opa test`` cases for ``generate_mask(log_args)``, in package ``system.log_test``.

    Raises:
        ValueError: ``log_args`` is not one of ``hash``, ``none``, ``full``.
    """
    mode = _check(log_args)
    call_event = json.dumps(
        {
            "path": "regogate/gate/decision",
            "input": {"kind": "tools/call", "tool": {"name": "uv-run", "arguments": _SAMPLE_ARGUMENTS}},
        },
        sort_keys=True,
    )
    list_event = json.dumps({"path": "regogate/gate/decision", "input": {"kind": "tools/list", "tools": []}})
    pointer = json.dumps(ARGUMENTS_POINTER)
    lines = [
        "package system.log_test",
        "",
        "import data.system.log",
        "",
        f"call_event := {call_event}",
        "",
        f"list_event := {list_event}",
        "",
    ]
    if mode == "hash":
        expected = json.dumps({"op": "upsert", "path": ARGUMENTS_POINTER, "value": {"sha256": _sample_hash()}})
        lines += [
            "test_mask_hashes_call_arguments if {",
            f"\tlog.mask == {{{expected}}} with input as call_event",
            "}",
            "",
        ]
    elif mode == "none":
        lines += [
            "test_mask_erases_call_arguments if {",
            f"\tlog.mask == {{{pointer}}} with input as call_event",
            "}",
            "",
        ]
    else:
        lines += [
            "test_mask_leaves_call_arguments if {",
            "\tnot log.mask with input as call_event",
            "}",
            "",
        ]
    if mode != "full":
        lines += [
            "test_mask_leaves_list_decisions if {",
            "\tcount(log.mask) == 0 with input as list_event",
            "}",
            "",
        ]
    lines += [
        "test_drop_revision_probes if {",
        f'\tlog.drop with input as {{"path": {json.dumps(PROBE_PATH)}}}',
        "}",
        "",
        "test_drop_keeps_decisions if {",
        "\tnot log.drop with input as call_event",
        "}",
    ]
    return "\n".join(lines) + "\n"


def mask_bundle(log_args: str) -> Bundle:
    """The bundle of the mask for ``log_args``: root ``system/log``, with its tests.

    Raises:
        ValueError: ``log_args`` is not one of ``hash``, ``none``, ``full``.
    """
    mode = _check(log_args)
    files = {
        f"{MASK_ROOT}/mask.rego": generate_mask(mode).encode(),
        f"{MASK_ROOT}/mask_test.rego": generate_mask_tests(mode).encode(),
    }
    digest = hashlib.sha256(b"\0".join([GENERATOR.encode(), *files.values()])).hexdigest()[:16]
    revision = f"mask-{mode}-{digest}"
    files[".manifest"] = manifest_bytes(
        revision, [MASK_ROOT, f"{MASK_ROOT}_test"], {"generator": GENERATOR, "log_args": mode}
    )
    return Bundle(files=dict(sorted(files.items())), revision=revision)
