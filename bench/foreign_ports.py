"""What the foreign port check costs a create that publishes ports (issue 22).

Makes TABLES nftables tables of PORTS forwarded ports each (as other Berth installations
would, rendered by runtime/network/ruleset.py), then times runtime.network.foreign_ports.held()
against `nft -j list ruleset` (the nft command a peer tool would run) on the same rule set.
Everything it made is deleted at the end. Run as root: .venv/bin/python bench/foreign_ports.py
"""

import secrets
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runtime.network import foreign_ports, nft, ruleset  # noqa: E402

TABLES, PORTS, ROUNDS = 4, 250, 20


def best(fn) -> float:
    """The fastest of ROUNDS runs of fn(), in milliseconds."""
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1000


def main() -> None:
    names = [f"bfp{secrets.token_hex(3)}" for _ in range(TABLES)]
    try:
        for t, name in enumerate(names):
            ports = [
                {
                    "host_ip": "",
                    "host_port": 40000 + t * PORTS + i,
                    "container_port": 80,
                    "protocol": "tcp",
                    "ip": f"10.218.{t}.{2 + i % 250}",
                }
                for i in range(PORTS)
            ]
            nft.run(ruleset.render(name, [], ports))
        found = foreign_ports.held("bfpnone")  # also loads the library once
        held = sum(1 for h in found if h.owner.split("table ip ")[-1].split(" ")[0] in names)
        print(f"{TABLES} tables x {PORTS} ports: {held} forwarded ports found")
        # Best of ROUNDS: the machine is shared, the minimum is the cost without interference.
        ours = best(lambda: foreign_ports.held("bfpnone"))
        own = best(lambda: foreign_ports.held(names[0]))
        peer = best(
            lambda: subprocess.run(
                ["nft", "-j", "list", "ruleset"], capture_output=True, check=True
            )
        )
        print(f"held(), all {TABLES} tables foreign: {ours:.2f} ms")
        print(f"held(), one of them our own (skipped): {own:.2f} ms")
        print(f"nft -j list ruleset (what a tool calling nft pays): {peer:.2f} ms")
        print(f"ratio held / nft: {ours / peer:.2f}")
    finally:
        for name in names:
            nft.delete_table("ip", name)


if __name__ == "__main__":
    main()
