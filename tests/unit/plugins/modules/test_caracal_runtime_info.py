# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""caracal.hardened.caracal_runtime_info end to end on a faked docker CLI and /proc."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'module_utils'))

from ansible_collections.caracal.hardened.plugins.module_utils import _checks_host  # noqa: E402
from ansible_collections.caracal.hardened.plugins.modules import caracal_runtime_info as mod  # noqa: E402

from test_checks_fixtures import (  # noqa: E402
    FakeHost,
    by_service,
    fake_processes,
    proc_facts,
    record_of,
    run_module,
    stack,
    statuses,
)


JWKS_BODY = '{"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1", "x": "AAAA"}]}'


@pytest.fixture
def items(monkeypatch):
    """The compliant stack with process ids whose /proc/<pid>/status is faked."""
    return fake_processes(monkeypatch, stack())


@pytest.fixture
def metrics(monkeypatch):
    answers = {}
    asked = []

    def http_get(host, port, path='/', headers=None, timeout=5.0, **kwargs):
        if path in ('/ready', '/.well-known/jwks.json'):
            # every service is ready and the STS serves its JWKS unless a test says otherwise
            # (answers[(port, path)])
            return answers.get((port, path), {'status': 200, 'headers': [], 'body': JWKS_BODY})
        asked.append((host, port, path, dict(headers or {})))
        return answers.get(port, {'status': 401, 'headers': []})
    monkeypatch.setattr(_checks_host, 'http_get', http_get)
    return answers, asked


@pytest.mark.parametrize('check', [False, True])
def test_compliant_stack_passes(monkeypatch, items, metrics, check):
    kind, result = run_module(monkeypatch, mod.main, {}, FakeHost.with_stack(items), check=check)
    assert kind == 'exit' and result['changed'] is False
    assert result['summary']['passed'], [r for r in result['checks'] if r['status'] == 'fail']
    assert set(statuses(result).values()) == {'pass'}
    assert result['engines'] == ['docker'] and len(result['containers']) == 10
    _answers, asked = metrics
    assert sorted(p for _h, p, _path, _hd in asked) == [3000, 4000, 8080, 8081, 9090]
    assert all('Authorization' not in hd for _h, _p, _path, hd in asked)


def test_seeded_defects_fail_the_right_checks(monkeypatch, items, metrics):
    api = by_service(items, 'api')
    api['Config']['Env'] = [e for e in api['Config']['Env'] if not e.startswith('CARACAL_MODE=')] + ['CARACAL_MODE=dev']
    by_service(items, 'gateway')['HostConfig']['CapAdd'] = ['CAP_NET_ADMIN']
    answers, _asked = metrics
    answers[3000] = {'status': 200, 'headers': []}
    kind, result = run_module(monkeypatch, mod.main, {}, FakeHost.with_stack(items))
    assert kind == 'exit'
    failed = set(i for i, s in statuses(result).items() if s == 'fail')
    assert failed == {'mode.caracal_mode', 'containers.capabilities', 'metrics.bearer'}
    assert record_of(result, 'containers.capabilities')['findings'] == [
        'gateway (caracal-gateway-1): adds NET_ADMIN beyond the contract (allowed: none)']
    assert record_of(result, 'metrics.bearer')['findings'] == [
        'api (caracal-api-1): /metrics answered 200 without a bearer token (expected 401)']
    assert result['summary']['passed'] is False


def test_root_process_is_measured(monkeypatch, items, metrics):
    web = by_service(items, 'web')
    monkeypatch.setattr(_checks_host, 'proc_status',
                        lambda pid: {'uid': 0, 'euid': 0, 'cap_bnd': [], 'no_new_privs': True} if pid == web['State']['Pid']
                        else proc_facts([i for i in items if i['State']['Pid'] == pid][0]))
    kind, result = run_module(monkeypatch, mod.main, {'checks': ['containers.non_root']}, FakeHost.with_stack(items))
    assert [r['id'] for r in result['checks']] == ['containers.non_root']
    assert result['checks'][0]['findings'] == ['web (caracal-web-1): its process runs as uid 0 (root)']


def test_no_engine_is_not_applicable(monkeypatch):
    kind, result = run_module(monkeypatch, mod.main, {}, FakeHost())
    assert set(statuses(result).values()) == {'not_applicable'}
    assert all(r['detail'] == 'no container engine (docker, podman) on this host' for r in result['checks'])


def test_engine_that_does_not_answer_fails(monkeypatch):
    host = FakeHost(binaries={'docker': '/usr/bin/docker'},
                    commands={('docker', 'ps'): (1, '', 'Cannot connect to the Docker daemon at unix:///run/docker.sock')})
    kind, result = run_module(monkeypatch, mod.main, {}, host)
    assert set(statuses(result).values()) == {'fail'}
    assert result['checks'][0]['findings'] == [
        'docker is installed but its engine does not answer: Cannot connect to the Docker daemon at unix:///run/docker.sock']


def test_other_projects_are_not_this_deployment(monkeypatch, items, metrics):
    kind, result = run_module(monkeypatch, mod.main, {'project': 'other'}, FakeHost.with_stack(items))
    # Nothing of project 'other' to judge the configuration of ...
    assert set(s for i, s in statuses(result).items() if i != 'health.ready') == {'not_applicable'}
    assert "no container of the Caracal project 'other' in docker" in result['checks'][0]['detail']
    # ... but a deployment that does not run is not a working one.
    ready = record_of(result, 'health.ready')
    assert ready['status'] == 'fail' and 'sts is not running (no container)' in ready['findings']


def test_a_stopped_or_unready_service_fails_naming_it(monkeypatch, items, metrics):
    api = by_service(items, 'api')
    api['State'].update({'Status': 'exited', 'Running': False, 'ExitCode': 1})
    api['State'].pop('Health')
    by_service(items, 'coordinator')['State']['Health']['Status'] = 'unhealthy'
    answers, _asked = metrics
    answers[(8081, '/ready')] = {'status': 503, 'headers': [],
                                 'body': '{"status": "unavailable", "reason": "redis: WRONGPASS invalid password"}'}
    by_service(items, 'dbMigrate')['State']['ExitCode'] = 3
    kind, result = run_module(monkeypatch, mod.main, {'checks': ['health']}, FakeHost.with_stack(items))
    rec = record_of(result, 'health.ready')
    assert rec['status'] == 'fail' and result['summary']['passed'] is False
    assert rec['findings'] == [
        'one-shot dbMigrate did not complete: container caracal-dbMigrate-1 is exited with exit status 3',
        'api is not running (caracal-api-1 exited)',
        'gateway: /ready answered 503: redis: WRONGPASS invalid password',
        'coordinator is unhealthy (container caracal-coordinator-1)',
    ]


def test_a_job_whose_container_was_removed_is_judged_by_its_unit(monkeypatch, items, metrics):
    items = [i for i in items if i['Config']['Labels']['com.docker.compose.service'] != 'dbMigrate']
    shows = {'ActiveState=active': (0, 'Id=caracal-dbMigrate.service\nLoadState=loaded\nActiveState=active\n'
                                       'Result=success\n', '')}
    for answer, status in ((shows['ActiveState=active'], 'pass'),
                           ((0, 'Id=caracal-dbMigrate.service\nLoadState=loaded\nActiveState=failed\n'
                                'Result=exit-code\n', ''), 'fail'),
                           ((0, 'Id=caracal-dbMigrate.service\nLoadState=not-found\n', ''), 'fail')):
        fake = FakeHost.with_stack(items, binaries={'systemctl': '/usr/bin/systemctl'},
                                   commands={('systemctl', 'show'): answer})
        kind, result = run_module(monkeypatch, mod.main, {'checks': ['health.ready']}, fake)
        assert record_of(result, 'health.ready')['status'] == status, (answer, result['checks'])
    assert record_of(result, 'health.ready')['findings'] == [
        'one-shot dbMigrate has no container and no completed unit: it never ran (or was removed)']


def test_control_gate_on_disk(monkeypatch, items, metrics, tmp_path):
    for m in by_service(items, 'api')['Mounts']:
        if m['Destination'] == '/run/caracal-control':
            m['Source'] = str(tmp_path)
    (tmp_path / 'enabled').write_text('')
    kind, result = run_module(monkeypatch, mod.main, {'checks': ['access']}, FakeHost.with_stack(items))
    assert record_of(result, 'access.control')['findings'] == [
        'api (caracal-api-1): Control is enabled: the gate file %s/enabled exists' % tmp_path]
    kind, result = run_module(monkeypatch, mod.main, {'checks': ['access.control'], 'control_enabled': True},
                              FakeHost.with_stack(items))
    assert statuses(result) == {'access.control': 'pass'}


def test_unknown_check_fails(monkeypatch):
    kind, result = run_module(monkeypatch, mod.main, {'checks': ['tls']}, FakeHost())
    assert kind == 'fail' and 'unknown checks tls' in result['msg']


def test_metrics_must_take_the_current_bearer_and_refuse_the_retired_ones(monkeypatch, items, tmp_path):
    store, archive = tmp_path / 'store', tmp_path / 'archive'
    (store).mkdir()
    (archive / 'metricsBearer').mkdir(parents=True)
    current, retired, stale = 'c0ffee' * 8, 'beef01' * 8, 'beef02' * 8
    (store / 'metricsBearer').write_text(current + '\n')
    (archive / 'metricsBearer' / '20261101T000000Z-aaaa').write_text(stale + '\n')
    (archive / 'metricsBearer' / '20261201T000000Z-bbbb').write_text(retired + '\n')
    # The api still runs with the retired bearer (not restarted after the rotation).
    holds = {3000: retired}
    asked = []

    def http_get(host, port, path='/', headers=None, timeout=5.0, **kwargs):
        if path in ('/ready', '/.well-known/jwks.json'):
            return {'status': 200, 'headers': [], 'body': JWKS_BODY}
        given = (headers or {}).get('Authorization', '')
        asked.append((port, given))
        return {'status': 200 if given == 'Bearer %s' % holds.get(port, current) else 401, 'headers': []}
    monkeypatch.setattr(_checks_host, 'http_get', http_get)
    args = {'checks': ['metrics'], 'store_path': str(store), 'archive_path': str(archive)}
    kind, result = run_module(monkeypatch, mod.main, args, FakeHost.with_stack(items))
    rec = record_of(result, 'metrics.bearer')
    assert rec['status'] == 'fail'
    assert rec['findings'] == [
        'api (caracal-api-1): /metrics answered 401 to the current bearer (expected 200): the service holds another '
        'metricsBearer than the store',
        'api (caracal-api-1): /metrics accepts 1 retired bearer(s): the service was not restarted after the rotation']
    # Every endpoint was asked without a bearer, with the current one and with both retired ones, newest first.
    assert sorted(set(p for p, _g in asked)) == [3000, 4000, 8080, 8081, 9090]
    assert [g for p, g in asked if p == 8080] == ['', 'Bearer ' + current, 'Bearer ' + retired, 'Bearer ' + stale]
    text = json.dumps(result)
    assert current not in text and retired not in text and stale not in text
    # Once the api is restarted with the current bearer, the check passes.
    holds.clear()
    kind, result = run_module(monkeypatch, mod.main, args, FakeHost.with_stack(items))
    assert record_of(result, 'metrics.bearer')['status'] == 'pass'


@pytest.mark.parametrize('answer, finding', [
    ({'status': 404, 'headers': []}, 'sts (caracal-sts-1): the JWKS answered 404 (expected 200)'),
    ({'status': 200, 'headers': [], 'body': '{"keys": []}'},
     'sts (caracal-sts-1): the JWKS holds no key (clients cannot verify the tokens it issues)'),
    ({'status': 200, 'headers': [], 'body': 'not json'},
     'sts (caracal-sts-1): the JWKS holds no key (clients cannot verify the tokens it issues)'),
    ({'status': 200, 'headers': [], 'body': '{"keys": [{"kty": "OKP", "kid": "k1", "x": "AA", "d": "secret"}]}'},
     'sts (caracal-sts-1): JWKS key k1 publishes private members (d)'),
    ({'error': 'timed out'}, 'sts (caracal-sts-1): the JWKS did not answer (timed out)'),
])
def test_a_missing_empty_or_private_jwks_fails(monkeypatch, items, metrics, answer, finding):
    answers, _asked = metrics
    answers[(8080, '/.well-known/jwks.json')] = answer
    kind, result = run_module(monkeypatch, mod.main, {'checks': ['health.jwks']}, FakeHost.with_stack(items))
    rec = record_of(result, 'health.jwks')
    assert rec['status'] == 'fail' and rec['findings'] == [finding]
    assert 'secret' not in json.dumps(result)


def test_jwks_is_not_applicable_without_the_sts_on_this_host(monkeypatch, items, metrics):
    items = [i for i in items if i['Config']['Labels']['com.docker.compose.service'] != 'sts']
    kind, result = run_module(monkeypatch, mod.main, {'checks': ['health.jwks']}, FakeHost.with_stack(items))
    assert record_of(result, 'health.jwks')['status'] == 'not_applicable'
