"""CPU ticks from /proc: how much of the machine other processes used while a run was measured."""

from __future__ import annotations


def machine_busy_ticks() -> int:
    """CPU ticks the machine spent busy, on all cores (idle, iowait and steal left out).

    Interrupts count: the kernel charges a tick spent in one to the process it interrupted as well, so the
    processes' own ticks (`process_ticks`) include them too.
    """
    with open("/proc/stat") as stat:
        user, nice, system, _idle, _iowait, irq, softirq = (int(value) for value in stat.readline().split()[1:8])
    return user + nice + system + irq + softirq


def process_ticks(pid: int) -> int:
    """User and system ticks of a process, with those of its children it waited for (each kubectl)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return sum(int(value) for value in fields[11:15])
