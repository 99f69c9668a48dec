"""Are remote services reachable? Asked once, quickly, so that offline runs never sit in retries."""

from __future__ import annotations

import functools
import os
import socket
from urllib.parse import urlparse


def offline_requested() -> bool:
    return any(
        os.environ.get(v, "0").lower() not in ("", "0", "false") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


def reachable(url: str, timeout: float = 3.0) -> bool:
    """Does the host of `url` accept a TCP connection within `timeout` seconds?"""
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


@functools.cache
def hub_reachable() -> bool:
    """False when offline mode is set or the Hugging Face endpoint does not answer."""
    return not offline_requested() and reachable(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
