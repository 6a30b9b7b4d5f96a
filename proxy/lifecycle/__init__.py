"""Process lifecycle: regogate's children, their children and its private directories go when it goes."""

from regogate.proxy.lifecycle._private_dir import OWNER_FILE, private_dir, process_start_time, sweep_stale_dirs
from regogate.proxy.lifecycle._watchdog import (
    SESSION_ENV,
    death_signal_hook,
    group_alive,
    kill_session,
    session_processes,
    start_watchdog,
)

__all__ = [
    "OWNER_FILE",
    "SESSION_ENV",
    "death_signal_hook",
    "group_alive",
    "kill_session",
    "private_dir",
    "process_start_time",
    "session_processes",
    "start_watchdog",
    "sweep_stale_dirs",
]
