# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The RESP codec, the Redis client of ``_checks_host`` and the audit checks, against a tiny in-process
Redis stand-in on loopback."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import socket
import threading

import pytest

from ansible_collections.caracal.hardened.plugins.module_utils import _checks_audit as au
from ansible_collections.caracal.hardened.plugins.module_utils import _checks_host as host
from ansible_collections.caracal.hardened.plugins.module_utils._checks import FAIL, PASS

from test_checks_fixtures import PROFILE, by_service, containers, stack

PASSWORD = 'c0ffee' * 8
STREAM = PROFILE['audit_stream']
DLQ = PROFILE['audit_dlq']


class FakeRedis(object):
    """Answers AUTH, TYPE, XLEN and XINFO GROUPS in RESP2 for a dictionary of streams."""

    def __init__(self, streams, password=PASSWORD):
        self.streams = streams
        self.password = password
        self.commands = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve)
        self.thread.daemon = True
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            with conn:
                reader = au.Reader(conn.recv)
                authed = False
                while True:
                    try:
                        cmd = reader.read()
                    except au.RespError:
                        break
                    self.commands.append(cmd[0])
                    conn.sendall(self._answer(cmd, authed))
                    if cmd[0] == 'AUTH' and cmd[1] == self.password:
                        authed = True

    def _answer(self, cmd, authed):
        name = cmd[0].upper()
        if name == 'AUTH':
            return b'+OK\r\n' if cmd[1] == self.password else b'-WRONGPASS invalid username-password pair\r\n'
        if not authed:
            return b'-NOAUTH Authentication required.\r\n'
        if name == 'TYPE':
            return b'+stream\r\n' if cmd[1] in self.streams else b'+none\r\n'
        if name == 'XLEN':
            return b':%d\r\n' % self.streams.get(cmd[1], 0)
        if name == 'XINFO':
            if cmd[2] == STREAM:
                return (b'*1\r\n*6\r\n$4\r\nname\r\n$13\r\ncaracal-audit\r\n'
                        b'$9\r\nconsumers\r\n:1\r\n$7\r\npending\r\n:0\r\n')
            return b'*0\r\n'
        return b'-ERR unknown command\r\n'

    def close(self):
        self.sock.close()


@pytest.fixture
def redis_up():
    servers = []

    def start(streams, password=PASSWORD):
        server = FakeRedis(streams, password)
        servers.append(server)
        return server
    yield start
    for server in servers:
        server.close()


def ask(server, password=PASSWORD):
    client = host.RespClient('127.0.0.1', server.port, timeout=3)
    try:
        client.auth(password)
        return host.read_streams(client, PROFILE)
    finally:
        client.close()


def test_encode():
    assert au.encode('AUTH', 'pw') == b'*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n'


def test_reader_parses_every_reply_type():
    data = [b'+OK\r\n:42\r\n$5\r\nhello\r\n$-1\r\n*2\r\n$1\r\na\r\n:1\r\n-ERR boom\r\n']
    reader = au.Reader(lambda n: data.pop() if data else b'')
    assert [reader.read() for _i in range(5)] == ['OK', 42, 'hello', None, ['a', 1]]
    with pytest.raises(au.RespError, match='ERR boom'):
        reader.read()
    with pytest.raises(au.RespError, match='connection closed'):
        reader.read()


def test_reader_refuses_huge_replies():
    chunks = [b'$99999999\r\n'] + [b'x' * 65536] * 20
    reader = au.Reader(lambda n: chunks.pop(0) if chunks else b'')
    with pytest.raises(au.RespError, match='larger than'):
        reader.read()


def test_compliant_streams_pass(redis_up):
    server = redis_up({STREAM: 120, DLQ: 0})
    facts = ask(server)
    assert facts['types'] == {STREAM: 'stream', DLQ: 'stream'}
    assert facts['groups'][STREAM] == [{'name': 'caracal-audit', 'pending': 0, 'consumers': 1}]
    assert au.check_streams(PROFILE, facts, '127.0.0.1:6379')['status'] == PASS
    assert au.check_dlq(PROFILE, facts, '127.0.0.1:6379', 0)['status'] == PASS
    assert server.commands[0] == 'AUTH'


def test_missing_dlq_fails(redis_up):
    facts = ask(redis_up({STREAM: 3}))
    rec = au.check_streams(PROFILE, facts, 'x')
    assert rec['findings'] == ['%s does not exist' % DLQ]
    assert au.check_dlq(PROFILE, facts, 'x', 0)['findings'] == ['%s does not exist, so its length cannot be measured' % DLQ]


def test_growing_dlq_fails(redis_up):
    facts = ask(redis_up({STREAM: 3, DLQ: 12}))
    rec = au.check_dlq(PROFILE, facts, '127.0.0.1:6379', 10)
    assert rec['status'] == FAIL
    assert rec['findings'] == ['%s holds 12 entries (threshold 10): audit events fail after 8 deliveries' % DLQ]
    assert au.check_dlq(PROFILE, facts, '127.0.0.1:6379', 12)['status'] == PASS


def test_wrong_type_fails():
    facts = {'types': {STREAM: 'string', DLQ: 'stream'}, 'lengths': {DLQ: 0}}
    assert au.check_streams(PROFILE, facts, 'x')['findings'] == ['%s is a string, not a stream' % STREAM]


def test_wrong_password_never_shows_it(redis_up):
    server = redis_up({STREAM: 1, DLQ: 0})
    with pytest.raises(au.RespError) as info:
        ask(server, password='deadbeef' * 6)
    assert 'WRONGPASS' in str(info.value) and 'deadbeef' not in str(info.value)


def test_unreachable_redis_fails():
    rec = au.check_streams(PROFILE, {'error': 'connection refused'}, '127.0.0.1:6379')
    assert rec['findings'] == ['cannot read the audit streams at 127.0.0.1:6379: connection refused']
    assert au.check_dlq(PROFILE, {'error': 'timed out'}, 'x', 0)['status'] == FAIL


def test_redis_target_prefers_a_publish_then_the_network():
    items = stack()
    ctr, host, port, how = au.redis_target(PROFILE, containers(items))
    assert (ctr['service'], host, port, how) == ('redis', '172.18.0.11', 6379, 'container network')
    by_service(items, 'redis')['NetworkSettings']['Ports'] = {'6379/tcp': [{'HostIp': '127.0.0.1', 'HostPort': '16379'}]}
    assert au.redis_target(PROFILE, containers(items))[1:] == ('127.0.0.1', 16379, 'publish')
    assert au.redis_target(PROFILE, containers([by_service(stack(), 'api')])) is None
