# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""caracal.hardened.datastore_credentials with the datastores and psql faked.

The fake Postgres holds a password per role; a repair must reach it only as SCRAM verifiers on
psql's standard input, in one transaction, and the module must never show a value.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import hmac
import json
import re

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.caracal.hardened.plugins.modules import datastore_credentials as dc

PG_PW = 'a1' * 24
REDIS_PW = 'b2' * 24
EXEC = ['docker', 'compose', 'exec', '--no-TTY', '--user', 'postgres', 'postgres']


class Exited(Exception):
    pass


class Failed(Exception):
    pass


def verifies(verifier, password):
    """Whether ``verifier`` (SCRAM-SHA-256$iter:salt$StoredKey:ServerKey) is one of ``password``."""
    match = re.match(r'^SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)$', verifier)
    iterations, salt, stored = int(match.group(1)), base64.b64decode(match.group(2)), base64.b64decode(match.group(3))
    salted = hashlib.pbkdf2_hmac('sha256', password.encode(), salt, iterations)
    client_key = hmac.new(salted, b'Client Key', hashlib.sha256).digest()
    return hashlib.sha256(client_key).digest() == stored


class FakeServers(object):
    def __init__(self, pg_roles, redis_password):
        self.pg_roles = dict(pg_roles)     # role -> the password the server accepts
        self.redis_password = redis_password
        self.stdin = []
        self.argv = []
        self.down = False
        self.inspected = []
        self.addresses = []

    def pg_login(self, host, port, user, password, database, timeout=5.0):
        self.addresses.append((host, port))
        if self.down:
            return False, 'unreachable: %s:%d: [Errno 111] Connection refused' % (host, port)
        if self.pg_roles.get(user) == password:
            return True, 'accepted'
        return False, 'refused: password authentication failed for user "%s" (SQLSTATE 28P01)' % user

    def redis_auth(self, host, port, password, timeout=5.0):
        self.addresses.append((host, port))
        if password == self.redis_password:
            return True, 'accepted'
        return False, 'refused: WRONGPASS invalid username-password pair'

    def run_command(self, module, argv, data=None, binary_data=False):
        if argv[1:2] == ['inspect']:
            self.inspected.append(argv[2])
            networks = {'caracal_data': {'IPAddress': '10.89.0.%d' % (5 if 'postgres' in argv[2] else 6)}, 'none': {}}
            return 0, json.dumps([{'NetworkSettings': {'Networks': networks}}]), ''
        self.argv.append(argv)
        self.stdin.append(data)
        lines = data.strip().splitlines()
        assert lines[0] == 'BEGIN;' and lines[-1] == 'COMMIT;'
        for line in lines[1:-1]:
            role, verifier = re.match(r'^ALTER ROLE "([^"]+)" PASSWORD \'([^\']+)\';$', line).groups()
            # the server learns only the verifier: find the password it verifies, as a login would
            for candidate in (PG_PW,):
                if verifies(verifier, candidate):
                    self.pg_roles[role] = candidate
        return 0, '', ''


@pytest.fixture
def store(tmp_path):
    values = {
        'postgresPassword': PG_PW, 'redisPassword': REDIS_PW,
        'databaseUrl': 'postgres://caracal:%s@postgres:5432/caracal' % PG_PW,
        'authDatabaseUrl': 'postgres://caracal:%s@postgres:5432/caracal_auth' % PG_PW,
        'redisUrl': 'redis://:%s@redis:6379' % REDIS_PW,
    }
    for name, value in values.items():
        (tmp_path / name).write_text(value + '\n')
    return str(tmp_path)


def run(monkeypatch, servers, check=False, **args):
    monkeypatch.setattr(dc, 'pg_login', servers.pg_login)
    monkeypatch.setattr(dc, 'redis_auth', servers.redis_auth)

    def run_command(module, argv, **kwargs):
        return servers.run_command(module, argv, **kwargs)
    monkeypatch.setattr(basic.AnsibleModule, 'run_command', run_command)
    outcome = {}

    def exit_json(self, **result):
        outcome['result'] = result
        raise Exited()

    def fail_json(self, **result):
        outcome['result'] = dict(result, failed=True)
        raise Failed()
    monkeypatch.setattr(basic.AnsibleModule, 'exit_json', exit_json)
    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', fail_json)
    args = dict(args, _ansible_check_mode=check)
    with patch_module_args(args):
        with pytest.raises((Exited, Failed)):
            dc.main()
    text = json.dumps(outcome['result'])
    assert PG_PW not in text and REDIS_PW not in text
    return outcome['result']


def full_args(store):
    return {'store_path': store, 'postgres': {'exec': EXEC, 'roles': ['caracal', 'postgres']}, 'redis': {}}


def test_accepted_credentials_change_nothing(monkeypatch, store):
    servers = FakeServers({'caracal': PG_PW, 'postgres': PG_PW}, REDIS_PW)
    result = run(monkeypatch, servers, **full_args(store))
    assert result['changed'] is False and result['restart'] == []
    assert [(e['secret'], e['user'], e['database'], e['accepted']) for e in result['postgres']['logins']] == [
        ('databaseUrl', 'caracal', 'caracal', True), ('authDatabaseUrl', 'caracal', 'caracal_auth', True)]
    assert result['redis']['accepted'] is True and servers.stdin == []


def test_a_refused_postgres_login_is_repaired_with_verifiers_only(monkeypatch, store):
    servers = FakeServers({'caracal': 'old' * 16, 'postgres': 'old' * 16}, REDIS_PW)
    result = run(monkeypatch, servers, **full_args(store))
    assert result['changed'] is True and result['postgres']['repaired'] == ['caracal', 'postgres']
    assert all(e['accepted'] for e in result['postgres']['logins'])
    assert servers.pg_roles == {'caracal': PG_PW, 'postgres': PG_PW}
    # one transaction on stdin; the password is in no statement and no argument
    assert len(servers.stdin) == 1 and PG_PW not in servers.stdin[0]
    assert servers.stdin[0].count('SCRAM-SHA-256$4096:') == 2
    assert servers.argv[0][:len(EXEC)] == EXEC and PG_PW not in ' '.join(servers.argv[0])


def test_check_mode_reports_the_repair_and_changes_nothing(monkeypatch, store):
    servers = FakeServers({'caracal': 'old' * 16, 'postgres': 'old' * 16}, REDIS_PW)
    result = run(monkeypatch, servers, check=True, **full_args(store))
    assert result['changed'] is True and result['postgres']['repaired'] == ['caracal', 'postgres']
    assert servers.stdin == [] and servers.pg_roles['caracal'] == 'old' * 16


def test_an_unreachable_postgres_fails_without_a_repair(monkeypatch, store):
    servers = FakeServers({'caracal': PG_PW, 'postgres': PG_PW}, REDIS_PW)
    servers.down = True
    result = run(monkeypatch, servers, **full_args(store))
    assert result['failed'] and 'Start the stack and run again' in result['msg'] and servers.stdin == []


def test_repair_off_fails_naming_the_refused_url(monkeypatch, store):
    servers = FakeServers({'caracal': 'old' * 16}, REDIS_PW)
    args = dict(full_args(store), repair=False)
    result = run(monkeypatch, servers, **args)
    assert result['failed'] and 'databaseUrl (user caracal)' in result['msg'] and servers.stdin == []


def test_a_refused_redis_password_returns_redis_and_its_clients(monkeypatch, store):
    servers = FakeServers({'caracal': PG_PW, 'postgres': PG_PW}, 'old' * 16)
    result = run(monkeypatch, servers, **full_args(store))
    assert result['redis']['accepted'] is False
    assert result['restart'][0] == 'redis' and 'sts' in result['restart'] and result['changed'] is False


def test_role_names_are_checked_before_a_repair(monkeypatch, store):
    servers = FakeServers({'caracal': 'old' * 16}, REDIS_PW)
    args = full_args(store)
    args['postgres'] = {'exec': EXEC, 'roles': ['caracal"; DROP ROLE x; --']}
    result = run(monkeypatch, servers, **args)
    assert result['failed'] and 'plain role names' in result['msg'] and servers.stdin == []


def test_a_failed_psql_keeps_no_verifier_in_the_message(monkeypatch, store):
    servers = FakeServers({'caracal': 'old' * 16, 'postgres': 'old' * 16}, REDIS_PW)

    def failing(module, argv, data=None, binary_data=False):
        return 1, '', 'ERROR:  role "postgres" does not exist\nLINE 1: ALTER ROLE "postgres" PASSWORD \'%s\'' % (
            re.search(r"'(SCRAM[^']+)'", data).group(1))
    servers.run_command = failing
    result = run(monkeypatch, servers, **full_args(store))
    assert result['failed'] and 'SCRAM-SHA-256$[verifier]' in result['msg'] and '4096:' not in result['msg']


def test_unpublished_datastores_are_reached_at_their_container_address(monkeypatch, store):
    servers = FakeServers({'caracal': PG_PW, 'postgres': PG_PW}, REDIS_PW)
    args = {'store_path': store, 'engine': '/usr/bin/podman',
            'postgres': {'container': 'caracal-postgres', 'exec': EXEC, 'roles': ['caracal']},
            'redis': {'container': 'caracal-redis'}}
    result = run(monkeypatch, servers, **args)
    assert result['changed'] is False
    assert servers.inspected == ['caracal-postgres', 'caracal-redis']
    assert set(servers.addresses) == {('10.89.0.5', 5432), ('10.89.0.6', 6379)}


def test_loopback_publishes_by_default(monkeypatch, store):
    servers = FakeServers({'caracal': PG_PW, 'postgres': PG_PW}, REDIS_PW)
    run(monkeypatch, servers, **full_args(store))
    assert set(servers.addresses) == {('127.0.0.1', 5432), ('127.0.0.1', 6379)} and servers.inspected == []


@pytest.mark.parametrize('detail, answer', [
    ('127.0.0.1:5432 refused the login of caracal to caracal: password authentication failed', True),
    ('10.89.0.6:6379 refused AUTH: WRONGPASS invalid username-password pair', True),
    ('refused: password authentication failed for user "caracal"', True),
    ('connection refused at 127.0.0.1:5432', False),
    ('no answer from 10.89.0.5:5432 within the timeout', False),
    ('unreachable: 127.0.0.1:5432: [Errno 111] Connection refused', False),
])
def test_a_refusal_is_told_from_a_server_that_did_not_answer(detail, answer):
    assert dc.refused(detail) is answer
