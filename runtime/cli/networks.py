"""`network create|ls|inspect|rm`: thin command-line verbs over runtime.network.NetworkManager."""

from __future__ import annotations

import json
import sys

from runtime.config import RuntimeConfig


def register(subparsers) -> None:
    """Add the `network` command and its verbs to an argparse subparsers object."""
    network = subparsers.add_parser("network", help="manage bridge networks")
    verbs = network.add_subparsers(dest="network_command", metavar="COMMAND", required=True)

    create = verbs.add_parser("create", help="create a bridge network")
    create.add_argument("--subnet", help="IPv4 subnet in CIDR form, e.g. 10.20.0.0/16")
    create.add_argument("--gateway", help="gateway address inside the subnet")
    create.add_argument("--driver", "-d", default="bridge", choices=["bridge"], help="only bridge")
    create.add_argument("name")
    create.set_defaults(func=_create)

    ls = verbs.add_parser("ls", aliases=["list"], help="list networks")
    ls.add_argument("--quiet", "-q", action="store_true", help="only show network ids")
    ls.set_defaults(func=_ls)

    inspect = verbs.add_parser("inspect", help="show networks as JSON")
    inspect.add_argument("names", nargs="+", metavar="NAME")
    inspect.set_defaults(func=_inspect)

    rm = verbs.add_parser("rm", aliases=["remove"], help="remove networks")
    rm.add_argument("names", nargs="+", metavar="NAME")
    rm.set_defaults(func=_rm)


def _manager(args):
    from runtime.network import NetworkManager  # imported late: `--help` needs no netlink

    config = getattr(args, "config", None) or RuntimeConfig.from_env()
    return NetworkManager(config)


def _create(args) -> int:
    net = _manager(args).create(args.name, subnet=args.subnet, gateway=args.gateway)
    print(net["id"])
    return 0


def _ls(args) -> int:
    networks = _manager(args).list()
    if args.quiet:
        for net in networks:
            print(net["id"][:12])
        return 0
    print(f"{'NETWORK ID':<14}{'NAME':<20}{'DRIVER':<9}{'SUBNET':<20}{'GATEWAY':<16}CONTAINERS")
    for net in networks:
        print(
            f"{net['id'][:12]:<14}{net['name']:<20}{net['driver']:<9}{net['subnet']:<20}"
            f"{net['gateway']:<16}{len(net['containers'])}"
        )
    return 0


def _inspect(args) -> int:
    from runtime.errors import NotFound

    manager = _manager(args)
    found, missing = [], []
    for name in args.names:
        try:
            found.append(manager.inspect(name))
        except NotFound as err:
            missing.append(str(err))
    print(json.dumps(found, indent=4, sort_keys=True))
    for message in missing:
        print(f"Error: {message}", file=sys.stderr)
    return 1 if missing else 0


def _containers(args) -> list[dict]:
    """Every container of this state root, running or stopped, with its spec."""
    from runtime.api import Runtime

    return Runtime(getattr(args, "config", None) or RuntimeConfig.from_env()).list()


def _rm(args) -> int:
    from runtime.errors import BerthError

    manager = _manager(args)
    containers = _containers(args)
    status = 0
    for name in args.names:
        try:
            manager.remove(name, users=manager.users(name, containers))
            print(name)
        except BerthError as err:
            print(f"Error: {err}", file=sys.stderr)
            status = 1
    return status
