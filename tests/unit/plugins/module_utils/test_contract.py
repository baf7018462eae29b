# -*- coding: utf-8 -*-
"""The release contract is consistent and every derived view of it is right."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

import pytest

from ansible_collections.caracal.hardened.plugins.module_utils import _contract as contract


@pytest.mark.parametrize('name', contract.profile_names())
def test_every_profile_is_consistent(name):
    assert contract.check_profile(name) == []


def test_unknown_profile_is_refused():
    with pytest.raises(contract.ContractError, match='unknown Caracal release profile'):
        contract.get_profile('0.9')


def test_start_order_is_a_topological_order():
    profile = contract.get_profile('2026.07')
    order = profile['start_order']
    assert sorted(order) == sorted(profile['services'])
    for svc, spec in profile['services'].items():
        for dep in spec['depends_on']:
            assert order.index(dep) < order.index(svc), (dep, svc)
    assert order[:3] == ['postgres', 'redis', 'dbMigrate']
    assert order.index('sts') < order.index('api') < order.index('gateway')
    assert order[-1] == 'web'


def test_every_secret_has_consumers_that_exist():
    profile = contract.get_profile('2026.07')
    for name, spec in profile['secrets'].items():
        assert spec['consumers'], name
        for svc in spec['consumers']:
            assert name in profile['services'][svc]['secrets']


def test_service_secret_maps_resolve_to_env_names():
    profile = contract.get_profile('2026.07')
    assert profile['services']['api']['secrets']['caracalAdminToken'] == ['CARACAL_ADMIN_TOKEN', 'CONTROL_API_TOKEN']
    assert profile['services']['sts']['secrets']['zoneKek'] == ['ZONE_KEK']
    assert profile['services']['dbMigrate']['secrets']['postgresPassword'] == ['PGPASSWORD']
    assert 'zoneKek' not in profile['services']['gateway']['secrets']


def test_profile_is_a_copy():
    first = contract.get_profile('2026.07')
    first['services']['sts']['port'] = 1
    assert contract.get_profile('2026.07')['services']['sts']['port'] == 8080


def test_kek_rules():
    kek = contract.get_profile('2026.07')['secrets']['zoneKek']
    assert (kek['bytes'], kek['min_bytes'], kek['max_bytes']) == (32, 32, 32)
    assert kek['weak_check'] and kek['rotation'] == 'destructive'
    assert kek['consumers'] == ['sts', 'api']


def test_hmac_keys_are_hex_of_at_least_32_bytes():
    secrets = contract.get_profile('2026.07')['secrets']
    for name in ('auditHmacKey', 'streamsHmacKey', 'gatewayStsHmacKey'):
        assert secrets[name]['format'] == 'hex' and secrets[name]['min_bytes'] >= 32


@pytest.mark.parametrize('changed,expected', [
    (['gatewayStsHmacKey'], ['sts', 'gateway', 'api']),
    (['caracalAdminToken'], ['api', 'gateway', 'web']),
    (['caracalCoordinatorToken'], ['coordinator', 'web']),
    (['caracalAuthSecret'], ['web']),
    (['zoneKek'], ['sts', 'api']),
    # audit appears in the upstream roll note for the streams key but does not read it:
    # only readers restart.
    (['streamsHmacKey'], ['api', 'sts', 'gateway', 'coordinator']),
    (['redisPassword'], ['redis', 'sts', 'api', 'gateway', 'audit', 'coordinator']),
    (['postgresPassword'], ['postgres', 'dbMigrate', 'sts', 'api', 'gateway', 'audit', 'coordinator', 'web']),
    ([], []),
])
def test_roll_order(changed, expected):
    assert contract.roll_order(contract.get_profile('2026.07'), changed) == expected


def test_the_corrections_of_the_1_0_contract_apply_to_2026_07():
    # caracal-contract-1.0.md section 8: audit waits for its datastores and the migration, not
    # for sts; it does not read the streams key; the web image's /healthcheck probes /health.
    profile = contract.get_profile('2026.07')
    assert profile['services']['audit']['depends_on'] == {'postgres': 'healthy', 'redis': 'healthy',
                                                          'dbMigrate': 'completed'}
    assert 'audit' not in profile['secrets']['streamsHmacKey']['roll']
    assert profile['healthcheck']['image_paths'] == {'caracal-web': '/health'}
    assert profile['healthcheck']['path'] == '/ready'


def test_roll_order_of_unknown_secret():
    with pytest.raises(contract.ContractError):
        contract.roll_order(contract.get_profile('2026.07'), ['nope'])


def _broken(mutate):
    saved = contract.PROFILES
    profile = copy.deepcopy(saved['2026.07'])
    mutate(profile)
    contract.PROFILES = {'broken': profile}
    try:
        return contract.check_profile('broken')
    finally:
        contract.PROFILES = saved


@pytest.mark.parametrize('mutate,problem', [
    (lambda p: p['services']['sts']['depends_on'].update({'api': 'healthy'}), 'cycle'),
    (lambda p: p['services']['api']['depends_on'].update({'ghost': 'healthy'}), 'ghost'),
    (lambda p: p['secrets'].update({'orphan': {'env': ['ORPHAN'], 'kind': 'token', 'format': 'hex',
                                               'bytes': 32, 'min_bytes': 32, 'roll': []}}), 'orphan has no consumer'),
    (lambda p: p['secrets']['auditHmacKey'].update({'format': 'base64'}), 'unknown format'),
    (lambda p: p['secrets']['auditHmacKey'].update({'bytes': 16}), 'fewer bytes'),
    (lambda p: p['services']['web'].update({'publish': '0.0.0.0:3001'}), 'beyond loopback'),
    (lambda p: p['services']['audit']['secrets'].update({'missing': None}), 'unknown secret missing'),
    (lambda p: p['secrets']['auditHmacKey'].update({'roll': ['api']}), 'missing from its roll order'),
    (lambda p: p['secrets']['streamsHmacKey']['roll'].append('audit'), 'streamsHmacKey rolls audit, which does not read it'),
    (lambda p: p['healthcheck']['image_paths'].update({'caracal-ghost': '/health'}), 'unknown image caracal-ghost'),
    (lambda p: p['services']['api'].update({'runtime': dict(p['services']['api']['runtime'], cap_add=['NET_RAW'])}),
     'capability-free'),
])
def test_check_profile_finds_problems(mutate, problem):
    problems = _broken(mutate)
    assert any(problem in p for p in problems), problems


@pytest.mark.parametrize('env,expected', [
    ({}, []),
    ({'JTI_FAIL_OPEN': 'false', 'INSECURE_STS': ''}, []),
    ({'JTI_FAIL_OPEN': 'True'}, [('JTI_FAIL_OPEN', '=True')]),
    ({'INSECURE_HTTP': '1', 'INSECURE_STS': 'no'}, [('INSECURE_HTTP', 'set (non-empty)'), ('INSECURE_STS', 'set (non-empty)')]),
])
def test_fail_open_hits(env, expected):
    assert contract.fail_open_hits(contract.get_profile('2026.07'), env) == expected


def test_secret_variables_are_the_plain_names():
    names = contract.secret_variables(contract.get_profile('2026.07'))
    assert {'ZONE_KEK', 'CONTROL_API_TOKEN', 'PGPASSWORD', 'DATABASE_URL'} <= names
    assert not [n for n in names if n.endswith('_FILE')]


@pytest.mark.parametrize('mutate,problem', [
    (lambda p: p['password_sync'].update({'ghostPassword': {'service': 'postgres', 'user': 'postgres',
                                                            'superuser': 'postgres'}}), 'unknown secret ghostPassword'),
    (lambda p: p['password_sync']['postgresPassword'].update({'service': 'redis'}), 'names redis, which does not read it'),
])
def test_check_profile_finds_password_sync_problems(mutate, problem):
    problems = _broken(mutate)
    assert any(problem in p for p in problems), problems


def test_image_reference_of_a_resolved_profile():
    profile = contract.get_profile('2026.07')
    assert contract.image_reference(profile, 'sts') == 'ghcr.io/garudex-labs/caracal-go:v2026.07.03-rc.1'
    assert contract.image_reference(profile, 'web', registry='', release='2026.06.25-rc.1') == 'caracal-web:v2026.06.25-rc.1'
    digest = 'sha256:' + 'c' * 64
    assert contract.image_reference(profile, 'dbMigrate', registry='reg.test:5000/caracal',
                                    digests={'caracal-postgres': digest}) == \
        'reg.test:5000/caracal/caracal-postgres:v2026.07.03-rc.1@' + digest
    assert profile == contract.get_profile('2026.07')


@pytest.mark.parametrize('kwargs,match', [
    ({'service': 'nope'}, 'profile 2026.07 has no service nope'),
    ({'registry': 'https://reg.test'}, 'is not a registry name'),
    ({'release': '1.0.0'}, 'release 1.0.0 is not part of profile 2026.07'),
    ({'digests': {'caracal-go': 'sha256:short'}}, 'the digest for image caracal-go must be sha256'),
])
def test_image_reference_refusals_are_contract_errors(kwargs, match):
    kwargs.setdefault('service', 'sts')
    with pytest.raises(contract.ContractError, match=match):
        contract.image_reference(contract.get_profile('2026.07'), **kwargs)
