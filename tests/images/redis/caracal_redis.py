# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared helpers of the caracal-redis test image (entrypoint and /healthcheck).

Port, secret variable, stream names, marker path and Redis settings come from the
collection's contract, copied into the image at build time."""

import os
import socket
import sys

LIB = '/usr/local/lib/caracal-redis'
if LIB not in sys.path:
    sys.path.insert(0, LIB)

import _contract  # noqa: E402

TRAILING_WS = ' \t\r\n\v\f'
CONFIG_NAME = 'redis.conf'


class Failure(Exception):
    """A fatal, clearly worded problem."""


class RespError(Exception):
    """An error reply from Redis."""


def profile():
    return _contract.get_profile(os.environ.get('CARACAL_IMAGE_PROFILE') or None)


def settings(prof):
    svc = prof['services']['redis']
    marker = svc['ready_marker']
    return {
        'port': svc['port'],
        'var': svc['secrets']['redisPassword'][0],
        'marker': marker,
        'rundir': os.path.dirname(marker),
        'data': list(svc['volumes'].values())[0],
        'streams': [prof['audit_stream'], prof['audit_dlq']],
        'redis': dict(prof['redis_settings']),
    }


def read_password(var):
    """``NAME_FILE`` resolution (trailing whitespace trimmed); refuses when unset,
    unreadable or empty, and refuses ``NAME`` itself in the environment."""
    if var in os.environ:
        raise Failure('%s must not be set in the environment; mount the secret and set %s_FILE' % (var, var))
    fvar = var + '_FILE'
    path = os.environ.get(fvar, '')
    if not path:
        raise Failure('%s is not set' % fvar)
    try:
        with open(path, 'rb') as handle:
            data = handle.read(65536)
    except OSError as exc:
        raise Failure('cannot read %s (%s) as uid %d, groups %s: %s' % (
            fvar, path, os.getuid(), ','.join(str(g) for g in os.getgroups()), exc.strerror or exc))
    try:
        value = data.decode('utf-8').rstrip(TRAILING_WS)
    except UnicodeDecodeError:
        raise Failure('%s (%s) is not UTF-8 text' % (fvar, path))
    if not value:
        raise Failure('%s (%s) is empty' % (fvar, path))
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise Failure('%s (%s) holds control characters' % (fvar, path))
    return value


def quote(value):
    return '"' + value.replace('\\', '\\\\').replace('"', '\\"') + '"'


class Resp(object):
    """A minimal RESP2 client (no redis-py in this image, no password on any argv)."""

    def __init__(self, host, port, timeout=3.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b''

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def call(self, *args):
        parts = [b'*%d\r\n' % len(args)]
        for arg in args:
            raw = arg if isinstance(arg, bytes) else str(arg).encode('utf-8')
            parts.append(b'$%d\r\n%s\r\n' % (len(raw), raw))
        self.sock.sendall(b''.join(parts))
        return self._read()

    def _fill(self, need):
        while len(self.buf) < need:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError('connection closed by redis')
            self.buf += chunk

    def _line(self):
        while b'\r\n' not in self.buf:
            self._fill(len(self.buf) + 1)
        line, self.buf = self.buf.split(b'\r\n', 1)
        return line

    def _read(self):
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
            if size < 0:
                return None
            self._fill(size + 2)
            data, self.buf = self.buf[:size], self.buf[size + 2:]
            return data
        if kind == b'*':
            size = int(rest)
            return None if size < 0 else [self._read() for dummy in range(size)]
        raise RespError('unexpected reply type %r' % kind)


def authenticated(port, password, timeout=3.0):
    client = Resp('127.0.0.1', port, timeout)
    try:
        client.call('AUTH', password)
    except Exception:
        client.close()
        raise
    return client
