"""Is the Hugging Face hub reachable? Asked once, quickly, so that offline runs never sit in retries."""

from __future__ import annotations

import functools
import os
import socket
from urllib.parse import urlparse


def offline_requested() -> bool:
    return any(
        os.environ.get(v, "0").lower() not in ("", "0", "false") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


@functools.cache
def hub_reachable(timeout: float = 3.0) -> bool:
    """False when offline mode is set or the endpoint does not accept a TCP connection within `timeout`."""
    if offline_requested():
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False
