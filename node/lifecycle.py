"""A node program's life: say ready (what the engine waits for), then idle until stopped.

    python3 -m node.lifecycle      the main program of nodes that only need their network (peers, outsider)
"""

from __future__ import annotations

import signal
import sys

from node.network import prepare
from node.settings import encode_routes, ready_file, settings_from_env


def mark_ready() -> None:
    ready_file().write_text("ready\n")


def wait_for_stop() -> None:
    """Block until the engine stops the node (SIGTERM) or someone presses Ctrl-C."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            signal.pause()
    except KeyboardInterrupt:
        pass


def main() -> None:
    """Entry point of nodes that only need their network: peers and the outsider."""
    settings = settings_from_env()
    prepare(settings)
    mark_ready()
    print(f"{settings.name}: ready, routes {encode_routes(settings.routes) or '(connected only)'}", flush=True)
    wait_for_stop()


if __name__ == "__main__":
    main()
