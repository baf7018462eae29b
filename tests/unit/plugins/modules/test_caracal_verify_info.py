# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""caracal.hardened.caracal_verify_info: the five modules' checks and the checklist in one call.

The host is the one the five modules' own tests use: a faked docker, ss and nft CLI, a real
secrets layout, a real TLS edge and a Redis stand-in on loopback. The combined module must
answer exactly what the five modules and caracal_checklist_info answer one after another.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'module_utils'))
sys.path.insert(0, os.path.dirname(__file__))

from ansible_collections.caracal.hardened.plugins.module_utils import _checks_groups  # noqa: E402
from ansible_collections.caracal.hardened.plugins.module_utils import _checks_host  # noqa: E402
from ansible_collections.caracal.hardened.plugins.modules import caracal_audit_info  # noqa: E402
from ansible_collections.caracal.hardened.plugins.modules import caracal_checklist_info  # noqa: E402
from ansible_collections.caracal.hardened.plugins.modules import caracal_network_info  # noqa: E402
from ansible_collections.caracal.hardened.plugins.modules import caracal_runtime_info  # noqa: E402
from ansible_collections.caracal.hardened.plugins.modules import caracal_secrets_info  # noqa: E402
from ansible_collections.caracal.hardened.plugins.modules import caracal_tls_info  # noqa: E402
from ansible_collections.caracal.hardened.plugins.modules import caracal_verify_info as mod  # noqa: E402

from test_checks_audit import DLQ, PASSWORD, STREAM, FakeRedis  # noqa: E402
from test_checks_fixtures import (  # noqa: E402
    SS,
    FakeDatastores,
    FakeHost,
    fake_processes,
    layout,
    ruleset,
    run_module,
    stack,
    statuses,
)

pytest.importorskip('cryptography')
from test_caracal_tls_info import Edge  # noqa: E402

SINGLE = [caracal_runtime_info, caracal_secrets_info, caracal_network_info, caracal_tls_info, caracal_audit_info]


@pytest.fixture(scope='module')
def servers(tmp_path_factory):
    """A TLS edge and a Redis stand-in on loopback (they keep no state between tests)."""
    edge = Edge(tmp_path_factory.mktemp('edge'))
    redis = FakeRedis({STREAM: 5, DLQ: 0})
    yield edge, redis
    edge.close()
    redis.close()


@pytest.fixture
def world(tmp_path, monkeypatch, servers):
    """Everything the five groups measure, and the arguments of each module for it."""
    edge, redis = servers
    lay = layout(tmp_path / 'layout')
    items = fake_processes(monkeypatch, stack(lay['paths']['views_path']))
    monkeypatch.setattr(_checks_groups, 'scan_processes', lambda: ([], 0))
    real_http_get = _checks_host.http_get

    bearer = 'Bearer %s' % lay['values']['metricsBearer']

    def http_get(host, port, path='/', headers=None, **kwargs):
        # the services are ready; their metrics take the store's bearer only; the edge is real
        if path in ('/ready', '/.well-known/jwks.json'):
            return {'status': 200, 'headers': [], 'body': '{"keys": [{"kty": "OKP", "kid": "k1", "x": "AAAA"}]}'}
        if path == '/metrics':
            return {'status': 200 if (headers or {}).get('Authorization') == bearer else 401, 'headers': []}
        return real_http_get(host, port, path, headers=headers, **kwargs)
    monkeypatch.setattr(_checks_host, 'http_get', http_get)
    FakeDatastores(monkeypatch, lay['values'])
    (tmp_path / 'store').mkdir(mode=0o700)
    (tmp_path / 'store' / 'redisPassword').write_text(PASSWORD + '\n')
    args = {
        'runtime': {'timeout': 3, 'store_path': lay['paths']['store_path'],
                    'archive_path': lay['paths']['archive_path']},
        'secrets': dict(lay['paths']),
        'network': {},
        'tls': edge.args(),
        'audit': {'store_path': str(tmp_path / 'store'), 'address': '127.0.0.1:%d' % redis.port},
    }
    return {'args': args, 'items': items, 'values': lay['values']}


def host(items):
    return FakeHost.with_stack(items, binaries={'ss': '/usr/bin/ss', 'nft': '/usr/sbin/nft'},
                               commands={('ss', '-H'): (0, SS, ''), ('nft', '-j'): (0, json.dumps(ruleset()), '')})


def ids(result):
    return [r['id'] for r in result['checks']]


@pytest.mark.parametrize('check', [False, True])
def test_same_answer_as_the_six_modules(monkeypatch, world, check):
    records = []
    engines = None
    for single, (name, options) in zip(SINGLE, world['args'].items()):
        kind, result = run_module(monkeypatch, single.main, dict(options), host(world['items']), check=check)
        assert kind == 'exit', (name, result)
        records.extend(result['checks'])
        engines = result['engines'] if engines is None else engines
    kind, folded = run_module(monkeypatch, caracal_checklist_info.main, {'records': json.loads(json.dumps(records))})
    assert kind == 'exit'

    kind, result = run_module(monkeypatch, mod.main, world['args'], host(world['items']), check=check)
    assert kind == 'exit' and result['changed'] is False
    # the records of tls.certificate carry days left, measured with the real clock: equal within a run
    assert result['checks'] == records
    assert result['checklist'] == folded['checklist'] and result['summary'] == folded['summary']
    assert result['engines'] == engines == ['docker']
    assert result['library'].startswith(('OpenSSL', 'LibreSSL'))
    assert ids(result) == mod.CHECK_IDS
    assert [statuses(result)[i] for i in ('metrics.bearer', 'network.firewall', 'tls.headers', 'audit.streams')] == [
        'pass'] * 4
    text = json.dumps(result)
    for name, value in world['values'].items():
        assert value not in text, name
    assert PASSWORD not in text


def test_the_engine_is_asked_once(monkeypatch, world):
    fake = host(world['items'])
    kind, result = run_module(monkeypatch, mod.main, world['args'], fake)
    assert kind == 'exit'
    asked = [tuple(argv[:2]) for argv in fake.calls if argv[0].endswith('docker')]
    assert sorted(asked) == [('/usr/bin/docker', 'inspect'), ('/usr/bin/docker', 'ps')]
    # the runtime group still reads /proc: its process uids are measured
    assert record(result, 'containers.non_root')['evidence']['users']['caracal-api-1']['process_uid'] == 65532


def record(result, check_id):
    return [r for r in result['checks'] if r['id'] == check_id][0]


def test_records_keep_the_module_order_whatever_finishes_first(monkeypatch, world):
    finished = []

    def slow(group, seconds):
        run = group.run

        def later(*args):
            time.sleep(seconds)
            out = run(*args)
            finished.append(group.name)
            return out
        monkeypatch.setattr(group, 'run', later)
    # the runtime group finishes last, the audit group first
    for group, seconds in zip(_checks_groups.GROUPS, (0.4, 0.3, 0.2, 0.1, 0.0)):
        slow(group, seconds)
    kind, result = run_module(monkeypatch, mod.main, world['args'], host(world['items']))
    assert kind == 'exit'
    assert finished == ['audit', 'tls', 'network', 'secrets', 'runtime']
    assert ids(result) == mod.CHECK_IDS
    assert [r['group'] for r in result['checks']][:2] == ['mode', 'mode']
    assert [r['group'] for r in result['checks']][-2:] == ['audit', 'audit']


def test_the_groups_run_concurrently(monkeypatch, world):
    barrier = threading.Barrier(len(_checks_groups.GROUPS), timeout=10)
    for group in _checks_groups.GROUPS:
        def meet(*args, **kwargs):
            barrier.wait()  # raises BrokenBarrierError unless all five run at once
            return {'checks': []}
        monkeypatch.setattr(group, 'run', meet)
    kind, result = run_module(monkeypatch, mod.main, world['args'], host(world['items']))
    assert kind == 'exit', result
    assert result['checks'] == [] and result['engines'] == []


def test_a_failing_group_fails_the_module_naming_it(monkeypatch, world):
    def boom(*args):
        raise RuntimeError('the store exploded')
    monkeypatch.setattr(_checks_groups.SECRETS, 'run', boom)
    kind, result = run_module(monkeypatch, mod.main, world['args'], host(world['items']))
    assert kind == 'fail'
    assert result['msg'] == 'the secrets checks failed: RuntimeError: the store exploded'
    assert result['failed_groups'] == ['secrets']
    assert 'Traceback' in result['exception'] and 'checks' not in result


def test_fail_json_in_a_group_thread_is_that_group_failing(monkeypatch, world):
    """run_command calls fail_json when a command cannot start: one answer, from the main thread."""
    def cannot_start(module, *args):
        module.fail_json(msg='Error executing command.', rc=2)
    monkeypatch.setattr(_checks_groups.NETWORK, 'run', cannot_start)
    monkeypatch.setattr(_checks_groups.AUDIT, 'run', cannot_start)
    kind, result = run_module(monkeypatch, mod.main, world['args'], host(world['items']))
    assert kind == 'fail'
    assert result['msg'] == ('the network checks failed: GroupFailure: Error executing command.; '
                             'the audit checks failed: GroupFailure: Error executing command.')
    assert result['failed_groups'] == ['network', 'audit']


def test_required_options_only_for_the_groups_that_run(monkeypatch, world):
    kind, result = run_module(monkeypatch, mod.main, {}, host(world['items']))
    assert kind == 'fail'
    assert result['msg'] == ('secrets: secrets.archive_path, secrets.evidence_path, secrets.store_path, '
                             'secrets.views_path required by the secrets checks')
    kind, result = run_module(monkeypatch, mod.main, {'checks': ['containers', 'network']}, host(world['items']))
    assert kind == 'exit'
    assert ids(result) == [i for i in mod.CHECK_IDS if i.startswith(('containers.', 'network.'))]
    assert result['summary']['passed'] is False
    assert any(row['missing'] for row in result['checklist'])


def test_audit_reads_the_password_from_the_secrets_store_by_default(monkeypatch, world):
    args = dict(world['args'], audit={'address': world['args']['audit']['address']})
    with open(os.path.join(args['secrets']['store_path'], 'redisPassword'), 'w') as handle:
        handle.write(PASSWORD)
    kind, result = run_module(monkeypatch, mod.main, dict(args, checks=['audit']), host(world['items']))
    assert kind == 'exit'
    assert statuses(result) == {'audit.streams': 'pass', 'audit.dlq': 'pass', 'audit.pending': 'pass'}
    assert result['engines'] == []


def test_bad_options_name_their_group(monkeypatch, world):
    args = dict(world['args'], secrets=dict(world['args']['secrets'], mode='0644'))
    kind, result = run_module(monkeypatch, mod.main, args, host(world['items']))
    assert kind == 'fail' and result['msg'] == 'secrets: mode 0644 grants more than owner read/write and group read'
    kind, result = run_module(monkeypatch, mod.main, dict(world['args'], checks=['tls', 'nope']))
    assert kind == 'fail' and 'unknown checks nope' in result['msg']
    kind, result = run_module(monkeypatch, mod.main, dict(world['args'], profile='1999.01'))
    assert kind == 'fail' and result['msg'].startswith('runtime: ')
