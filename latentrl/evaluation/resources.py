"""Peak memory of one stretch of work (a grid point), not of the whole process.

`ru_maxrss` and `torch.cuda.max_memory_allocated` are process-wide high-water marks: in a grid every
point after the first would report the largest peak so far. Both are reset when a point starts: the GPU
counter by torch, the RSS one by writing 5 to /proc/self/clear_refs (Linux), which resets VmHWM. Where
that is not possible the RSS peak is reported as None rather than a process-wide number.
"""

from __future__ import annotations

from pathlib import Path

import torch

_STATUS = Path("/proc/self/status")


def _reset_rss_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _rss_peak_mb() -> float | None:
    for line in _STATUS.read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)  # kB
    return None


class PeakMemory:
    """`with PeakMemory() as peak: ...` then `peak.result()`: {'peak_rss_mb', 'peak_gpu_mb'} of the block."""

    def __enter__(self) -> PeakMemory:
        self.rss = _reset_rss_peak()
        self.gpu = torch.cuda.is_available()
        if self.gpu:
            torch.cuda.reset_peak_memory_stats()
        return self

    def __exit__(self, *exc) -> None:
        self.values = {
            "peak_rss_mb": _rss_peak_mb() if self.rss else None,
            "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if self.gpu else None,
        }

    def result(self) -> dict:
        return self.values
