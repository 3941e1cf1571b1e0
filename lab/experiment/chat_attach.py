"""`make chat-a` / `make chat-b`: attach this terminal to a peer's chat (the seed's experience).

    python -m lab.experiment.chat_attach a [--room chat]

Mints the room's secret on the broker's node, then replaces itself with
`docker exec -it -e NATLAB_ROOM_SECRET natlab-peer-a python3 -m peers.chat ...`, so the
terminal talks to the peer directly. The secret is in that command's environment, which docker
hands on to the chat: on no command line, of the host or the node (ps shows those to anyone). Run the other side in a second terminal; the first to
arrive waits for the other.
"""

from __future__ import annotations

import argparse
import os
import sys

from lab.engines import node_commands
from lab.errors import LabError
from lab.experiment.live import require_up
from lab.experiment.room_secrets import mint
from lab.topology import Topology, build_topology
from wire.auth import SECRET_ENV


def chat_argv(topology: Topology, label: str, room: str) -> list[str]:
    """The host command that runs the chat of pair `label`'s peer on this terminal; run it with
    chat_environment(secret): `-e NAME` without a value takes the value from docker's environment."""
    pair = topology.pair(label)
    broker = f"{topology.broker.address}:{topology.broker_port}"
    return ["docker", "exec", "-it", "-e", SECRET_ENV, topology.container_name(pair.peer.name),
            *node_commands.chat(broker, room, label)]


def chat_environment(secret: str) -> dict[str, str]:
    return {**os.environ, SECRET_ENV: secret}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lab.experiment.chat_attach", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("peer", help="the pair's label: a or b")
    parser.add_argument("--room", default=os.environ.get("ROOM") or "chat")
    args = parser.parse_args(argv)
    from lab.engines.docker.engine import DockerEngine
    from lab.paths import PROJECT_DIR

    engine = DockerEngine(build_topology(), PROJECT_DIR)
    try:
        require_up(engine)
        argv_, env = chat_argv(engine.topology, args.peer, args.room), chat_environment(mint(engine, args.room))
    except (LabError, KeyError) as exc:
        print(f"natlab: error: {exc}", file=sys.stderr)
        return 2
    os.execvpe(argv_[0], argv_, env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
