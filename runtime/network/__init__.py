"""Bridge networking: networks, veth endpoints, addresses, nftables port maps, hosts files.

How a published port travels (all rules live in one nft table `ip <prefix>`, rewritten whole
in one transaction, never touching anyone else's tables):

- from another host: prerouting DNAT (`fib daddr type local`) to the container, forwarded
  into the bridge; the container sees the real client address.
- from the host itself, 127.0.0.1:port included: output DNAT. A loopback source may leave
  through the bridge only because route_localnet=1 is set on the bridge (never on the host's
  outward interfaces or lo: CVE-2020-8558), and postrouting masquerades 127.0.0.0/8 there.
  A raw-priority prerouting rule drops anything arriving from a bridge for 127.0.0.0/8, so
  route_localnet does not open the host's loopback services to containers.
- from a container (hairpin): DNAT, then masquerade of subnet-to-subnet DNATed traffic, and
  hairpin mode on each bridge port so a container can reach its own published port.
- everything else aimed at a container address is dropped in forward; networks cannot reach
  each other. Outbound traffic is masqueraded.

State (networks, addresses, MACs, ports per container) is a SQLite file under
config.networks_dir (state.py), changed under an flock in one transaction per save, so
concurrent starts never share an address. The start path uses hand-built netlink requests (rtnl.py) and libnftables in process.
"""

from runtime.network.manager import DEFAULT_NETWORK, NetworkManager
from runtime.network.netlink import loopback_up
from runtime.network.ports import parse_publish

__all__ = ["DEFAULT_NETWORK", "NetworkManager", "loopback_up", "parse_publish"]
