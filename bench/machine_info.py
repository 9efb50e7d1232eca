"""The line every benchmark prints first: the machine, Python, date and load its figures came from."""

import datetime
import os
import platform
import sys


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = " | load avg %.1f %.1f %.1f" % os.getloadavg() if hasattr(os, "getloadavg") else ""
    return (f"{platform.platform()} | {cpu} | {os.cpu_count()} CPUs | Python {sys.version.split()[0]} | "
            f"{datetime.datetime.now():%Y-%m-%d %H:%M}{load}")
