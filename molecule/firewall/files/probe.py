# -*- coding: utf-8 -*-
"""Probe endpoints: ``probe.py [--source ADDR] tcp:ADDR:PORT udp:ADDR:PORT ...``.

All probes run at once, each one connection attempt bounded by a short timeout, and the
result is printed as JSON: {"tcp:198.51.100.10:443": "caracal-fwtest ...", ...: null}.
"""

import json
import socket
import sys
import threading

TIMEOUT = 1.5


def probe(spec, results, source=None):
    proto, rest = spec.split(':', 1)
    address, port = rest.rsplit(':', 1)
    address = address.strip('[]')
    family = socket.AF_INET6 if ':' in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM if proto == 'tcp' else socket.SOCK_DGRAM)
    sock.settimeout(TIMEOUT)
    if source:
        sock.bind((source, 0))
    answer = None
    try:
        if proto == 'tcp':
            sock.connect((address, int(port)))
            sock.sendall(b'GET / HTTP/1.0\r\n\r\n')
            answer = sock.recv(200).decode('utf-8', 'replace').strip() or 'connected'
        else:
            sock.sendto(b'caracal-fwtest probe', (address, int(port)))
            answer = sock.recv(200).decode('utf-8', 'replace').strip() or 'answered'
    except (OSError, socket.timeout):
        answer = None
    finally:
        sock.close()
    results[spec] = answer


def main():
    args = sys.argv[1:]
    source = None
    if args[:1] == ['--source']:
        source, args = args[1], args[2:]
    results = {}
    threads = [threading.Thread(target=probe, args=(spec, results, source)) for spec in args]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT * 3)
    print(json.dumps(results, sort_keys=True))


if __name__ == '__main__':
    main()
