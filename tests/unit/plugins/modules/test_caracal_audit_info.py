# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""caracal.hardened.caracal_audit_info against a Redis stand-in on loopback."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'module_utils'))

from ansible_collections.caracal.hardened.plugins.modules import caracal_audit_info as mod  # noqa: E402

from test_checks_audit import DLQ, PASSWORD, STREAM, FakeRedis  # noqa: E402
from test_checks_fixtures import FakeHost, by_service, record_of, run_module, stack, statuses  # noqa: E402


@pytest.fixture
def store(tmp_path):
    path = tmp_path / 'store'
    path.mkdir(mode=0o700)
    (path / 'redisPassword').write_text(PASSWORD + '\n')
    return str(path)


@pytest.fixture
def redis():
    servers = []

    def start(streams, password=PASSWORD):
        servers.append(FakeRedis(streams, password))
        return servers[-1]
    yield start
    for server in servers:
        server.close()


@pytest.mark.parametrize('check', [False, True])
def test_compliant_streams_pass(monkeypatch, store, redis, check):
    server = redis({STREAM: 5, DLQ: 0})
    kind, result = run_module(monkeypatch, mod.main, {'store_path': store, 'address': '127.0.0.1:%d' % server.port},
                              check=check)
    assert kind == 'exit' and result['changed'] is False
    assert statuses(result) == {'audit.streams': 'pass', 'audit.dlq': 'pass', 'audit.pending': 'pass'}
    assert PASSWORD not in json.dumps(result)


def test_dlq_over_the_threshold_fails(monkeypatch, store, redis):
    server = redis({STREAM: 5, DLQ: 3})
    kind, result = run_module(monkeypatch, mod.main, {'store_path': store, 'address': '127.0.0.1:%d' % server.port,
                                                      'dlq_max_length': 2})
    assert record_of(result, 'audit.dlq')['findings'] == [
        '%s holds 3 entries (threshold 2): audit events fail after 8 deliveries' % DLQ]


def test_wrong_password_fails_without_showing_it(monkeypatch, store, redis):
    server = redis({STREAM: 5, DLQ: 0}, password='other' * 10)
    kind, result = run_module(monkeypatch, mod.main, {'store_path': store, 'address': '127.0.0.1:%d' % server.port})
    assert set(statuses(result).values()) == {'fail'}
    assert 'WRONGPASS' in result['checks'][0]['findings'][0]
    assert PASSWORD not in json.dumps(result)


def test_redis_found_through_the_engine(monkeypatch, store, redis):
    server = redis({STREAM: 1, DLQ: 0})
    items = stack()
    by_service(items, 'redis')['NetworkSettings']['Ports'] = {'6379/tcp': [{'HostIp': '127.0.0.1',
                                                                            'HostPort': str(server.port)}]}
    kind, result = run_module(monkeypatch, mod.main, {'store_path': store}, FakeHost.with_stack(items))
    assert statuses(result) == {'audit.streams': 'pass', 'audit.dlq': 'pass', 'audit.pending': 'pass'}
    assert record_of(result, 'audit.streams')['evidence']['endpoint'] == '127.0.0.1:%d' % server.port


def test_no_redis_here_is_not_applicable(monkeypatch, store):
    items = [by_service(stack(), 'api')]
    kind, result = run_module(monkeypatch, mod.main, {'store_path': store}, FakeHost.with_stack(items))
    assert set(statuses(result).values()) == {'not_applicable'}
    assert "Redis (service redis of project 'caracal') does not run on this host" in result['checks'][0]['detail']


def test_missing_password_fails(monkeypatch, tmp_path, redis):
    server = redis({STREAM: 1, DLQ: 0})
    kind, result = run_module(monkeypatch, mod.main, {'store_path': str(tmp_path), 'address': '127.0.0.1:%d' % server.port})
    assert 'redisPassword is missing or empty' in result['checks'][0]['findings'][0]


def test_unreachable_redis_fails(monkeypatch, store, redis):
    server = redis({})
    port = server.port
    server.close()
    kind, result = run_module(monkeypatch, mod.main, {'store_path': store, 'address': '127.0.0.1:%d' % port, 'timeout': 2})
    assert set(statuses(result).values()) == {'fail'}
