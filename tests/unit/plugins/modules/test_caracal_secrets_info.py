# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""caracal.hardened.caracal_secrets_info end to end on a real layout and a faked docker CLI."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'module_utils'))

from ansible_collections.caracal.hardened.plugins.module_utils import _checks_groups  # noqa: E402
from ansible_collections.caracal.hardened.plugins.modules import caracal_secrets_info as mod  # noqa: E402
from ansible_collections.caracal.hardened.plugins.module_utils._secrets import fingerprint  # noqa: E402

from test_checks_fixtures import (  # noqa: E402
    FakeDatastores,
    FakeHost,
    by_service,
    layout,
    record_of,
    run_module,
    stack,
    statuses,
)


@pytest.fixture
def lay(tmp_path, monkeypatch):
    data = layout(tmp_path)
    procs = []
    monkeypatch.setattr(_checks_groups, 'scan_processes', lambda: (list(procs), 0))
    data['procs'] = procs
    data['datastores'] = FakeDatastores(monkeypatch, data['values'])
    return data


def args(lay, **more):
    return dict(lay['paths'], **more)


def leak_free(result, lay):
    text = json.dumps(result)
    for name, value in lay['values'].items():
        assert value not in text, name


@pytest.mark.parametrize('check', [False, True])
def test_compliant_host_passes(monkeypatch, lay, check):
    kind, result = run_module(monkeypatch, mod.main, args(lay), FakeHost.with_stack(stack(lay['paths']['views_path'])), check=check)
    assert kind == 'exit' and result['changed'] is False
    assert statuses(result) == {
        'secrets.file_delivery': 'pass', 'secrets.no_inline_values': 'pass', 'secrets.permissions': 'pass',
        'secrets.views': 'pass', 'secrets.runtime_profiles': 'not_applicable', 'keys.present': 'pass',
        'keys.hmac': 'pass', 'keys.kek': 'pass', 'keys.tokens': 'pass', 'keys.rotation': 'pass',
        'keys.evidence': 'pass', 'keys.kek_backup': 'not_applicable', 'keys.journal': 'pass',
        'health.credentials': 'pass'}
    assert result['summary']['passed']
    leak_free(result, lay)


def test_world_readable_secret_fails(monkeypatch, lay):
    path = os.path.join(lay['paths']['views_path'], 'redis', 'redisPassword')
    os.chmod(path, 0o444)
    kind, result = run_module(monkeypatch, mod.main, args(lay, checks=['secrets']), FakeHost.with_stack(stack(lay['paths']['views_path'])))
    rec = record_of(result, 'secrets.permissions')
    assert rec['status'] == 'fail' and rec['findings'][0].startswith(path + ': world-readable (mode 0444')
    assert [i for i, s in statuses(result).items() if s == 'fail'] == ['secrets.permissions']


def test_secret_in_an_env_var_fails(monkeypatch, lay):
    items = stack(lay['paths']['views_path'])
    coord = by_service(items, 'coordinator')
    coord['Config']['Env'].append('CARACAL_COORDINATOR_TOKEN=%s' % lay['values']['caracalCoordinatorToken'])
    kind, result = run_module(monkeypatch, mod.main, args(lay), FakeHost.with_stack(items))
    failed = sorted(i for i, s in statuses(result).items() if s == 'fail')
    assert failed == ['secrets.file_delivery', 'secrets.no_inline_values']
    assert record_of(result, 'secrets.no_inline_values')['findings'] == [
        'container caracal-coordinator-1: variable CARACAL_COORDINATOR_TOKEN holds the value of caracalCoordinatorToken '
        '(fingerprint %s)' % fingerprint(lay['values']['caracalCoordinatorToken'])]
    leak_free(result, lay)


def test_secret_in_a_process_environment_fails(monkeypatch, lay):
    lay['procs'].append({'pid': 77, 'comm': 'backup.sh', 'environ': ['PGPASSWORD=%s' % lay['values']['postgresPassword']],
                         'cmdline': '/bin/sh backup.sh'})
    kind, result = run_module(monkeypatch, mod.main, args(lay, checks=['secrets.no_inline_values']), FakeHost.with_stack(stack(lay['paths']['views_path'])))
    assert result['checks'][0]['findings'] == [
        'process 77 (backup.sh): variable PGPASSWORD holds the value of postgresPassword (fingerprint %s)'
        % fingerprint(lay['values']['postgresPassword'])]
    leak_free(result, lay)


def test_short_key_and_weak_kek_fail(monkeypatch, tmp_path):
    lay = layout(tmp_path, values={'streamsHmacKey': 'ab12' * 8, 'zoneKek': ''.join('%02x' % (255 - i) for i in range(32))})
    monkeypatch.setattr(_checks_groups, 'scan_processes', lambda: ([], 0))
    kind, result = run_module(monkeypatch, mod.main, args(lay, checks=['keys']), FakeHost.with_stack(stack(lay['paths']['views_path'])))
    assert record_of(result, 'keys.hmac')['findings'] == [
        'streamsHmacKey: breaks rule min-bytes: value has 16 bytes, at least 32 required']
    assert record_of(result, 'keys.kek')['findings'] == [
        'zoneKek: breaks rule weak-descending: value is a descending byte sequence (each byte is the previous minus one)']
    leak_free(result, lay)


def test_kek_backup_and_runtime_profiles_when_configured(monkeypatch, lay, tmp_path):
    backup = tmp_path / 'kek-backup'
    backup.mkdir()
    prof = tmp_path / 'profile'
    prof.mkdir(mode=0o700)
    (prof / 'caracal.toml').write_text('[profile]\n')
    os.chmod(str(prof / 'caracal.toml'), 0o640)
    kind, result = run_module(monkeypatch, mod.main, args(lay, kek_backup_path=str(backup), runtime_profiles=[str(prof)],
                                                          checks=['keys.kek_backup', 'secrets.runtime_profiles']),
                              FakeHost.with_stack(stack(lay['paths']['views_path'])))
    assert statuses(result) == {'secrets.runtime_profiles': 'fail', 'keys.kek_backup': 'fail'}
    assert 'no backup of the current value' in record_of(result, 'keys.kek_backup')['findings'][0]


def test_services_limit_the_scope(monkeypatch, lay):
    kind, result = run_module(monkeypatch, mod.main, args(lay, services=['redis'], checks=['keys.kek', 'secrets.views']),
                              FakeHost())
    assert statuses(result) == {'secrets.views': 'fail', 'keys.kek': 'not_applicable'}
    assert 'is not a view of a service deployed on this host' in record_of(result, 'secrets.views')['findings'][0]


@pytest.mark.parametrize('bad,msg', [
    ({'mode': '0644'}, 'grants more than owner read/write and group read'),
    ({'services': ['nope']}, 'unknown services nope'),
    ({'policies': {'nope': {}}}, 'policies: unknown secret nope'),
    ({'group': 'no-such-group-here'}, 'group no-such-group-here does not exist'),
])
def test_bad_options_fail(monkeypatch, lay, bad, msg):
    kind, result = run_module(monkeypatch, mod.main, args(lay, **bad), FakeHost())
    assert kind == 'fail' and msg in result['msg']


def test_a_credential_the_server_refuses_fails_naming_the_service(monkeypatch, lay):
    # The latent outage: the views hold the new password, Postgres still the old one.
    lay['datastores'].passwords['postgres'] = 'ab' * 16
    kind, result = run_module(monkeypatch, mod.main, args(lay, checks=['health.credentials']),
                              FakeHost.with_stack(stack(lay['paths']['views_path'])))
    rec = record_of(result, 'health.credentials')
    assert rec['status'] == 'fail' and result['summary']['passed'] is False
    services = sorted(set(f.split(':', 1)[0] for f in rec['findings']))
    assert services == ['api', 'audit', 'coordinator', 'gateway', 'sts', 'web'], rec['findings']
    assert 'sts: postgres refuses the databaseUrl it holds as caracal (refused: password authentication failed ' \
           'for user "caracal")' in rec['findings']
    # Redis accepted its credentials; each distinct credential was tried once, at the container address.
    assert not [f for f in rec['findings'] if 'redis refuses' in f]
    assert len(lay['datastores'].tried) == len(set(lay['datastores'].tried))
    assert all(host.startswith('172.18.0.') for _s, host, _u, _d in lay['datastores'].tried)
    leak_free(result, lay)


def test_a_wrong_password_in_one_view_fails_that_service_only(monkeypatch, lay):
    path = os.path.join(lay['paths']['views_path'], 'gateway', 'redisUrl')
    os.chmod(path, 0o640)
    with open(path, 'w') as handle:
        handle.write('redis://:%s@redis:6379/0\n' % ('cd' * 16))
    kind, result = run_module(monkeypatch, mod.main, args(lay, checks=['health.credentials']),
                              FakeHost.with_stack(stack(lay['paths']['views_path'])))
    assert record_of(result, 'health.credentials')['findings'] == [
        'gateway: redis refuses the redisUrl it holds (refused: password authentication failed for user "default")']


def test_a_datastore_that_does_not_run_fails(monkeypatch, lay):
    items = [i for i in stack(lay['paths']['views_path'])
             if i['Config']['Labels']['com.docker.compose.service'] != 'postgres']
    kind, result = run_module(monkeypatch, mod.main, args(lay, checks=['health.credentials']), FakeHost.with_stack(items))
    rec = record_of(result, 'health.credentials')
    assert rec['findings'] == ['postgres does not run or has no address: its credentials cannot be checked']
    lay['datastores'].down.add('redis')
    kind, result = run_module(monkeypatch, mod.main, args(lay, checks=['health.credentials']),
                              FakeHost.with_stack(stack(lay['paths']['views_path'])))
    findings = record_of(result, 'health.credentials')['findings']
    assert findings and all('redis refuses' in f and 'unreachable: connection refused' in f for f in findings)


def test_an_open_rotation_journal_fails(monkeypatch, lay):
    journal = {'version': 1, 'id': 'j-20261203T083000Z', 'opened': '2026-12-03T08:30:00Z', 'phase': 'applied',
               'secrets': {'postgresPassword': {'old_fingerprint': 'a' * 16, 'new_fingerprint': 'b' * 16}},
               'restart': ['postgres', 'sts', 'api'], 'sync': ['postgresPassword']}
    path = os.path.join(lay['paths']['archive_path'], 'journal.json')
    with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), 'w') as handle:
        json.dump(journal, handle)
    kind, result = run_module(monkeypatch, mod.main, args(lay), FakeHost.with_stack(stack(lay['paths']['views_path'])))
    assert [i for i, s in statuses(result).items() if s == 'fail'] == ['keys.journal']
    assert record_of(result, 'keys.journal')['findings'] == [
        'rotation journal j-20261203T083000Z (opened 2026-12-03T08:30:00Z, phase applied) is still open: '
        'postgresPassword; restarts owed: postgres, sts, api; credential sync owed: postgresPassword']
    with open(path, 'w') as handle:
        handle.write('{not json')
    kind, result = run_module(monkeypatch, mod.main, args(lay, checks=['keys.journal']),
                              FakeHost.with_stack(stack(lay['paths']['views_path'])))
    assert record_of(result, 'keys.journal')['findings'][0].startswith('the rotation journal %s cannot be read' % path)
