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
        'keys.evidence': 'pass', 'keys.kek_backup': 'not_applicable'}
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
