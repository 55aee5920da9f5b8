"""Test actions have no network but loopback.

Checked without sending anything off the machine: the sandbox's network
namespace has no interface but `lo` and no route, so no packet could leave;
a server on 127.0.0.1 still works, which the registry and Vertex tests need.
"""

import socket
import threading


def test_only_the_loopback_interface_exists():
    assert [name for _, name in socket.if_nameindex()] == ["lo"]


def test_there_is_no_route_off_the_machine():
    with open("/proc/net/route") as routes:
        assert routes.read().splitlines()[1:] == []


def test_names_do_not_resolve():
    try:
        socket.getaddrinfo("pypi.org", 443)
    except OSError:
        return
    raise AssertionError("pypi.org resolved inside a test action: the sandbox has a network")


def test_loopback_servers_still_work():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        threading.Thread(target=lambda: server.accept()[0].sendall(b"pong"), daemon=True).start()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            assert client.recv(4) == b"pong"
