"""Which machine a benchmark ran on, for the rows it writes."""

import os

from fastmlp.results import machine_id


def this_machine():
    """results.machine_id of this machine, from /proc/cpuinfo and threadpoolctl."""
    info = {}
    if os.path.exists("/proc/cpuinfo"):
        for line in open("/proc/cpuinfo"):
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    from threadpoolctl import threadpool_info
    blas = next((f"{i['internal_api']}:{i.get('architecture')}" for i in threadpool_info()
                 if i.get("user_api") == "blas"), "unknown")
    return machine_id(info.get("model name", "cpu"), info.get("flags", "").split(), os.cpu_count(), blas)
