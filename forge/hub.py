"""Reaching the Hugging Face Hub, or failing fast and clearly when it can't be reached.

Without this, transformers retries for about 50 s on a machine with no route to
the Hub, then prints a traceback. forge probes once, before the HF libraries are
imported; when the Hub is unreachable it switches them to offline mode, so what
is cached still loads and what is not fails in about a second with a sentence
saying what to do.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

from forge.embedded import is_embedded
from forge.errors import HubUnreachableError

DEFAULT_ENDPOINT = "https://huggingface.co"


def is_hub_id(ref: str) -> bool:
    return not is_embedded(ref) and not Path(ref).expanduser().exists() and not ref.startswith(("/", ".", "~"))


def offline_by_setting() -> bool:
    """HF_HUB_OFFLINE says so (the values huggingface_hub accepts)."""
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def hub_reachable(timeout: float = 3.0) -> bool:
    if offline_by_setting():
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def go_offline_if_unreachable(refs: list[str]) -> None:
    """With the model and dataset refs a run needs: the HF libraries ask no server when the
    Hub cannot be reached, or when there is nothing to download (never let a library wait on
    the network)."""
    if any(is_hub_id(r) for r in refs):
        if not hub_reachable():
            _go_offline()
    elif "HF_HUB_OFFLINE" not in os.environ:
        _go_offline()


def _go_offline() -> None:
    """HF_HUB_OFFLINE=1, also for the libraries imported already (a warm interpreter,
    forge/warm.py; a notebook), which read it once, at import."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    hub = sys.modules.get("huggingface_hub.constants")
    if hub is not None:
        hub.HF_HUB_OFFLINE = True
    datasets_config = sys.modules.get("datasets.config")
    if datasets_config is not None and os.environ.get("HF_DATASETS_OFFLINE") is None:
        datasets_config.HF_HUB_OFFLINE = datasets_config.HF_DATASETS_OFFLINE = True


def unreachable(ref: str, kind: str) -> HubUnreachableError:
    return HubUnreachableError(
        f"cannot load {kind} {ref!r}: it is not in the local Hugging Face cache and the Hub "
        f"({os.environ.get('HF_ENDPOINT', DEFAULT_ENDPOINT)}) cannot be reached from this machine. "
        f"Download it where the Hub is reachable (e.g. `hf download {ref}` into HF_HOME), "
        "or point the config at a local directory in Hub format."
    )


@contextlib.contextmanager
def libraries_offline():
    """datasets and huggingface_hub ask no server inside the block. They read HF_HUB_OFFLINE
    once, at import: setting the variable now would leave ~30 s of retries per request, so
    their flags are set for the block and put back after it."""
    import datasets.config
    import huggingface_hub.constants

    flags = [(datasets.config, "HF_HUB_OFFLINE"), (huggingface_hub.constants, "HF_HUB_OFFLINE")]
    saved = [getattr(module, name) for module, name in flags]
    for module, name in flags:
        setattr(module, name, True)
    try:
        yield
    finally:
        for (module, name), value in zip(flags, saved, strict=True):
            setattr(module, name, value)
