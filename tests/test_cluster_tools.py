"""The test cluster's own tools that run without a cluster: the host-state compare of
`make e2e` and the cluster DNS (tests/cluster/)."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster import dns, hoststate


def test_the_host_state_compare_names_every_item_left_behind_and_gone() -> None:
    before = {"mounts": ["/ ext4"], "links": ["eth0", "lo"], "cgroups": []}
    after = {"mounts": ["/ ext4", "/run/x tmpfs"], "links": ["lo"], "cgroups": ["/c/stoker-e2e"]}

    assert hoststate.differences(before, after) == [
        "mounts: left behind: /run/x tmpfs",
        "links: gone: eth0",
        "cgroups: left behind: /c/stoker-e2e",
    ]
    assert hoststate.differences(after, after) == []


def test_a_host_snapshot_has_every_kind_and_compares_equal_to_itself() -> None:
    snapshot = hoststate.snapshot()

    assert set(snapshot) == set(hoststate.KINDS)
    assert hoststate.differences(snapshot, snapshot) == []


def query(name: str, qtype: int = dns.TYPE_A) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    return (
        struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
        + labels
        + b"\0"
        + struct.pack("!HH", qtype, 1)
    )


@pytest.fixture
def dns_server(tmp_path: Path) -> Iterator[tuple[socket.socket, Path]]:
    """The cluster DNS on loopback with an empty hosts file and no API server."""
    (tmp_path / "etc").mkdir()
    hosts = tmp_path / "etc" / "dns-hosts"
    hosts.write_text("")
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    threading.Thread(target=dns.serve, args=(server, dns.Resolver(tmp_path)), daemon=True).start()
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(10)
    client.connect(server.getsockname())
    yield client, hosts
    client.close()


def ask(client: socket.socket, name: str, qtype: int = dns.TYPE_A) -> tuple[int, list[str]]:
    client.send(query(name, qtype))
    reply = client.recv(512)
    ident, flags, _, ancount = struct.unpack("!HHHH", reply[:8])
    assert ident == 0x1234
    addresses = [socket.inet_ntoa(reply[i - 4 : i]) for i in range(len(reply), 0, -16)][:ancount]
    return flags & 0xF, sorted(addresses)


def test_the_cluster_dns_answers_the_names_the_tests_register(
    dns_server: tuple[socket.socket, Path],
) -> None:
    client, hosts = dns_server
    hosts.write_text("git.e2e.test 10.250.0.1\nsim.e2e.test 10.250.0.1\nsim.e2e.test 10.250.0.2\n")

    assert ask(client, "git.e2e.test") == (dns.NOERROR, ["10.250.0.1"])
    assert ask(client, "SIM.e2e.test") == (dns.NOERROR, ["10.250.0.1", "10.250.0.2"])
    assert ask(client, "git.e2e.test", qtype=28) == (dns.NOERROR, [])  # AAAA: no data


def test_the_cluster_dns_refuses_outside_names_and_denies_malformed_cluster_names(
    dns_server: tuple[socket.socket, Path],
) -> None:
    client, _ = dns_server

    assert ask(client, "pypi.org") == (dns.REFUSED, [])
    assert ask(client, "a.b.c.d.svc.cluster.local") == (dns.NXDOMAIN, [])
    assert ask(client, "x.default.pod.cluster.local") == (dns.NXDOMAIN, [])


def test_the_cluster_dns_ignores_what_is_not_a_single_question_query() -> None:
    for packet in (b"", b"\0" * 11, query("a.b")[:-3], b"\x12\x34\x81\x00" + query("a")[4:]):
        with pytest.raises(dns.BadQuery):
            dns.parse_query(packet)
