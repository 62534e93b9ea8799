"""Slipway's default security profile for learner containers, in one readable place.

It follows Docker's defaults: 14 capabilities, no_new_privs, masked and read-only /proc and
/sys paths, a minimal /dev with a device cgroup that denies everything else, and a seccomp
allowlist. The engine applies it to every container; nothing here is loosened per learner.
"""

from __future__ import annotations

import copy
import errno

# Docker's 14 default capabilities.
CAPABILITIES: list[str] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
]

# Files that leak host information or host control: bind /dev/null (files) or an empty
# read-only tmpfs (directories) over them. Paths that don't exist are skipped.
MASKED_PATHS: list[str] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
]

READONLY_PATHS: list[str] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
]

MOUNTS: list[dict] = [
    {
        "destination": "/proc",
        "type": "proc",
        "source": "proc",
        "options": ["nosuid", "noexec", "nodev"],
    },
    {
        "destination": "/dev",
        "type": "tmpfs",
        "source": "tmpfs",
        "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
    },
    {
        "destination": "/dev/pts",
        "type": "devpts",
        "source": "devpts",
        "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
    },
    {
        "destination": "/sys",
        "type": "sysfs",
        "source": "sysfs",
        "options": ["nosuid", "noexec", "nodev", "ro"],
    },
    {
        "destination": "/sys/fs/cgroup",
        "type": "cgroup",
        "source": "cgroup",
        "options": ["ro", "nosuid", "noexec", "nodev"],
    },
    {
        "destination": "/dev/mqueue",
        "type": "mqueue",
        "source": "mqueue",
        "options": ["nosuid", "noexec", "nodev"],
    },
    {
        "destination": "/dev/shm",
        "type": "tmpfs",
        "source": "shm",
        "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"],
    },
]

# The device cgroup: deny everything, then allow the few character devices a container's
# /dev holds, and mknod (but not open) of anything else, as Docker does.
DEVICE_RULES: list[dict] = [
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},  # null
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},  # zero
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},  # full
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},  # random
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},  # urandom
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},  # tty
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},  # console
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},  # ptmx
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},  # the devpts slaves
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
]

# Namespace-creating flags: CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET.
CLONE_NAMESPACE_MASK = 0x7E020000
# unshare(2) also takes CLONE_NEWTIME (0x80); in clone(2) that bit is part of the exit signal.
UNSHARE_NAMESPACE_MASK = CLONE_NAMESPACE_MASK | 0x80

# The syscalls a container may make, by what they are for. Anything missing is refused
# with EPERM: mount and pivot_root, setns, keyctl, bpf, perf_event_open, module loading,
# kexec, open_by_handle_at, userfaultfd, io_uring, swap, acct, reboot, clock setting,
# quotactl, the new mount API, and the like.
ALLOWED_SYSCALLS: dict[str, list[str]] = {
    "files": """
        access faccessat faccessat2 chdir fchdir chmod fchmod fchmodat fchmodat2 chown fchown
        fchownat lchown chroot close close_range creat dup dup2 dup3 fadvise64 fallocate
        fcntl flock fstat fstatfs fsync fdatasync ftruncate truncate getcwd getdents getdents64
        link linkat lseek lstat mkdir mkdirat mknod mknodat newfstatat open openat openat2
        pread64 preadv preadv2 pwrite64 pwritev pwritev2 read readv readlink readlinkat rename
        renameat renameat2 rmdir stat statfs statx symlink symlinkat sync sync_file_range
        syncfs umask unlink unlinkat utime utimensat utimes futimesat write writev
        copy_file_range sendfile splice tee vmsplice memfd_create name_to_handle_at
        getxattr lgetxattr fgetxattr listxattr llistxattr flistxattr setxattr lsetxattr
        fsetxattr removexattr lremovexattr fremovexattr inotify_init inotify_init1
        inotify_add_watch inotify_rm_watch fanotify_mark ioctl cachestat
    """,
    "memory": """
        brk mmap munmap mremap mprotect madvise mincore mlock mlock2 mlockall munlock
        munlockall msync get_mempolicy membarrier pkey_alloc pkey_free pkey_mprotect
        process_madvise remap_file_pages map_shadow_stack
    """,
    "processes": """
        arch_prctl capget capset clone execve execveat exit exit_group fork vfork getpid
        getppid gettid getpgid getpgrp getsid setpgid setsid getpriority setpriority
        sched_yield sched_getaffinity sched_setaffinity sched_getattr sched_setattr
        sched_getparam sched_setparam sched_getscheduler sched_setscheduler
        sched_get_priority_max sched_get_priority_min sched_rr_get_interval prctl
        set_tid_address set_robust_list get_robust_list rseq wait4 waitid kill tkill tgkill
        pidfd_open pidfd_send_signal pidfd_getfd prlimit64 getrlimit setrlimit ugetrlimit
        getrusage times ptrace process_vm_readv process_vm_writev kcmp ioprio_get ioprio_set
        seccomp unshare restart_syscall uname sethostname setdomainname sysinfo
        getrandom futex futex_waitv futex_wake futex_wait futex_requeue personality
    """,
    "identity": """
        getuid geteuid getgid getegid getresuid getresgid getgroups setuid setgid setreuid
        setregid setresuid setresgid setgroups setfsuid setfsgid
    """,
    "signals": """
        rt_sigaction rt_sigprocmask rt_sigreturn rt_sigpending rt_sigsuspend
        rt_sigtimedwait rt_sigqueueinfo rt_tgsigqueueinfo sigaltstack pause alarm
        signalfd signalfd4
    """,
    "time": """
        clock_getres clock_gettime clock_nanosleep nanosleep gettimeofday time getitimer
        setitimer timer_create timer_delete timer_getoverrun timer_gettime timer_settime
        timerfd_create timerfd_gettime timerfd_settime adjtimex
    """,
    "events": """
        epoll_create epoll_create1 epoll_ctl epoll_pwait epoll_pwait2 epoll_wait eventfd
        eventfd2 poll ppoll select pselect6 pipe pipe2 io_setup io_destroy io_getevents
        io_pgetevents io_submit io_cancel
    """,
    "network": """
        socket socketpair bind listen accept accept4 connect getsockname getpeername
        getsockopt setsockopt sendto recvfrom sendmsg recvmsg sendmmsg recvmmsg shutdown
    """,
    "ipc": """
        shmget shmat shmdt shmctl semget semop semctl semtimedop msgget msgsnd msgrcv msgctl
        mq_open mq_unlink mq_timedsend mq_timedreceive mq_notify mq_getsetattr
    """,
}

# Calls allowed only with some arguments.
CONDITIONAL_RULES: list[dict] = [
    {
        "names": ["clone"],
        "action": "SCMP_ACT_ALLOW",
        "args": [
            {"index": 0, "value": CLONE_NAMESPACE_MASK, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
        ],
    },
    {
        "names": ["unshare"],
        "action": "SCMP_ACT_ALLOW",
        "args": [
            {"index": 0, "value": UNSHARE_NAMESPACE_MASK, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
        ],
    },
    # clone3 passes its flags in memory, where seccomp can't look: answer ENOSYS so libc
    # falls back to clone, whose flags the rule above checks.
    {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS},
]

_UNCONDITIONAL_EXCLUDED = {"clone", "unshare"}


def seccomp_profile() -> dict:
    """The default ``linux.seccomp`` section."""
    names = sorted(
        {
            name
            for group in ALLOWED_SYSCALLS.values()
            for name in group.split()
            if name not in _UNCONDITIONAL_EXCLUDED
        }
    )
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": errno.EPERM,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]
        + copy.deepcopy(CONDITIONAL_RULES),
    }


def container_spec(
    args: list[str],
    rootfs: str = "rootfs",
    hostname: str = "slipway",
    env: list[str] | None = None,
    terminal: bool = False,
    cgroups_path: str | None = None,
    memory_limit: int | None = None,
    cpu_quota: int | None = None,
    cpu_period: int | None = None,
    cpu_shares: int | None = None,
    pids_limit: int | None = None,
) -> dict:
    """A complete OCI config.json carrying the default profile."""
    caps = list(CAPABILITIES)
    resources: dict = {"devices": copy.deepcopy(DEVICE_RULES)}
    if memory_limit is not None:
        resources["memory"] = {"limit": memory_limit, "swap": memory_limit}
    cpu = {
        key: value
        for key, value in (("quota", cpu_quota), ("period", cpu_period), ("shares", cpu_shares))
        if value is not None
    }
    if cpu:
        resources["cpu"] = cpu
    if pids_limit is not None:
        resources["pids"] = {"limit": pids_limit}
    linux: dict = {
        "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
        "resources": resources,
        "maskedPaths": list(MASKED_PATHS),
        "readonlyPaths": list(READONLY_PATHS),
        "seccomp": seccomp_profile(),
        # NET_RAW stays, but ICMP sockets work without it too, as under Docker.
        "sysctl": {"net.ipv4.ping_group_range": "0 2147483647"},
    }
    if cgroups_path:
        linux["cgroupsPath"] = cgroups_path
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": terminal,
            "user": {"uid": 0, "gid": 0},
            "args": list(args),
            "env": env
            if env is not None
            else ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
            + (["TERM=xterm"] if terminal else []),
            "cwd": "/",
            "capabilities": {
                "bounding": caps,
                "effective": caps,
                "permitted": caps,
            },
            "noNewPrivileges": True,
        },
        "root": {"path": rootfs, "readonly": False},
        "hostname": hostname,
        "mounts": copy.deepcopy(MOUNTS),
        "linux": linux,
    }
