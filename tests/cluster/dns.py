"""The test cluster's DNS: `<service>.<namespace>.svc.cluster.local` from the API server.

    python tests/cluster/dns.py --bind 10.250.0.1 --state /tmp/stoker-cluster

Answers A queries for a Service's ClusterIP (a headless Service: its endpoints' addresses;
`<hostname>.<service>.<namespace>.svc.cluster.local`: that endpoint's), looked up in the API
server per query with the cluster's admin certificate, and for the names listed in
`<state>/etc/dns-hosts` (`name address` lines: the tests' own servers). Other names under
`cluster.local` are NXDOMAIN; any other name is REFUSED at once, since the cluster has no way out.
Only what the test cluster needs: one question per query, UDP, A records (other types get an
empty answer). Standard library only: it runs beside the node's components in up.sh.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import ssl
import struct
import sys
import urllib.error
import urllib.request
from pathlib import Path

ZONE = "cluster.local"
LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
TYPE_A, CLASS_IN = 1, 1
NOERROR, SERVFAIL, NXDOMAIN, REFUSED = 0, 2, 3, 5
TTL = 5


class BadQuery(ValueError):
    """The packet is not a DNS query this server answers."""


def parse_query(packet: bytes) -> tuple[int, int, str, int, bytes]:
    """(id, flags, lower-case name, qtype, raw question) of a one-question query."""
    if len(packet) < 12 or len(packet) > 512:
        raise BadQuery("size")
    ident, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if flags & 0x8000 or qdcount != 1:
        raise BadQuery("not a single-question query")
    labels, offset = [], 12
    while True:
        if offset >= len(packet):
            raise BadQuery("truncated name")
        length = packet[offset]
        offset += 1
        if length == 0:
            break
        if length > 63 or offset + length > len(packet):
            raise BadQuery("bad label")
        labels.append(packet[offset : offset + length].decode("ascii", "replace").lower())
        offset += length
    if offset + 4 > len(packet):
        raise BadQuery("truncated question")
    qtype, _qclass = struct.unpack("!HH", packet[offset : offset + 4])
    return ident, flags, ".".join(labels), qtype, packet[12 : offset + 4]


def answer(ident: int, flags: int, question: bytes, rcode: int, addresses: list[str]) -> bytes:
    """The response: authoritative, the question echoed, one A record per address."""
    out_flags = 0x8000 | (flags & 0x7900) | 0x0400 | rcode  # QR, opcode and RD copied, AA
    header = struct.pack("!HHHHHH", ident, out_flags, 1, len(addresses), 0, 0)
    records = b"".join(
        struct.pack("!HHHIH", 0xC00C, TYPE_A, CLASS_IN, TTL, 4) + socket.inet_aton(a)
        for a in addresses
    )
    return header + question + records


class Resolver:
    """Names to addresses: the hosts file, then the API server's Services."""

    def __init__(self, state: Path) -> None:
        self.hosts = state / "etc" / "dns-hosts"
        self.kubeconfig = state / "etc" / "admin.kubeconfig"
        self.context: ssl.SSLContext | None = None  # made on the first Service look-up

    def _get(self, path: str) -> dict[str, object] | None:
        config = _read_kubeconfig(self.kubeconfig)
        if self.context is None:
            self.context = ssl.create_default_context(cafile=config["ca"])
            self.context.load_cert_chain(config["cert"], config["key"])
        try:
            with urllib.request.urlopen(
                config["server"] + path, context=self.context, timeout=2
            ) as response:
                body: dict[str, object] = json.loads(response.read(1 << 20))
                return body
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise

    def _hosts(self) -> dict[str, list[str]]:
        table: dict[str, list[str]] = {}
        if self.hosts.is_file():
            for line in self.hosts.read_text().splitlines():
                parts = line.split()
                if len(parts) == 2 and not line.startswith("#"):
                    table.setdefault(parts[0].lower().rstrip("."), []).append(parts[1])
        return table

    def resolve(self, name: str) -> tuple[int, list[str]]:
        """(rcode, addresses) for `name`."""
        hosts = self._hosts()
        if name in hosts:
            return NOERROR, hosts[name]
        if not name.endswith("." + ZONE):
            return REFUSED, []
        labels = name.removesuffix("." + ZONE).split(".")
        if len(labels) not in (3, 4) or labels[-1] != "svc":
            return NXDOMAIN, []
        if not all(LABEL.match(label) for label in labels[:-1]):
            return NXDOMAIN, []
        host, (service, namespace) = (labels[0] if len(labels) == 4 else None), labels[-3:-1]
        svc = self._get(f"/api/v1/namespaces/{namespace}/services/{service}")
        if svc is None:
            return NXDOMAIN, []
        cluster_ip = svc.get("spec", {}).get("clusterIP")  # type: ignore[attr-defined]
        if host is None and cluster_ip and cluster_ip != "None":
            return NOERROR, [cluster_ip]
        endpoints = self._get(f"/api/v1/namespaces/{namespace}/endpoints/{service}") or {}
        found = [
            address["ip"]
            for subset in endpoints.get("subsets") or []  # type: ignore[attr-defined]
            for address in subset.get("addresses") or []
            if host is None or address.get("hostname") == host
        ]
        return (NOERROR, found) if found else (NXDOMAIN, [])


def _read_kubeconfig(path: Path) -> dict[str, str]:
    """server, ca, cert and key of the flow-style kubeconfig up.sh writes (no YAML parser here)."""
    text = path.read_text()

    def field(key: str) -> str:
        match = re.search(rf"{key}: \"?([^\",}}\s]+)", text)
        if not match:
            raise ValueError(f"no {key} in {path}")
        return match.group(1)

    return {
        "server": field("server"),
        "ca": field("certificate-authority"),
        "cert": field("client-certificate"),
        "key": field("client-key"),
    }


def serve(sock: socket.socket, resolver: Resolver) -> None:
    """Answer queries until killed."""
    while True:
        packet, peer = sock.recvfrom(512)
        try:
            ident, flags, name, qtype, question = parse_query(packet)
        except BadQuery:
            continue
        try:
            rcode, addresses = resolver.resolve(name)
        except (OSError, ValueError) as error:
            print(f"dns: {name}: {error}", file=sys.stderr, flush=True)
            rcode, addresses = SERVFAIL, []
        records = addresses if qtype == TYPE_A else []  # other types: the name exists, no data
        sock.sendto(answer(ident, flags, question, rcode, records), peer)


def main(argv: list[str] | None = None) -> int:
    """Serve DNS on --bind:53 for the cluster whose state directory is --state."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bind", required=True)
    parser.add_argument("--port", type=int, default=53)
    parser.add_argument("--state", type=Path, required=True)
    args = parser.parse_args(argv)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((args.bind, args.port))
    serve(sock, Resolver(args.state))
    return 0


if __name__ == "__main__":
    sys.exit(main())
