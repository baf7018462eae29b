# -*- coding: utf-8 -*-
"""Fake endpoints of the firewall scenario, run inside the test's own network namespace.

``listener.py [--tcp PORT,PORT] ADDRESS...``: every TCP port (default below) answers one
line naming the address and port that were reached; UDP 123 answers a line too, and UDP 53 is a DNS stand-in that
answers NXDOMAIN to every query, so a name missing from /etc/hosts fails fast and no
query ever leaves the test host. UDP sockets are bound per address so that each answer
comes from the address that was asked (conntrack must see it as the reply).
"""

import socket
import struct
import sys
import threading

TCP_PORTS = (53, 80, 443, 8443)
UDP_PORTS = (53, 123)


def nxdomain(query):
    """An NXDOMAIN answer to a DNS query, or None when ``query`` is not one."""
    if len(query) < 12:
        return None
    ident, flags, qdcount = struct.unpack('!HHH', query[:6])
    if flags & 0x8000 or qdcount != 1:
        return None
    end = 12
    while end < len(query) and query[end] != 0:
        end += query[end] + 1
    end += 5  # the root label, QTYPE and QCLASS
    if end > len(query):
        return None
    flags = 0x8000 | (flags & 0x7900) | 0x0080 | 3
    return struct.pack('!HHHHHH', ident, flags, 1, 0, 0, 0) + query[12:end]


def serve_tcp(family, port):
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind(('::' if family == socket.AF_INET6 else '0.0.0.0', port))
    sock.listen(64)
    while True:
        conn, _peer = sock.accept()
        try:
            conn.sendall(('caracal-fwtest %s %d\n' % (conn.getsockname()[0], port)).encode())
        except OSError:
            pass
        finally:
            conn.close()


def serve_udp(address, port):
    family = socket.AF_INET6 if ':' in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((address, port))
    while True:
        data, peer = sock.recvfrom(2048)
        reply = nxdomain(data) if port == 53 else None
        if reply is None:
            reply = ('caracal-fwtest udp %s %d\n' % (address, port)).encode()
        sock.sendto(reply, peer)


def main():
    args = sys.argv[1:]
    tcp_ports = TCP_PORTS
    if args[:1] == ['--tcp']:
        tcp_ports = [int(p) for p in args[1].split(',')]
        args = args[2:]
    threads = []
    for family in (socket.AF_INET, socket.AF_INET6):
        for port in tcp_ports:
            threads.append(threading.Thread(target=serve_tcp, args=(family, port)))
    for address in args:
        for port in UDP_PORTS:
            threads.append(threading.Thread(target=serve_udp, args=(address, port)))
    for thread in threads:
        thread.daemon = True
        thread.start()
    sys.stdout.write('listening\n')
    sys.stdout.flush()
    for thread in threads:
        thread.join()


if __name__ == '__main__':
    main()
