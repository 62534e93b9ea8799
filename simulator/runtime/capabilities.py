"""Linux capability names and numbers, and conversion between OCI name lists and bit masks."""

from __future__ import annotations

# Numbers from linux/capability.h, in order.
CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)

CAP_NUMBERS: dict[str, int] = {name: number for number, name in enumerate(CAPABILITIES)}


def last_cap() -> int:
    """The highest capability number this kernel knows."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return len(CAPABILITIES) - 1


def normalise(name: str) -> str:
    """``net_raw`` or ``NET_RAW`` -> ``CAP_NET_RAW``."""
    upper = name.upper()
    return upper if upper.startswith("CAP_") else "CAP_" + upper


def to_mask(names: list[str]) -> int:
    """An OCI list of capability names as a bit mask. Unknown names raise ValueError."""
    mask = 0
    for name in names:
        number = CAP_NUMBERS.get(normalise(name))
        if number is None:
            raise ValueError(f"unknown capability {name!r}")
        mask |= 1 << number
    return mask


def to_names(mask: int) -> list[str]:
    """A bit mask as capability names, lowest number first."""
    return [name for number, name in enumerate(CAPABILITIES) if mask >> number & 1]
