"""Holding one kernel to its disk limit in the one folder it shares with the grader, and blaming only it.

As root, where mounting is allowed, that folder is a tmpfs of the limit's size (`sandbox.mount_limited`):
the OS enforces the limit for every kind of file (unlinked, fallocated, passed over a socket), and the
watch only adds its listing check. Elsewhere (an ordinary user, a container that may not mount) the grader
counts what the kernel keeps on the folder's file system: the files it can list there (size or blocks,
whichever is more), plus the unlinked files the kernel's own processes hold open (in any thread's fd
table) or mapped. What that count cannot see is a file whose only reference is a descriptor in flight in
a unix socket; the per-file size limit (512 MiB) still bounds each one. Free space of the whole file
system is never a measure: other jobs and programs share it, and a watch reading it would stop an honest
kernel for a neighbour's writes.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

LIST_EVERY_S = 0.25
SCAN_EVERY_TICKS = 2  # the process scan (fds and maps of every kernel process) runs every other tick


def folder_size(folder: Path) -> int:
    """Bytes the entries directly under `folder` use (the socket folder is flat): each file's size or the
    blocks it holds, whichever is more (fallocate keeps blocks past the size), at least 4 KiB per entry (so
    a million empty files count), and 1 TiB for a folder (none belongs there)."""
    total = 0
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        total += 2**40
                    else:
                        st = entry.stat(follow_symlinks=False)
                        total += max(st.st_size, st.st_blocks * 512, 4096)  # blocks: space fallocate keeps
                except OSError:
                    continue
    except OSError:
        return 0
    return total


def empty_folder(folder: Path) -> None:
    """Remove everything under `folder` (the folder itself stays: it may be a mount point)."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
        except OSError:
            continue


def _parent(pid: str) -> int | None:
    """The parent pid of process `pid` (from /proc/<pid>/stat), None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def process_tree(root: int) -> list[int]:
    """`root` and every process below it, from the parent links in /proc (a PID namespace's orphans are
    adopted by its first process, which is below the launcher)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            parent = _parent(name)
            if parent is not None:
                children.setdefault(parent, []).append(int(name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _kept(st: os.stat_result, dev: int, owner: int, seen: set[int]) -> int:
    """Bytes an unlinked file on device `dev` owned by `owner` takes (its size or blocks, whichever is more),
    counted once per inode (`seen`); 0 for any other file."""
    if st.st_nlink or st.st_dev != dev or st.st_uid != owner or st.st_ino in seen:
        return 0
    seen.add(st.st_ino)
    return max(st.st_blocks * 512, st.st_size)


def _held_open(pid: int, dev: int, owner: int, seen: set[int]) -> int:
    """Bytes of unlinked files on device `dev`, owned by `owner`, that process `pid` holds open, in any of its
    threads' fd tables (a thread may unshare its own)."""
    total = 0
    try:
        tables = [f"/proc/{pid}/task/{tid}/fd" for tid in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return 0
    for table in tables:
        try:
            fds = os.listdir(table)
        except OSError:
            continue
        for fd in fds:
            try:
                total += _kept(os.stat(f"{table}/{fd}"), dev, owner, seen)
            except OSError:
                continue
    return total


def _held_mapped(pid: int, dev: int, owner: int, seen: set[int]) -> int:
    """Bytes of unlinked files on device `dev` that process `pid` has mapped (its fds may be closed).

    The file is measured through /proc/<pid>/map_files where the grader may read it (as root); otherwise
    the mapping's length stands for it.
    """
    device = f"{os.major(dev):02x}:{os.minor(dev):02x}"
    total = 0
    try:
        with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
    except OSError:
        return 0
    for line in lines:
        parts = line.split(maxsplit=5)
        if len(parts) < 6 or parts[3] != device or not parts[5].rstrip("\n").endswith("(deleted)"):
            continue
        try:
            total += _kept(os.stat(f"/proc/{pid}/map_files/{parts[0]}"), dev, owner, seen)
        except OSError:  # map_files is for root only: the mapping's length stands for the file
            inode = int(parts[4])
            if inode not in seen:
                seen.add(inode)
                start, end = (int(x, 16) for x in parts[0].split("-"))
                total += end - start
    return total


def held_bytes(pids: list[int], dev: int, owner: int) -> int:
    """Bytes that unlinked files on device `dev` owned by `owner` still take, held open or mapped by `pids`."""
    seen: set[int] = set()
    return sum(_held_open(pid, dev, owner, seen) + _held_mapped(pid, dev, owner, seen) for pid in pids)


class DiskWatch:
    """Kills the kernel when what it keeps in the socket folder's file system passes the disk limit.

    `processes()` gives the pids of the kernel's processes (empty before it starts); files the sandbox
    creates are owned by `owner`.
    """

    def __init__(self, folder: Path, limit_bytes: int, owner: int, processes: Callable[[], list[int]],
                 kill: Callable[[], None]) -> None:
        self.folder, self.limit, self.owner, self.processes, self.kill = folder, limit_bytes, owner, processes, kill
        self.tripped = False
        self._dev = os.stat(folder).st_dev
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def used(self, scan: bool = True) -> int:
        """Bytes the kernel keeps there: the folder's listing, plus (with `scan`) its unlinked files."""
        listed = folder_size(self.folder)
        return listed + (held_bytes(self.processes(), self._dev, self.owner) if scan else 0)

    def _watch(self) -> None:
        tick = 0
        while not self._stop.wait(LIST_EVERY_S):
            tick += 1
            if self.used(scan=tick % SCAN_EVERY_TICKS == 0) > self.limit:
                self.tripped = True
                self.kill()
                return

    def __enter__(self) -> "DiskWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
