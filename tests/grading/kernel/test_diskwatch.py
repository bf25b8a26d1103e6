"""The disk watch of a kernel's socket folder: it counts what the kernel keeps there, hidden or not, and
never blames a kernel for what another program writes on the same file system."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hw3.grading.kernel.diskwatch import DiskWatch, folder_size, held_bytes, process_tree

MIB = 2**20

# writes `size` MiB to a file in `folder`, then hides it: unlinked while held open, mapped and closed, or
# held open in a thread's own fd table
HIDDEN_WRITER = """
import ctypes, mmap, os, sys, threading, time
folder, size, how = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def write():
    path = os.path.join(folder, "blob")
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    for _ in range(size):
        os.write(fd, b"x" * 2**20)
    os.fsync(fd)
    os.unlink(path)
    return fd

if how == "thread":
    def hold():
        ctypes.CDLL(None).unshare(0x400)  # CLONE_FILES
        write()
        print("ready", flush=True)
        time.sleep(30)
    threading.Thread(target=hold, daemon=True).start()
    time.sleep(30)
fd = write()
if how == "mapped":
    kept = mmap.mmap(fd, size * 2**20)
    os.close(fd)
print("ready", flush=True)
time.sleep(30)
"""

# a launcher whose child (a grandchild of the test) does the writing, as a kernel's forks would
LAUNCHER = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], *sys.argv[2:]], stdout=sys.stdout)
child.wait()
"""


def start(args: list[str]) -> subprocess.Popen:
    """A process running `args` that has printed "ready" (its file is written and hidden)."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def stop(proc: subprocess.Popen) -> None:
    for pid in reversed(process_tree(proc.pid)):
        try:
            os.kill(pid, 9)
        except OSError:
            pass
    proc.wait()


def watch_until(watch: DiskWatch, seconds: float = 3.0) -> bool:
    """Whether `watch` tripped within `seconds`."""
    with watch:
        deadline = time.time() + seconds
        while time.time() < deadline and not watch.tripped:
            time.sleep(0.05)
    return watch.tripped


def test_the_listing_counts_every_entry(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x" * 10_000)
    for n in range(3):
        (tmp_path / f"empty{n}").touch()
    assert folder_size(tmp_path) == max(10_000, os.stat(tmp_path / "a").st_blocks * 512) + 3 * 4096
    (tmp_path / "sub").mkdir()
    assert folder_size(tmp_path) >= 2**40


def test_the_listing_counts_blocks_reserved_past_a_files_size(tmp_path: Path) -> None:
    """fallocate with FALLOC_FL_KEEP_SIZE reserves blocks and leaves the size 0."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
    with open(tmp_path / "reserved", "wb") as f:
        if libc.fallocate(f.fileno(), 1, 0, 3 * MIB) != 0:
            pytest.skip("this file system cannot reserve blocks")
        assert os.fstat(f.fileno()).st_size == 0
    assert folder_size(tmp_path) >= 3 * MIB


def test_the_process_tree_reaches_grandchildren(tmp_path: Path) -> None:
    proc = start([sys.executable, "-c", LAUNCHER, HIDDEN_WRITER, str(tmp_path), "1", "open"])
    try:
        tree = process_tree(proc.pid)
        assert tree[0] == proc.pid and len(tree) == 2
        assert os.getpid() not in tree
    finally:
        stop(proc)


@pytest.mark.parametrize("how", ["open", "mapped", "thread"])
def test_a_kernel_hiding_unlinked_files_is_stopped(tmp_path: Path, how: str) -> None:
    proc = start([sys.executable, "-c", LAUNCHER, HIDDEN_WRITER, str(tmp_path), "6", how])
    killed = []
    try:
        assert list(tmp_path.iterdir()) == []  # nothing a listing can see
        assert held_bytes(process_tree(proc.pid), os.stat(tmp_path).st_dev, os.getuid()) >= 6 * MIB
        watch = DiskWatch(tmp_path, 4 * MIB, os.getuid(), lambda: process_tree(proc.pid), lambda: killed.append(1))
        assert watch_until(watch) and killed == [1]
    finally:
        stop(proc)


def test_another_programs_writes_on_the_same_disk_are_not_the_kernels(tmp_path: Path) -> None:
    """Once broken: the watch read the file system's free space, so while one submission hid 1.3 GiB of
    unlinked files, the kernel of the submission graded beside it was stopped for "writing" them."""
    kernel_folder, neighbour_folder = tmp_path / "kernel", tmp_path / "neighbour"
    kernel_folder.mkdir()
    neighbour_folder.mkdir()
    kernel = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    neighbour = start([sys.executable, "-c", HIDDEN_WRITER, str(neighbour_folder), "6", "open"])
    try:
        (tmp_path / "visible-elsewhere").write_bytes(b"x" * 6 * MIB)
        watch = DiskWatch(kernel_folder, 4 * MIB, os.getuid(), lambda: process_tree(kernel.pid), lambda: None)
        assert not watch_until(watch, 1.5)
        assert watch.used() < MIB
    finally:
        stop(neighbour)
        stop(kernel)


def test_files_of_another_owner_are_not_counted(tmp_path: Path) -> None:
    proc = start([sys.executable, "-c", HIDDEN_WRITER, str(tmp_path), "2", "open"])
    try:
        dev = os.stat(tmp_path).st_dev
        assert held_bytes([proc.pid], dev, os.getuid()) >= 2 * MIB
        assert held_bytes([proc.pid], dev, os.getuid() + 12345) == 0
    finally:
        stop(proc)
