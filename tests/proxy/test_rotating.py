"""The audit log's file: whole lines, rotated by size, shared by processes, private on disk."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from regogate.proxy.policy._rotating import RotatingFile


def test_rotates_between_whole_lines_and_keeps_only_so_many(tmp_path: Path) -> None:
    path = tmp_path / "srv" / "audit.jsonl"
    log = RotatingFile(path, max_bytes=100, keep=2)
    for index in range(10):
        log.write_line(f'{{"n": {index}, "pad": "{"x" * 30}"}}')
    log.close()
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
    lines = [line for name in reversed(files) for line in (path.parent / name).read_text(encoding="utf-8").splitlines()]
    numbers = [int(line.split(",")[0].removeprefix('{"n": ')) for line in lines]
    assert numbers == sorted(numbers) and numbers[-1] == 9  # oldest dropped, nothing split or reordered
    assert all(path.parent.joinpath(name).stat().st_size <= 100 for name in files)


def test_files_are_private(tmp_path: Path) -> None:
    path = tmp_path / "new" / "audit.jsonl"
    RotatingFile(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_a_writer_follows_a_rotation_done_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    first, second = RotatingFile(path, max_bytes=60), RotatingFile(path, max_bytes=60)
    first.write_line("a" * 40)
    first.write_line("b" * 40)  # rotates: a -> .1
    second.write_line("c" * 10)  # still holds the old inode: must reopen, not write into .1
    first.close()
    second.close()
    assert path.read_text(encoding="utf-8") == "b" * 40 + "\n" + "c" * 10 + "\n"
    assert Path(f"{path}.1").read_text(encoding="utf-8") == "a" * 40 + "\n"
    assert os.path.exists(path)


def test_a_lone_surrogate_is_written_as_its_escape(tmp_path: Path) -> None:
    # JSON text may carry "\ud800"; written with ensure_ascii=False it reaches the file as a lone surrogate.
    path = tmp_path / "audit.jsonl"
    log = RotatingFile(path)
    log.write_line('{"arguments": {"path": "\ud800"}}')
    log.close()
    assert path.read_bytes() == b'{"arguments": {"path": "\\ud800"}}\n'
