"""The sandbox of a submission's kernel: bubblewrap namespaces, an unprivileged user, resource limits.

Every kernel `hw3 grade` starts runs under `bwrap` (Debian/Ubuntu package `bubblewrap`) in its own PID,
mount, IPC, UTS and network namespaces:

- Filesystem: a fresh root holding only the system's and Python's files, read-only (/usr, the Python
  installation, the environment's site-packages), hw3 as its grading build (`withheld`: the reference
  solutions of graded exercises are not there) bound over the real package folder, the shared feature
  cache read-only, and size-limited private tmpfs folders for HOME (/home/student, where the kernel runs
  and IPython/Jupyter/matplotlib keep their files), /tmp (`Limits.disk_mb` each) and /dev/shm (256 MiB). The submission is visible only as
  its own private read-only copy; answers/, other submissions, output paths and the grader's files are
  not mounted. The one folder shared with the grader holds the kernel's Jupyter sockets (ZeroMQ over unix
  sockets: the network namespace has no route to the grader) and is watched for size.
- Identity: started as root (CI, containers, Gradescope), the sandbox drops the kernel to an unprivileged
  uid of its own (`SANDBOX_UID` + the job slot) with no capabilities and no_new_privs, so it is not the
  user that writes the results; started as an ordinary user, bwrap maps the kernel into a user namespace
  without capabilities.
- Environment: cleared, then an allow-list (`sandbox_env`): nothing of the grader's.
- Limits: memory (RLIMIT_AS, or RLIMIT_DATA where an NVIDIA driver is present: CUDA reserves huge address
  ranges), processes (RLIMIT_NPROC), file size (RLIMIT_FSIZE), open files, no core dumps; as root a
  memory, pids and cpu cgroup per kernel (`Cgroup`: one CPU's worth of time); disk through the tmpfs sizes
  (as root the shared socket folder is one too: `mount_limited`); a seccomp filter denies the kernel
  keyrings (shared by every process of a uid, they would carry data from one submission to the next).
- Processes: the PID namespace ends with the kernel: when it exits or is killed, every process it started
  (forks, `setsid` daemons, double forks) is killed by the kernel of the OS, not by a sweep by name.

`available()` says why the sandbox cannot start (no bwrap, user namespaces disabled); `hw3 grade` then
refuses unless the instructor passes --no-sandbox, and each report graded that way says so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

GIB = 2**30
DEFAULT_MEMORY_GB = 8.0
MAX_NOTEBOOK_MB = 100
DEFAULT_SUBMISSION_TIMEOUT = 1800.0
"""Seconds one submission may take in all (--submission-timeout): every notebook, cell, rerun and probe."""
CELL_BYTES, CELL_MESSAGES = 64 * 2**20, 20_000
"""What one cell may send the grader (every channel, before decoding): past either, the kernel is stopped."""
SUBMISSION_BYTES, SUBMISSION_MESSAGES = 512 * 2**20, 200_000
"""What one submission's kernels may send the grader in all: past either, its grading stops."""
SANDBOX_UID = 61000
HOME = "/home/student"
CACHE_MOUNT = "/opt/hw3-feature-cache"
SYSTEM_DIRS = ("/usr", "/etc/alternatives", "/etc/ld.so.cache", "/etc/localtime")
SYMLINKS = {"/bin": "usr/bin", "/sbin": "usr/sbin", "/lib": "usr/lib", "/lib64": "usr/lib64"}

LIMITS_LAUNCHER = """\
import os, resource, sys
memory_kind, memory, nproc, fsize = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
program, cgroups, command = bytes.fromhex(sys.argv[5]), sys.argv[6], sys.argv[7:]
for procs in filter(None, cgroups.split(",")):  # join the kernel's cgroups: everything it starts stays in them
    with open(procs, "w") as f:
        f.write(str(os.getpid()))
if program and "@SECCOMP@" in command:
    read, write = os.pipe()
    os.write(write, program)
    os.close(write)
    os.set_inheritable(read, True)
    command = [str(read) if word == "@SECCOMP@" else word for word in command]
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
if nproc:
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
if memory:
    which = resource.RLIMIT_AS if memory_kind == "as" else resource.RLIMIT_DATA
    resource.setrlimit(which, (memory, memory))
os.execvp(command[0], command)
"""

# Kernel keyrings are shared by every process of a uid, across namespaces: a submission could leave data there
# for the next one. The sandbox's seccomp filter makes add_key, request_key and keyctl fail with EPERM.
KEYRING_SYSCALLS = {  # audit arch -> syscall numbers of add_key, request_key, keyctl
    0xC000003E: (248, 249, 250),  # x86_64
    0x40000003: (286, 287, 288),  # i386 (compat syscalls on x86_64)
    0xC00000B7: (217, 218, 219),  # aarch64
}


@dataclass(frozen=True)
class Limits:
    """What a submission's kernel may use: `memory_gb` GiB of memory (0: no limit), `processes` tasks (threads
    count), `file_mb` MiB per file, `disk_mb` MiB in each private folder and in the socket folder, `cpus` CPUs'
    worth of time (as root, in a cpu cgroup: a kernel that spins many processes cannot starve the submissions
    graded beside it)."""

    memory_gb: float = DEFAULT_MEMORY_GB
    processes: int = 512
    file_mb: int = 512
    disk_mb: int = 1024
    cpus: float = 1.0

    @property
    def memory_bytes(self) -> int:
        return int(self.memory_gb * GIB)

    @property
    def disk_bytes(self) -> int:
        return self.disk_mb * 2**20


def memory_kind() -> str:
    """`as` (the address space), or `data` where an NVIDIA driver is present (CUDA reserves huge address ranges)."""
    return "data" if os.path.exists("/dev/nvidiactl") else "as"


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


@lru_cache(maxsize=1)
def available() -> str | None:
    """None when the sandbox can start here, else why not (one line naming the fix)."""
    if not sys.platform.startswith("linux"):
        return "the grading sandbox needs Linux (bubblewrap): grade on Linux, or pass --no-sandbox"
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed: `apt-get install bubblewrap` (or pass --no-sandbox)"
    if is_root() and shutil.which("setpriv") is None:
        return "setpriv is missing: `apt-get install util-linux` (or pass --no-sandbox)"
    probe = subprocess.run(["bwrap", *namespace_args(), "--ro-bind", "/", "/", "--", "true"],
                           capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        reason = (probe.stderr.strip().splitlines() or ["unknown error"])[-1][:120]
        return (f"bubblewrap cannot create namespaces here ({reason}): enable unprivileged user namespaces "
                f"(sysctl kernel.unprivileged_userns_clone=1), run hw3 grade as root, or pass --no-sandbox")
    return None


def namespace_args() -> list[str]:
    """bwrap's namespace options: everything but the user namespace when root (the kernel drops to its uid with
    setpriv), everything including it otherwise."""
    common = ["--unshare-pid", "--unshare-ipc", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
              "--die-with-parent", "--new-session"]
    return common if is_root() else ["--unshare-user", "--disable-userns", "--cap-drop", "ALL", *common]


def python_dirs() -> list[str]:
    """The folders the kernel's Python needs: its installation, the environment, site-packages (existing, real)."""
    import site

    candidates = [sys.base_prefix, sys.prefix, sys.exec_prefix, *site.getsitepackages()]
    user = site.getusersitepackages()
    if user and os.path.isdir(user):
        candidates.append(user)
    dirs: list[str] = []
    for path in sorted({os.path.realpath(p) for p in candidates if os.path.isdir(p)}):
        if not any(path == d or path.startswith(d + os.sep) for d in dirs):
            dirs.append(path)
    return [d for d in dirs if not d.startswith("/usr" + os.sep)]


def python_aliases() -> dict[str, str]:
    """{path the kernel's Python is started by: the real folder it stands for}, for an environment reached
    through a symlink (a checkout whose .venv links to another's): the sandbox binds the real folders
    (`python_dirs`), so the symlinked path must exist there too. A symlink inside a folder that is bound
    anyway (a venv whose site-packages links elsewhere) is left as it is: it resolves in the sandbox, and
    bubblewrap cannot mount over it there."""
    import site

    aliases: dict[str, str] = {}
    bound = python_dirs()
    for path in sorted({os.path.abspath(p) for p in (sys.prefix, sys.exec_prefix, *site.getsitepackages())}):
        real = os.path.realpath(path)
        inside = any(path.startswith(folder + os.sep) for folder in [*aliases, *bound])
        if path != real and os.path.isdir(real) and not inside:
            aliases[path] = real
    return aliases


@dataclass(frozen=True)
class Mounts:
    """What one kernel's sandbox sees besides the system: the hw3 build, the package folder it covers, the
    socket folder, the private copy of the submission, the feature cache (or None)."""

    build: Path
    package_dir: Path
    sockets: Path
    submission: Path
    feature_cache: Path | None = None


def bwrap_args(mounts: Mounts, limits: Limits, env: dict[str, str]) -> list[str]:
    """The bwrap command line, up to and including `--`: namespaces, read-only system, private folders, `env`."""
    args = ["bwrap", *namespace_args(), "--seccomp", "@SECCOMP@", "--clearenv", "--proc", "/proc", "--dev", "/dev"]
    for name, value in env.items():
        args += ["--setenv", name, value]
    made: set[str] = set()

    def parents(dest: str) -> None:
        """Create the missing parent folders of `dest`, world-readable (bwrap would make them 0700)."""
        for parent in reversed(Path(dest).parents[:-1]):
            if str(parent) not in made:
                made.add(str(parent))
                args.extend(["--perms", "0755", "--dir", str(parent)])

    def bind(kind: str, source: str, dest: str) -> None:
        """A bind mount, after its missing parent folders."""
        parents(dest)
        args.extend([kind, source, dest])

    size = str(limits.disk_bytes)
    for private in (HOME, "/tmp", "/dev/shm"):  # first: the binds below may lie inside them (a checkout in /tmp)
        parents(private)
        args += ["--size", size if private != "/dev/shm" else str(2**28), "--perms", "1777", "--tmpfs", private]
        made.add(private)
    for path in SYSTEM_DIRS:
        if os.path.exists(path):
            bind("--ro-bind", path, path)
    for link, target in SYMLINKS.items():
        if os.path.islink(link):
            args += ["--symlink", target, link]
        elif os.path.isdir(link):
            bind("--ro-bind", link, link)
    for path in python_dirs():
        bind("--ro-bind", path, path)
    for alias, real in python_aliases().items():
        bind("--ro-bind", real, alias)
    bind("--ro-bind", str(mounts.build / "etc" / "passwd"), "/etc/passwd")
    bind("--ro-bind", str(mounts.build / "etc" / "group"), "/etc/group")
    bind("--ro-bind", str(mounts.build / "hw3"), str(mounts.package_dir))
    bind("--ro-bind", str(mounts.submission), f"{HOME}/submission/{mounts.submission.name}")
    if mounts.feature_cache is not None:
        bind("--ro-bind", str(mounts.feature_cache), CACHE_MOUNT)
    bind("--bind", str(mounts.sockets), str(mounts.sockets))
    return [*args, "--chdir", HOME, "--"]


def kernel_env(build: Path, home: str, feature_cache: str | Path | None, path: str, threads: int = 1) -> dict[str, str]:
    """A kernel's whole environment (an allow-list: nothing of the grader's), offline, with hw3 from `build`:
    the one recipe for sandboxed kernels (paths inside the sandbox) and --no-sandbox ones (paths on the host)."""
    env = {
        "PATH": path, "HOME": home, "USER": "student", "LOGNAME": "student", "TMPDIR": "/tmp", "LANG": "C.UTF-8",
        "PYTHONPATH": str(build), "PYTHONDONTWRITEBYTECODE": "1",
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HW3_OFFLINE": "1",
        "HW3_CACHE": f"{home}/.cache/hw3", "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE",
        "MALLOC_ARENA_MAX": "4", "JPY_SESSION_NAME": "submission",
    }
    if feature_cache is not None:
        env["HW3_FEATURE_CACHE"] = str(feature_cache)
    return env


def sandbox_env(mounts: Mounts, threads: int = 1) -> dict[str, str]:
    """The sandboxed kernel's environment: `kernel_env` with the sandbox's own paths."""
    path = os.pathsep.join([os.path.join(sys.prefix, "bin"), "/usr/local/bin", "/usr/bin", "/bin"])
    return kernel_env(mounts.package_dir.parent, HOME, CACHE_MOUNT if mounts.feature_cache is not None else None,
                      path, threads)


def user_files(folder: Path, uid: int, slots: int = 64) -> None:
    """etc/passwd and etc/group under `folder` naming the student user of each job slot (uid, uid + 1, ...)."""
    (folder / "etc").mkdir(parents=True, exist_ok=True)
    users = "".join(f"student:x:{u}:{u}:student:{HOME}:/bin/sh\n" for u in range(uid, uid + slots))
    groups = "".join(f"student:x:{u}:\n" for u in range(uid, uid + slots))
    (folder / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n" + users)
    (folder / "etc" / "group").write_text("root:x:0:\n" + groups)


def seccomp_program() -> bytes:
    """A classic-BPF seccomp filter: EPERM for the keyring syscalls (and every x32 syscall), allow the rest."""
    import struct

    load, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    allow, deny = 0x7FFF0000, 0x00050000 | 1  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | EPERM
    code: list[tuple[int, int, int, int]] = []
    blocks = list(KEYRING_SYSCALLS.items())
    for arch, numbers in blocks:  # per arch: [ld arch, jeq arch else next block, ld nr, (jge x32), jeq ×3, ret allow]
        x32 = arch == 0xC000003E
        size = 4 + len(numbers) + x32
        code.append((load, 0, 0, 4))
        code.append((jeq, 0, size - 1, arch))
        code.append((load, 0, 0, 0))
        checks = ([(jge, 0x40000000)] if x32 else []) + [(jeq, n) for n in numbers]
        for i, (op, value) in enumerate(checks):
            code.append((op, len(checks) - i, 0, value))  # jump to "ret deny" placed after this block's allow
        code.append((ret, 0, 0, allow))
        code.append((ret, 0, 0, deny))
    code.append((ret, 0, 0, allow))
    return b"".join(struct.pack("=HBBI", op, jt, jf, k) for op, jt, jf, k in code)


def process_count() -> int:
    """How many processes this user runs now (RLIMIT_NPROC counts them all)."""
    uid = os.getuid()
    count = 0
    for entry in Path("/proc").iterdir():
        try:
            count += entry.name.isdigit() and entry.stat().st_uid == uid
        except OSError:
            continue
    return count


def limits_prefix(limits: Limits, seccomp: bool = False, cgroup: "Cgroup | None" = None) -> list[str]:
    """The launcher that sets the resource limits, joins the kernel's cgroup and hands bwrap its seccomp filter,
    then execs the rest.

    As an ordinary user the process limit counts the user's other processes too, so it is raised by those.
    """
    nproc = limits.processes if is_root() else process_count() + limits.processes
    program = seccomp_program().hex() if seccomp else ""
    procs = ",".join(str(p) for p in cgroup.procs) if cgroup else ""
    return [sys.executable, "-c", LIMITS_LAUNCHER, memory_kind(), str(limits.memory_bytes), str(nproc),
            str(limits.file_mb * 2**20), program, procs]


CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_parent(controller: str) -> Path:
    """The folder a kernel's cgroup is made in, for a v1 `controller` ("memory", "pids", "cpu") or v2 (""): with
    v1, below the grader's own cgroup, so that a limit on it (a container's, a `systemd-run -p MemoryMax`, a
    benchmark's) covers the kernels too; with v2, and where the grader's own is not mounted, the mount's root
    (a v2 cgroup that holds a process, as the grader's does, cannot enable controllers below it; a container's
    cgroup namespace makes that root the container's own cgroup)."""
    from hw3.sentiment.memory import own_cgroup

    base = CGROUP_ROOT / controller if controller else CGROUP_ROOT
    return (own_cgroup(controller, CGROUP_ROOT) or base) if controller else base


class Cgroup:
    """A memory and process cgroup for one kernel (as root, where cgroup v1 or v2 is writable), so the limits
    hold for all its processes together, tmpfs pages included: `memory_gb` and `processes` of `Limits`.

    `create` returns None where no cgroup can be made (an ordinary user, no controllers): the per-process
    resource limits then stand alone.
    """

    def __init__(self, folders: list[Path], v2: bool) -> None:
        self.folders, self.v2 = folders, v2

    @property
    def procs(self) -> list[Path]:
        return [folder / "cgroup.procs" for folder in self.folders]

    @classmethod
    def create(cls, name: str, limits: Limits) -> "Cgroup | None":
        """The cgroup `hw3-<grader pid>-<name>`, set to `limits`; None where none can be made."""
        if not is_root():
            return None
        sweep_stale_cgroups()
        v2 = (CGROUP_ROOT / "cgroup.controllers").is_file()
        settings = ({"": {"memory.max": limits.memory_bytes, "pids.max": limits.processes}} if v2 else
                    {"memory": {"memory.limit_in_bytes": limits.memory_bytes}, "pids": {"pids.max": limits.processes}})
        folders = []
        try:
            for controller, values in settings.items():
                folder = cgroup_parent(controller) / f"hw3-{os.getpid()}-{name}"
                folder.mkdir()
                folders.append(folder)
                for key, value in values.items():
                    if value:
                        (folder / key).write_text(str(value))
        except OSError:
            cls(folders, v2).remove()
            return None
        cpu_quota(folders, v2, limits.cpus)
        return cls(folders, v2)

    def pids(self) -> list[int]:
        """The processes in the cgroup now."""
        return members(self.folders[0]) if self.folders else []

    def out_of_memory(self) -> bool:
        """True when the kernel of the OS killed a process of this cgroup for memory."""
        for folder in self.folders:
            for name in ("memory.events", "memory.oom_control"):
                try:
                    text = (folder / name).read_text()
                except OSError:
                    continue
                if any(line.split()[0] == "oom_kill" and int(line.split()[1]) > 0 for line in text.splitlines()
                       if len(line.split()) == 2):
                    return True
        return False

    def hit_own_limit(self) -> bool:
        """True when the memory use of this cgroup reached its own limit (v2: memory.events' max; v1: memory.failcnt),
        False when only a limit above it did: the machine's or the container's memory ran out, not the kernel's."""
        folder = self.folders[0] if self.folders else None
        if folder is None:
            return False
        try:
            if self.v2:
                events = dict(line.split() for line in (folder / "memory.events").read_text().splitlines())
                return int(events.get("max", 0)) > 0
            return int((folder / "memory.failcnt").read_text()) > 0
        except (OSError, ValueError):
            return True  # unreadable: blame the kernel's own limit

    def remove(self) -> None:
        """Kill what is left in the cgroup and remove it."""
        for folder in self.folders:
            for _ in range(50):
                pids = members(folder)
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, 9)
                    except OSError:
                        pass
                time.sleep(0.02)
            try:
                folder.rmdir()
            except OSError:
                pass


def members(folder: Path) -> list[int]:
    """The processes in the cgroup `folder` now (none when it is gone or unreadable)."""
    try:
        return [int(p) for p in (folder / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


CPU_PERIOD_US = 100_000


def cpu_quota(folders: list[Path], v2: bool, cpus: float) -> None:
    """Cap the cgroup at `cpus` CPUs (v2: cpu.max of its folder; v1: a folder of the cpu controller, appended
    to `folders` so the kernel joins it). Where the cpu controller is not available the cap is skipped: the
    memory and process limits stand without it."""
    quota = f"{int(cpus * CPU_PERIOD_US)}"
    if v2:
        try:
            (folders[0] / "cpu.max").write_text(f"{quota} {CPU_PERIOD_US}")
        except OSError:
            pass
        return
    folder = cgroup_parent("cpu") / folders[0].name
    try:
        folder.mkdir()
    except OSError:
        return
    try:
        (folder / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
        (folder / "cpu.cfs_quota_us").write_text(quota)
    except OSError:
        folder.rmdir()
        return
    folders.append(folder)


@lru_cache(maxsize=1)
def sweep_stale_cgroups() -> None:
    """Remove (once per process) the kernel cgroups of graders that are gone: one killed mid-batch never
    removed its own. A cgroup of a running grader (its pid in the name) is left alone."""
    mounts = [folder for folder in CGROUP_ROOT.iterdir() if folder.is_dir()] if CGROUP_ROOT.is_dir() else []
    parents = {CGROUP_ROOT, *mounts, *(cgroup_parent(c) for c in ("memory", "pids", "cpu"))}
    for folder in sorted({found for parent in parents for found in parent.glob("hw3-*")}):
        parts = folder.name.split("-")
        if len(parts) != 3 or not parts[1].isdigit() or not folder.is_dir():
            continue
        try:
            os.kill(int(parts[1]), 0)
            continue  # its grader still runs
        except ProcessLookupError:
            pass
        except OSError:
            continue
        Cgroup([folder], False).remove()


def drop_prefix(uid: int) -> list[str]:
    """Inside the sandbox, as root: become `uid` with no capabilities and no way to regain any."""
    if not is_root():
        return []
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
            "--bounding-set=-all", "--no-new-privs", "--"]


def kernel_command(kernel: list[str], mounts: Mounts, limits: Limits, uid: int, env: dict[str, str],
                   cgroup: Cgroup | None = None) -> list[str]:
    """The full command that runs `kernel` (e.g. python -m ipykernel_launcher -f FILE) in the sandbox with `env`."""
    return [*limits_prefix(limits, seccomp=True, cgroup=cgroup), *bwrap_args(mounts, limits, env),
            *drop_prefix(uid), *kernel]


def unsandboxed_command(kernel: list[str], limits: Limits) -> list[str]:
    """--no-sandbox: only the resource limits (the kernel runs as the grader's user: the instructor's choice)."""
    return [*limits_prefix(limits), *kernel]


MS_NOSUID, MS_NODEV, MS_NOEXEC, MNT_DETACH = 2, 4, 8, 2


def _libc():
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def mount_limited(folder: Path, size_bytes: int, uid: int) -> bool:
    """As root, mount a tmpfs of `size_bytes` on `folder` (mode 0700, owned by `uid`), so the OS itself
    holds a kernel to its disk limit there: unlinked, fallocated and in-flight files count. False (nothing
    mounted) for an ordinary user or where mounting is not allowed (a container without CAP_SYS_ADMIN)."""
    if not is_root():
        return False
    options = f"size={size_bytes},mode=0700,uid={uid},gid={uid}".encode()
    flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
    return _libc().mount(b"tmpfs", os.fsencode(folder), b"tmpfs", flags, options) == 0


def unmount(folder: Path) -> None:
    """Detach what `mount_limited` mounted on `folder` (its files go with it)."""
    _libc().umount2(os.fsencode(folder), MNT_DETACH)


def private_folder(prefix: str, uid: int | None) -> Path:
    """A new temporary folder only the grader and the sandbox user `uid` may use (mode 0700)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    if uid is not None and is_root():
        os.chown(folder, uid, uid)
    return folder
