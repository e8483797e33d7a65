"""One place that connects to Ray: a cluster when one is named, else a local one.

Jobs submitted with ``ray job submit`` find their cluster through RAY_ADDRESS;
a plain ``crossdiff ...`` on a laptop starts a private local instance. The
local instance binds to loopback: a single-machine run needs no network, and
some sandboxes cannot reach the machine's own external address.
"""

from __future__ import annotations

import os
from typing import Any

LOOPBACK = "127.0.0.1"


def ensure_ray(address: str | None = None, *, num_cpus: float | None = None, **init_kwargs: Any) -> bool:
    """Connect to Ray once per process.

    Args:
        address: a cluster address ("auto", "ray://...", "host:port"); defaults
            to RAY_ADDRESS, else a new local instance.
        num_cpus: CPUs of a new local instance (ignored when connecting).

    Returns:
        True when this call started or connected Ray, False when it was already up.
    """
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, **init_kwargs)
    else:
        init_kwargs.setdefault("include_dashboard", False)
        ray.init(address="local", num_cpus=num_cpus, _node_ip_address=LOOPBACK, **init_kwargs)
    return True
