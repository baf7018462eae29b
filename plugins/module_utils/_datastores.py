# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Logins to the datastores, and the SCRAM verifier Postgres stores, in plain Python.

The deployment's own checks need no client library on the host: ``pg_login`` speaks the
Postgres wire protocol far enough to authenticate (SCRAM-SHA-256, RFC 5802/7677, the method the
stack's ``pg_hba.conf`` requires) and checks the server's signature; ``redis_auth`` sends
``AUTH`` and ``PING``. Both answer ``(accepted, detail)`` and never raise for a network or
authentication problem. ``detail`` starts with ``refused:`` when the server answered and said no,
``unreachable:`` when no server answered, ``protocol:`` when it answered something else; it
never contains the password.

This is a private module_utils (leading underscore): its API may change between minor
releases of the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import hmac
import os
import socket
import struct

REFUSED, UNREACHABLE, PROTOCOL = 'refused', 'unreachable', 'protocol'


class _Protocol(Exception):
    pass


def _b64(data):
    return base64.b64encode(data).decode('ascii')


def _salted(password, salt, iterations):
    return hashlib.pbkdf2_hmac('sha256', password.encode('utf-8'), salt, iterations)


def _hmac(key, data):
    return hmac.new(key, data, hashlib.sha256).digest()


def scram_verifier(password, salt=None, iterations=4096):
    """``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>``, what Postgres keeps for a role.

    Setting a role's password to this string makes Postgres accept ``password`` without ever
    seeing it.
    """
    salt = os.urandom(16) if salt is None else salt
    salted = _salted(password, salt, iterations)
    stored = hashlib.sha256(_hmac(salted, b'Client Key')).digest()
    server = _hmac(salted, b'Server Key')
    return 'SCRAM-SHA-256$%d:%s$%s:%s' % (iterations, _b64(salt), _b64(stored), _b64(server))


# ---------------------------------------------------------------- Postgres

def _recv_exact(sock, size):
    data = b''
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise _Protocol('the server closed the connection')
        data += chunk
    return data


def _message(sock):
    kind = _recv_exact(sock, 1)
    length = struct.unpack('!I', _recv_exact(sock, 4))[0]
    return kind, _recv_exact(sock, length - 4)


def _send(sock, kind, payload):
    sock.sendall(kind + struct.pack('!I', len(payload) + 4) + payload)


def _error_text(payload):
    """The message (M) and code (C) fields of an ErrorResponse, which carry no password."""
    fields = {}
    for part in payload.split(b'\0'):
        if part:
            fields[part[:1]] = part[1:].decode('utf-8', 'replace')
    return '%s (SQLSTATE %s)' % (fields.get(b'M', 'error'), fields.get(b'C', '?'))


def _scram_exchange(sock, user, password, mechanisms):
    if b'SCRAM-SHA-256' not in mechanisms:
        raise _Protocol('the server offers no SCRAM-SHA-256 (%s)' % b', '.join(m for m in mechanisms if m).decode())
    nonce = _b64(os.urandom(18))
    bare = 'n=,r=%s' % nonce  # Postgres takes the user from the startup message
    first = ('n,,' + bare).encode('ascii')
    _send(sock, b'p', b'SCRAM-SHA-256\0' + struct.pack('!I', len(first)) + first)
    kind, payload = _message(sock)
    if kind == b'E':
        return False, '%s: %s' % (REFUSED, _error_text(payload))
    if kind != b'R' or struct.unpack('!I', payload[:4])[0] != 11:
        raise _Protocol('unexpected reply to the SCRAM first message')
    server_first = payload[4:].decode('ascii')
    attrs = dict(item.split('=', 1) for item in server_first.split(','))
    if not attrs.get('r', '').startswith(nonce):
        raise _Protocol('the server nonce does not extend ours')
    salted = _salted(password, base64.b64decode(attrs['s']), int(attrs['i']))
    client_key = _hmac(salted, b'Client Key')
    without_proof = 'c=biws,r=%s' % attrs['r']
    auth_message = ('%s,%s,%s' % (bare, server_first, without_proof)).encode('ascii')
    signature = _hmac(hashlib.sha256(client_key).digest(), auth_message)
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    _send(sock, b'p', ('%s,p=%s' % (without_proof, _b64(proof))).encode('ascii'))
    kind, payload = _message(sock)
    if kind == b'E':
        return False, '%s: %s' % (REFUSED, _error_text(payload))
    if kind != b'R' or struct.unpack('!I', payload[:4])[0] != 12:
        raise _Protocol('unexpected reply to the SCRAM final message')
    expected = _b64(_hmac(_hmac(salted, b'Server Key'), auth_message))
    if payload[4:].decode('ascii') != 'v=' + expected:
        raise _Protocol('the server signature does not match: not the server that holds this password')
    return True, None


def _pg_session(sock, user, password, database):
    params = b'user\0' + user.encode('utf-8') + b'\0database\0' + database.encode('utf-8') + b'\0\0'
    body = struct.pack('!I', 196608) + params
    sock.sendall(struct.pack('!I', len(body) + 4) + body)
    while True:
        kind, payload = _message(sock)
        if kind == b'E':
            return False, '%s: %s' % (REFUSED, _error_text(payload))
        if kind != b'R':
            if kind == b'Z':
                return True, 'accepted'
            continue  # ParameterStatus, BackendKeyData, NoticeResponse
        code = struct.unpack('!I', payload[:4])[0]
        if code == 0:
            continue  # AuthenticationOk: wait for ReadyForQuery
        if code == 10:
            ok, detail = _scram_exchange(sock, user, password, payload[4:].split(b'\0'))
            if not ok:
                return ok, detail
            continue
        if code in (3, 5):
            return False, '%s: the server asks for a %s password, not SCRAM-SHA-256' % (
                PROTOCOL, 'clear-text' if code == 3 else 'MD5')
        raise _Protocol('unsupported authentication request %d' % code)


def pg_login(host, port, user, password, database, timeout=5.0):
    """Log in to Postgres at ``host:port`` as ``user`` with ``password`` on ``database``."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except (OSError, socket.timeout) as exc:
        return False, '%s: %s:%s: %s' % (UNREACHABLE, host, port, exc)
    try:
        sock.settimeout(timeout)
        try:
            ok, detail = _pg_session(sock, user, password, database)
        except _Protocol as exc:
            return False, '%s: %s' % (PROTOCOL, exc)
        except (OSError, socket.timeout, ValueError, KeyError, struct.error) as exc:
            return False, '%s: %s:%s: %s' % (UNREACHABLE, host, port, exc)
        try:
            _send(sock, b'X', b'')
        except OSError:
            pass
        return ok, detail
    finally:
        sock.close()


# ---------------------------------------------------------------- Redis

def _resp(*args):
    out = b'*%d\r\n' % len(args)
    for arg in args:
        data = arg.encode('utf-8')
        out += b'$%d\r\n%s\r\n' % (len(data), data)
    return out


def _line(sock_file):
    line = sock_file.readline()
    if not line:
        raise _Protocol('the server closed the connection')
    return line.rstrip(b'\r\n').decode('utf-8', 'replace')


def redis_auth(host, port, password, timeout=5.0):
    """``AUTH password`` then ``PING`` at ``host:port``."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except (OSError, socket.timeout) as exc:
        return False, '%s: %s:%s: %s' % (UNREACHABLE, host, port, exc)
    try:
        sock.settimeout(timeout)
        reader = sock.makefile('rb')
        try:
            sock.sendall(_resp('AUTH', password) + _resp('PING'))
            auth, ping = _line(reader), _line(reader)
        except _Protocol as exc:
            return False, '%s: %s' % (PROTOCOL, exc)
        except (OSError, socket.timeout) as exc:
            return False, '%s: %s:%s: %s' % (UNREACHABLE, host, port, exc)
        if auth.startswith('-'):
            return False, '%s: %s' % (REFUSED, auth[1:][:120])
        if auth != '+OK' or ping != '+PONG':
            return False, '%s: unexpected replies %r, %r' % (PROTOCOL, auth[:40], ping[:40])
        return True, 'accepted'
    finally:
        sock.close()
