"""Peak resident memory of *this* process, for benchmark children.

``resource.getrusage(RUSAGE_SELF).ru_maxrss`` is wrong in a child started by ``subprocess``: Linux
keeps the high-water mark across ``execve``, so the child reports the parent's resident size at
fork time when that is larger (seen here: 7.8 GB reported for a child that never passed 2.5 GB).
``VmHWM`` in ``/proc/self/status`` belongs to the process's own address space.
"""

from __future__ import annotations

import resource
import sys


def peak_rss_bytes() -> int:
    """Peak resident set size of this process's own address space, in bytes."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux, bytes on macOS
    return rss if sys.platform == "darwin" else rss * 1024
