"""Generate the ``system.log`` policy that masks tool arguments in OPA's decision log, as a bundle.

OPA logs every decision's ``input`` and ``result`` verbatim, so without a mask the tool arguments
regogate sends end up in the decision log in clear. The generated package follows ``--log-args``,
like regogate's own audit log:

- ``hash`` erases ``/input/tool/arguments``; the event keeps ``input.tool.arguments_hash``, the keyed
  hash regogate computed (``hmac-sha256:<hex>``), which is the audit log's ``args_hash``;
- ``none`` erases both;
- ``full`` leaves them.

Under ``hash`` and ``none`` the mask also removes what the *result* repeats of the arguments: the
``cost`` of each rate limit (an ``increment_from`` amount is an argument's value) and the message of
any reason that quotes an argument's name or value (schema-validation messages do), which becomes
``WITHHELD``.

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
HASH_POINTER: Final = "/input/tool/arguments_hash"
#: What a reason's message becomes in the decision log when it quotes the call's arguments.
WITHHELD: Final = "(withheld: it quotes the call's arguments; --log-args full logs it)"
#: regogate's revision probes: ``GET /v1/data/system/bundles``.
PROBE_PATH: Final = "system/bundles"
#: The arguments the generated tests mask.
_SAMPLE_ARGUMENTS: Final = {"command": "pytest", "packages": ["requests"], "token": "s3cret", "amount": 4821}
_SAMPLE_HASH: Final = "hmac-sha256:0123"

_DESCRIPTIONS: Final[dict[LogArgs, str]] = {
    "hash": "Tool arguments in OPA's decision log are erased; their keyed hash stays (--log-args hash)",
    "none": "Tool arguments are erased from OPA's decision log (--log-args none)",
    "full": "Tool arguments stay in OPA's decision log in clear (--log-args full)",
}


def _check(log_args: str) -> LogArgs:
    if log_args not in LOG_ARGS:
        raise ValueError(f"log_args must be one of {', '.join(LOG_ARGS)}, not {log_args!r}")
    return log_args


def generate_mask(log_args: str) -> str:
    """The Rego of package ``system.log`` for ``log_args`` (``hash``, ``none`` or ``full``); ``opa fmt`` clean.

    Raises:
        ValueError: ``log_args`` is not one of ``hash``, ``none``, ``full``.
    """
    mode = _check(log_args)
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
    erased = [ARGUMENTS_POINTER] if mode == "hash" else [ARGUMENTS_POINTER, HASH_POINTER] if mode == "none" else []
    for target in erased:
        field = target.rsplit("/", 1)[1]
        lines += [
            "# METADATA",
            f"# title: erase_{field}",
            f"# description: Erases {target} from the decision log",
            f"mask contains {json.dumps(target)} if input.input.tool.{field}",
            "",
        ]
    if mode != "full":
        lines += [
            "# METADATA",
            "# title: hide_costs",
            "# description: A rate limit's cost may be an argument's value (increment_from); it is left out",
            "mask contains {",
            '\t"op": "upsert",',
            '\t"path": "/result/rate_limits",',
            '\t"value": [object.remove(limit, ["cost"]) | some limit in input.result.rate_limits],',
            "} if {",
            "\tsome limit in input.result.rate_limits",
            '\t"cost" in object.keys(limit)',
            "}",
            "",
            "# METADATA",
            "# title: withhold_quoting_reasons",
            "# description: A reason whose message quotes an argument's name or value keeps only its rule",
            "mask contains {",
            '\t"op": "upsert",',
            '\t"path": "/result/reasons",',
            '\t"value": [_reason(reason) | some reason in input.result.reasons],',
            "} if {",
            "\tsome reason in input.result.reasons",
            "\t_quotes_arguments(reason.message)",
            "}",
            "",
            '_reason(reason) := object.union(reason, {"message": ' + json.dumps(WITHHELD) + "}) if {",
            "\t_quotes_arguments(reason.message)",
            "}",
            "",
            "_reason(reason) := reason if not _quotes_arguments(reason.message)",
            "",
            "_fragments contains key if {",
            "\twalk(input.input.tool.arguments, [path, _])",
            "\tsome key in path",
            "\tis_string(key)",
            "}",
            "",
            "_fragments contains value if {",
            "\twalk(input.input.tool.arguments, [_, value])",
            "\tis_string(value)",
            "}",
            "",
            '_fragments contains sprintf("%v", [value]) if {',
            "\twalk(input.input.tool.arguments, [_, value])",
            "\tis_number(value)",
            "}",
            "",
            "_quotes_arguments(message) if {",
            "\tsome fragment in _fragments",
            "\tcount(fragment) > 1",
            "\tcontains(message, fragment)",
            "}",
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
    tool = {"name": "uv-run", "arguments": _SAMPLE_ARGUMENTS, "arguments_hash": _SAMPLE_HASH}
    call_event = json.dumps(
        {"path": "regogate/gate/decision", "input": {"kind": "tools/call", "tool": tool}}, sort_keys=True
    )
    result = {
        "allow": False,
        "rate_limits": [{"key": "uv-run/amount", "cost": 4821, "rule": "budget"}],
        "reasons": [
            {"rule": "schema", "message": "argument token is invalid"},
            {"rule": "policy", "message": "Denied by policy"},
        ],
    }
    decided_event = json.dumps(
        {"path": "regogate/gate/decision", "input": {"kind": "tools/call", "tool": tool}, "result": result},
        sort_keys=True,
    )
    list_event = json.dumps({"path": "regogate/gate/decision", "input": {"kind": "tools/list", "tools": []}})
    lines = [
        "package system.log_test",
        "",
        "import data.system.log",
        "",
        f"call_event := {call_event}",
        "",
        f"decided_event := {decided_event}",
        "",
        f"list_event := {list_event}",
        "",
    ]
    if mode == "full":
        lines += ["test_mask_leaves_calls if {", "\tnot log.mask with input as decided_event", "}", ""]
    else:
        erased = [ARGUMENTS_POINTER] if mode == "hash" else [ARGUMENTS_POINTER, HASH_POINTER]
        costs = json.dumps(
            {"op": "upsert", "path": "/result/rate_limits", "value": [{"key": "uv-run/amount", "rule": "budget"}]}
        )
        reasons = json.dumps(
            {
                "op": "upsert",
                "path": "/result/reasons",
                "value": [{"rule": "schema", "message": WITHHELD}, {"rule": "policy", "message": "Denied by policy"}],
            }
        )
        lines += [
            f"test_mask_erases_{mode}_call_arguments if {{",
            f"\tlog.mask == {_set_literal(erased)} with input as call_event",
            "}",
            "",
            "test_mask_hides_costs_and_quoting_reasons if {",
            "\tmasks := log.mask with input as decided_event",
            f"\t{costs} in masks",
            f"\t{reasons} in masks",
            "}",
            "",
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


def _set_literal(items: list[str]) -> str:
    """A Rego set of strings, ``{"a", "b"}``, for a generated test."""
    return "{" + ", ".join(json.dumps(item) for item in items) + "}"


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
