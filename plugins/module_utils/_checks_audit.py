# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks on the audit pipeline: the Redis audit stream and its dead-letter queue.

The RESP2 encoding and reply parser (``encode``, ``Reader``) that ``_checks_host.RespClient``
speaks over a plain socket, so the check needs no Redis library on the host, and the pure
evaluation of what Redis answered. The password is sent once (``AUTH``) and never kept in an
error message, a result or a log line.

This is a private module_utils (leading underscore): its API may change between minor
releases of the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.caracal.hardened.plugins.module_utils._checks import judged

MAX_REPLY = 1 << 20


class RespError(Exception):
    """An error reply from Redis (``-ERR ...``) or a protocol problem."""


def encode(*args):
    """A RESP2 array of bulk strings."""
    parts = [b'*%d\r\n' % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode('utf-8')
        parts.append(b'$%d\r\n%s\r\n' % (len(data), data))
    return b''.join(parts)


class Reader(object):
    """Parses RESP2 replies from a byte source (``recv(n)``-like callable)."""

    def __init__(self, recv):
        self._recv = recv
        self._buf = b''
        self._total = 0

    def _fill(self):
        chunk = self._recv(65536)
        if not chunk:
            raise RespError('connection closed by the server')
        self._total += len(chunk)
        if self._total > MAX_REPLY:
            raise RespError('reply larger than %d bytes' % MAX_REPLY)
        self._buf += chunk

    def _line(self):
        while b'\r\n' not in self._buf:
            self._fill()
        line, self._buf = self._buf.split(b'\r\n', 1)
        return line

    def _exact(self, size):
        while len(self._buf) < size + 2:
            self._fill()
        data, self._buf = self._buf[:size], self._buf[size + 2:]
        return data

    def read(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b'+':
            return rest.decode('utf-8', 'replace')
        if kind == b'-':
            raise RespError(rest.decode('utf-8', 'replace'))
        if kind == b':':
            return int(rest)
        if kind == b'$':
            size = int(rest)
            return None if size < 0 else self._exact(size).decode('utf-8', 'replace')
        if kind == b'*':
            count = int(rest)
            return None if count < 0 else [self.read() for _i in range(count)]
        raise RespError('unexpected reply type %r' % kind)


def xinfo_dict(reply):
    """``XINFO STREAM``/``XINFO GROUPS`` flat ``[k, v, k, v]`` lists as dictionaries."""
    if isinstance(reply, list) and reply and not isinstance(reply[0], list):
        return dict(zip(reply[0::2], reply[1::2]))
    return {}


def check_streams(profile, facts, endpoint):
    """``audit.streams``: ``facts`` is ``{'types': {stream: type}, 'lengths': {...}, 'groups': {...}}``
    or ``{'error': str}``."""
    stream, dlq = profile['audit_stream'], profile['audit_dlq']
    if facts.get('error'):
        return judged('audit.streams', ['cannot read the audit streams at %s: %s' % (endpoint, facts['error'])],
                      {'endpoint': endpoint})
    findings = []
    for name in (stream, dlq):
        kind = facts['types'].get(name)
        if kind in (None, 'none'):
            findings.append('%s does not exist' % name)
        elif kind != 'stream':
            findings.append('%s is a %s, not a stream' % (name, kind))
    return judged('audit.streams', findings, {
        'endpoint': endpoint, 'types': facts['types'], 'lengths': facts.get('lengths') or {},
        'consumer_groups': facts.get('groups') or {}})


def check_dlq(profile, facts, endpoint, max_length, previous=None):
    """``audit.dlq``: the dead-letter queue holds at most ``max_length`` entries and, when the
    length of the last verification is given (``previous``), it has not grown since."""
    dlq = profile['audit_dlq']
    if facts.get('error'):
        return judged('audit.dlq', ['cannot read %s at %s: %s' % (dlq, endpoint, facts['error'])],
                      {'endpoint': endpoint})
    length = (facts.get('lengths') or {}).get(dlq)
    if facts['types'].get(dlq) != 'stream' or length is None:
        return judged('audit.dlq', ['%s does not exist, so its length cannot be measured' % dlq],
                      {'endpoint': endpoint, 'max_length': max_length})
    findings = []
    if length > max_length:
        findings.append('%s holds %d entries (threshold %d): audit events fail after %d deliveries'
                        % (dlq, length, max_length, profile.get('audit_max_deliveries', 0)))
    if previous is not None and length > previous:
        findings.append('%s grew from %d to %d entries since the last verification: audit events are failing now'
                        % (dlq, previous, length))
    return judged('audit.dlq', findings, {'endpoint': endpoint, 'length': length, 'max_length': max_length,
                                          'previous_length': previous})


def redis_target(profile, containers):
    """``(container, host, port, how)`` of the Redis of the project, or ``None`` when it does not run here.

    The loopback publish of the contract port first, else the container's address on one of
    its networks (the compose backend keeps Redis unpublished on an internal network, which
    the host itself can still reach).
    """
    port = int(profile['services']['redis']['port'])
    for ctr in containers:
        if ctr['service'] != 'redis' or not ctr['running']:
            continue
        for pub in ctr['publishes']:
            if pub['container_port'] == port and pub['host_port']:
                host = pub['host_ip'] or '127.0.0.1'
                if host in ('0.0.0.0', '::'):
                    host = '127.0.0.1'
                return ctr, host, pub['host_port'], 'publish'
        for _net, ip in sorted(ctr['networks'].items()):
            if ip:
                return ctr, ip, port, 'container network'
        return ctr, None, None, 'unreachable'
    return None
