# -*- coding: utf-8 -*-
"""The release contract is consistent and every derived view of it is right."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import re

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


def _broken(mutate, name='2026.07'):
    saved = contract.PROFILES
    profile = copy.deepcopy(saved[name])
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


# ---------------------------------------------------------------- profile 1.0 (contract data only)

SERVICE_SECRETS_1_0 = {
    'postgres': ['postgresPassword'],
    'redis': ['redisPassword'],
    'dbMigrate': ['postgresPassword', 'apiDbPassword', 'stsDbPassword', 'gatewayDbPassword', 'auditDbPassword',
                  'coordinatorDbPassword', 'authDbPassword'],
    'sts': ['stsDatabaseUrl', 'redisUrl', 'secretStoreKek', 'auditHmacKey', 'streamsHmacKey', 'gatewayStsHmacKey',
            'metricsBearer'],
    'api': ['apiDatabaseUrl', 'redisUrl', 'secretStoreKek', 'streamsHmacKey', 'gatewayStsHmacKey',
            'caracalAdminToken', 'metricsBearer', 'auditHmacKey'],
    'gateway': ['gatewayDatabaseUrl', 'redisUrl', 'streamsHmacKey', 'auditHmacKey', 'gatewayStsHmacKey',
                'caracalAdminToken', 'metricsBearer'],
    'audit': ['auditDatabaseUrl', 'redisUrl', 'auditHmacKey', 'metricsBearer'],
    'coordinator': ['coordinatorDatabaseUrl', 'redisUrl', 'streamsHmacKey', 'idempotencyHmacKey',
                    'caracalCoordinatorToken', 'metricsBearer'],
    'web': ['authDatabaseUrl', 'caracalAuthSecret', 'caracalAdminToken', 'caracalCoordinatorToken'],
}

ROLE_SERVICES = ('api', 'sts', 'gateway', 'audit', 'coordinator')


@pytest.fixture
def one():
    return contract.get_profile('1.0')


def test_1_0_is_consistent_and_2026_07_stays_the_default():
    assert contract.check_profile('1.0') == []
    assert contract.DEFAULT_PROFILE == '2026.07'
    assert contract.get_profile()['name'] == '2026.07'


def test_only_deployable_profiles_can_be_deployed():
    assert contract.get_profile('2026.07')['deployable'] is True
    assert contract.get_profile('1.0')['deployable'] is False
    assert contract.get_profile(contract.DEFAULT_PROFILE)['deployable'] is True


def test_profiles_share_one_schema():
    old, new = contract.PROFILES['2026.07'], contract.PROFILES['1.0']
    assert sorted(old) == sorted(new)
    for profile in (old, new):
        for name, spec in profile['secrets'].items():
            assert 'unmounted' in spec, name
        for name, svc in profile['services'].items():
            assert 'secret_targets' in svc, name
        for name, sync in profile['password_sync'].items():
            assert sync['method'] in contract.PASSWORD_SYNC_METHODS, name


def test_1_0_releases_are_semver(one):
    assert one['releases'] == ['1.0.0'] and one['default_release'] == '1.0.0'
    assert one['image_tag_format'] == 'v{release}'
    fmt = re.compile(one['release_format'])
    for good in ('1.0.0', '1.0.0-rc.3', '0.2.1', '10.20.30'):
        assert fmt.match(good), good
    for bad in ('v1.0.0', '1.0', '01.0.0', '1.0.0-rc', '1.0.0-beta.1', '2026.07.03-rc.1x'):
        assert not fmt.match(bad), bad
    calver = re.compile(contract.get_profile('2026.07')['release_format'])
    assert calver.match('2026.07.03-rc.1') and not calver.match('1.0.0')


def test_1_0_image_references(one):
    assert contract.image_reference(one, 'sts') == 'ghcr.io/garudex-labs/caracal-go:v1.0.0'
    assert contract.image_reference(one, 'web', registry='') == 'caracal-web:v1.0.0'
    digest = 'sha256:' + 'd' * 64
    assert contract.image_reference(one, 'dbMigrate', digests={'caracal-postgres': digest}) == \
        'ghcr.io/garudex-labs/caracal-postgres:v1.0.0@' + digest
    images = dict((svc, spec['image']) for svc, spec in one['services'].items())
    assert images == {'postgres': 'caracal-postgres', 'redis': 'caracal-redis', 'dbMigrate': 'caracal-postgres',
                      'sts': 'caracal-go', 'api': 'caracal-node', 'gateway': 'caracal-go', 'audit': 'caracal-go',
                      'coordinator': 'caracal-node', 'web': 'caracal-web'}
    with pytest.raises(contract.ContractError, match='release 2026.07.03-rc.1 is not part of profile 1.0'):
        contract.image_reference(one, 'sts', release='2026.07.03-rc.1')


def test_the_build_script_finds_each_release_in_its_own_profile():
    # tests/images/build.sh picks the profile whose tags hold the release, then checks it.
    found = {}
    for name in contract.profile_names():
        prof = contract.get_profile(name)
        for release in prof['releases']:
            found.setdefault(prof['image_tag_format'].format(release=release), []).append(name)
    assert found['v2026.07.03-rc.1'] == ['2026.07'] and found['v2026.06.25-rc.1'] == ['2026.07']
    assert found['v1.0.0'] == ['1.0']
    assert all(len(names) == 1 for names in found.values())


@pytest.mark.parametrize('svc,command,port,publish', [
    ('postgres', None, 5432, '127.0.0.1:5432'),
    ('redis', None, 6379, '127.0.0.1:6379'),
    ('dbMigrate', ['/bin/sh', '/usr/local/bin/caracal-migrate'], None, None),
    ('sts', ['/usr/local/bin/sts'], 8080, '127.0.0.1:8080'),
    ('api', ['/app/api/dist/main.js'], 3000, '127.0.0.1:3000'),
    ('gateway', ['/usr/local/bin/gateway'], 8081, '127.0.0.1:8081'),
    ('audit', ['/usr/local/bin/audit'], 9090, '127.0.0.1:9090'),
    ('coordinator', ['/app/coordinator/dist/main.js'], 4000, '127.0.0.1:4000'),
    ('web', ['/app/auth/dist/server.js'], 3002, '127.0.0.1:3001'),
])
def test_1_0_services(one, svc, command, port, publish):
    spec = one['services'][svc]
    assert (spec['command'], spec['port'], spec['publish']) == (command, port, publish)
    assert sorted(spec['secrets']) == sorted(SERVICE_SECRETS_1_0[svc])


def test_1_0_depends_on_and_start_order(one):
    deps = dict((svc, spec['depends_on']) for svc, spec in one['services'].items())
    assert deps == {
        'postgres': {}, 'redis': {},
        'dbMigrate': {'postgres': 'healthy'},
        'sts': {'postgres': 'healthy', 'redis': 'healthy', 'dbMigrate': 'completed'},
        'api': {'sts': 'healthy', 'dbMigrate': 'completed'},
        'gateway': {'sts': 'healthy', 'api': 'healthy', 'dbMigrate': 'completed'},
        'audit': {'postgres': 'healthy', 'redis': 'healthy', 'dbMigrate': 'completed'},
        'coordinator': {'sts': 'healthy', 'dbMigrate': 'completed'},
        'web': {'postgres': 'healthy', 'api': 'healthy', 'coordinator': 'healthy'},
    }
    assert 'sts' not in deps['audit']
    assert one['start_order'] == ['postgres', 'redis', 'dbMigrate', 'sts', 'api', 'gateway', 'audit',
                                  'coordinator', 'web']
    # replayVolumeInit: the replay state of sts and gateway, prepared before they start (as in 2026.07).
    assert one['replay_state'] == {'path': '/var/lib/caracal/audit-replay', 'mode': '0750',
                                   'services': ['sts', 'gateway']}


def test_1_0_per_service_urls_are_mounted_as_database_url(one):
    for svc in ROLE_SERVICES:
        spec = one['services'][svc]
        source = '%sDatabaseUrl' % svc
        assert spec['secret_targets'][source] == 'databaseUrl'
        assert spec['secrets'][source] == ['DATABASE_URL']
        others = dict((s, t) for s, t in spec['secret_targets'].items() if s != source)
        assert all(s == t for s, t in others.items()), others
    web = one['services']['web']
    assert web['secret_targets']['authDatabaseUrl'] == 'authDatabaseUrl'
    assert web['secrets']['authDatabaseUrl'] == ['CARACAL_AUTH_DATABASE_URL']


@pytest.mark.parametrize('secret,readers', [
    ('secretStoreKek', ['sts', 'api']),
    ('auditHmacKey', ['sts', 'api', 'gateway', 'audit']),
    ('streamsHmacKey', ['sts', 'api', 'gateway', 'coordinator']),
    ('idempotencyHmacKey', ['coordinator']),
    ('gatewayStsHmacKey', ['sts', 'api', 'gateway']),
    ('caracalAdminToken', ['api', 'gateway', 'web']),
    ('caracalCoordinatorToken', ['coordinator', 'web']),
    ('metricsBearer', ['sts', 'api', 'gateway', 'audit', 'coordinator']),
    ('caracalAuthSecret', ['web']),
    ('postgresPassword', ['postgres', 'dbMigrate']),
    ('redisPassword', ['redis']),
    ('redisUrl', ['sts', 'api', 'gateway', 'audit', 'coordinator']),
    ('authDatabaseUrl', ['web']),
    ('databaseUrl', []),
] + [('%sDbPassword' % s, ['dbMigrate']) for s in ROLE_SERVICES + ('auth',)]
  + [('%sDatabaseUrl' % s, [s]) for s in ROLE_SERVICES])
def test_1_0_secret_readers(one, secret, readers):
    assert one['secrets'][secret]['consumers'] == readers


def test_1_0_secret_files_and_variables(one):
    secrets = one['secrets']
    assert len(secrets) == 25
    assert 'zoneKek' not in secrets
    env = dict((name, spec['env']) for name, spec in secrets.items())
    assert env['secretStoreKek'] == ['SECRET_STORE_KEK']
    assert env['idempotencyHmacKey'] == ['IDEMPOTENCY_HMAC_KEY']
    for svc in ROLE_SERVICES + ('auth',):
        assert env['%sDbPassword' % svc] == ['CARACAL_%s_DB_PASSWORD' % svc.upper()]
    migrate = one['services']['dbMigrate']
    variables = sorted('%s_FILE' % v for vs in migrate['secrets'].values() for v in vs)
    assert variables == sorted(['PGPASSWORD_FILE'] + ['CARACAL_%s_DB_PASSWORD_FILE' % s.upper()
                                                      for s in ROLE_SERVICES + ('auth',)])
    assert migrate['env'] == {'PGHOST': 'postgres', 'PGPORT': '5432', 'PGUSER': 'caracal', 'PGDATABASE': 'caracal'}
    assert one['services']['api']['secrets']['caracalAdminToken'] == ['CARACAL_ADMIN_TOKEN', 'CONTROL_API_TOKEN']
    for name in ('secretStoreKek', 'auditHmacKey', 'streamsHmacKey', 'idempotencyHmacKey', 'gatewayStsHmacKey'):
        assert (secrets[name]['format'], secrets[name]['bytes'], secrets[name]['min_bytes']) == ('hex', 32, 32), name
    for name in ['postgresPassword', 'redisPassword'] + ['%sDbPassword' % s for s in ROLE_SERVICES + ('auth',)]:
        assert (secrets[name]['kind'], secrets[name]['format'], secrets[name]['bytes']) == ('password', 'hex', 24)


@pytest.mark.parametrize('secret,role,database', [
    ('apiDatabaseUrl', 'caracalapi', 'caracal'),
    ('stsDatabaseUrl', 'caracalsts', 'caracal'),
    ('gatewayDatabaseUrl', 'caracalgateway', 'caracal'),
    ('auditDatabaseUrl', 'caracalaudit', 'caracal'),
    ('coordinatorDatabaseUrl', 'caracalcoordinator', 'caracal'),
    ('authDatabaseUrl', 'caracalauth', 'caracal_auth'),
])
def test_1_0_derived_urls_log_in_as_their_role(one, secret, role, database):
    spec = one['secrets'][secret]
    password = '%sDbPassword' % secret[:-len('DatabaseUrl')]
    assert spec['derived_from'] == [password]
    assert spec['template'] == 'postgres://%s:{%s}@postgres:5432/%s' % (role, password, database)
    assert contract.login_roles(one, password) == [role]


def test_1_0_admin_database_url_is_mounted_by_nobody(one):
    spec = one['secrets']['databaseUrl']
    assert spec['template'] == 'postgres://caracal:{postgresPassword}@postgres:5432/caracal'
    assert spec['consumers'] == [] and spec['roll'] == []
    assert 'backups' in spec['unmounted'] and 'migrations' in spec['unmounted']
    for svc in one['services'].values():
        assert 'databaseUrl' not in svc['secrets']
    assert all(s['unmounted'] is None for n, s in one['secrets'].items() if n != 'databaseUrl')
    assert all(s['unmounted'] is None for s in contract.get_profile('2026.07')['secrets'].values())


def test_1_0_kek_rules(one):
    from ansible_collections.caracal.hardened.plugins.module_utils import _secrets
    kek = one['secrets']['secretStoreKek']
    assert (kek['bytes'], kek['min_bytes'], kek['max_bytes']) == (32, 32, 32)
    assert kek['weak_check'] and kek['rotation'] == 'destructive' and kek['kind'] == 'kek'
    for value, rule in (('00' * 32, 'weak-all-zeros'), ('ab' * 32, 'weak-repeated-byte'),
                        (''.join('%02x' % i for i in range(32)), 'weak-ascending'),
                        (''.join('%02x' % (255 - i) for i in range(32)), 'weak-descending'),
                        ('a55a' * 16, 'weak-alternating'), ('11' * 31, 'min-bytes'), ('11' * 33, 'max-bytes')):
        with pytest.raises(_secrets.SecretValidationError) as err:
            _secrets.validate('secretStoreKek', value, kek)
        assert err.value.rule == rule
    _secrets.validate('secretStoreKek', _secrets.generate(kek), kek)
    # The other keys have no weak-key rule in Caracal.
    assert not one['secrets']['idempotencyHmacKey'].get('weak_check')


@pytest.mark.parametrize('changed,expected', [
    (['secretStoreKek'], ['sts', 'api']),
    (['idempotencyHmacKey'], ['coordinator']),
    (['auditHmacKey'], ['api', 'sts', 'gateway', 'audit']),
    (['streamsHmacKey'], ['api', 'sts', 'gateway', 'coordinator']),
    (['gatewayStsHmacKey'], ['sts', 'gateway', 'api']),
    (['caracalAdminToken'], ['api', 'web', 'gateway']),
    (['caracalCoordinatorToken'], ['coordinator', 'web']),
    (['metricsBearer'], ['sts', 'api', 'gateway', 'audit', 'coordinator']),
    (['caracalAuthSecret'], ['web']),
    # The admin password: no service mounts databaseUrl, so nothing else restarts.
    (['postgresPassword'], ['postgres', 'dbMigrate']),
    (['redisPassword'], ['redis', 'sts', 'api', 'gateway', 'audit', 'coordinator']),
    # A role password: dbMigrate sets it on its role, then only that role's service restarts.
    (['apiDbPassword'], ['dbMigrate', 'api']),
    (['stsDbPassword'], ['dbMigrate', 'sts']),
    (['gatewayDbPassword'], ['dbMigrate', 'gateway']),
    (['auditDbPassword'], ['dbMigrate', 'audit']),
    (['coordinatorDbPassword'], ['dbMigrate', 'coordinator']),
    (['authDbPassword'], ['dbMigrate', 'web']),
    (['databaseUrl'], []),
])
def test_1_0_roll_order(one, changed, expected):
    assert contract.roll_order(one, changed) == expected


def test_1_0_password_sync(one):
    sync = one['password_sync']
    assert sync['postgresPassword'] == {'service': 'postgres', 'user': 'postgres', 'superuser': 'postgres',
                                        'method': 'psql'}
    assert contract.login_roles(one, 'postgresPassword') == ['caracal']
    for svc in ROLE_SERVICES + ('auth',):
        assert sync['%sDbPassword' % svc]['service'] == 'dbMigrate'
        assert sync['%sDbPassword' % svc]['method'] == 'job'
    assert sorted(sync) == sorted(['postgresPassword'] + ['%sDbPassword' % s for s in ROLE_SERVICES + ('auth',)])


def test_1_0_host_paths(one):
    paths = dict((name, (p['service'], p['base'], p['source'], p['target'], p['read_only']))
                 for name, p in one['host_paths'].items())
    assert paths == {
        'ca': ('sts', 'home', 'ca', '/etc/caracal/ca', True),
        'allowlist': ('web', 'secrets', 'allowlist', '/run/caracalHostSecrets', True),
        'console': ('web', 'secrets', 'console', '/run/caracalConsoleSecrets', True),
    }
    assert contract.get_profile('2026.07')['host_paths'] == {}
    assert one['services']['sts']['env']['CARACAL_TLS_EXTRA_CA_FILE'].startswith('/etc/caracal/ca/')
    assert one['services']['web']['env']['CARACAL_OPERATOR_ALLOWLIST_FILE'].startswith('/run/caracalHostSecrets/')


def test_1_0_settings(one):
    apps = [s for s in one['start_order'] if one['services'][s]['kind'] == 'app']
    assert one['mode_services'] == apps == ['sts', 'api', 'gateway', 'audit', 'coordinator', 'web']
    env = dict((s, one['services'][s].get('env') or {}) for s in one['services'])
    assert env['web']['CARACAL_REQUIRE_SIGN_IN_METHOD'] == '1'
    assert env['web']['NODE_ENV'] == 'production'
    assert env['web']['CARACAL_AUTH_TRUST_PROXY'] == 'true'
    assert env['web']['CARACAL_OPEN_REGISTRATION'] == 'false'
    assert env['gateway']['TRUST_PROXY'] == 'false' and env['gateway']['JTI_FAIL_OPEN'] == 'false'
    assert env['api']['TRUST_PROXY'] == env['coordinator']['TRUST_PROXY'] == 'false'
    assert env['sts']['CARACAL_SECRET_BACKEND'] == env['api']['CARACAL_SECRET_BACKEND'] == 'builtin'
    assert env['sts']['ISSUER_URL'] == env['coordinator']['ISSUER_URL'] == env['api']['STS_ISSUER_URL'] == '{issuer_url}'
    assert 'CARACAL_OPERATOR_EMAILS' not in env['web']
    assert contract.fail_open_hits(one, {'INSECURE_STS': 'yes', 'INSECURE_HTTP': 'false', 'JTI_FAIL_OPEN': '1'}) == \
        [('INSECURE_STS', '=yes'), ('JTI_FAIL_OPEN', '=1')]


def test_1_0_health_metrics_and_audit(one):
    assert one['healthcheck']['image_paths'] == {'caracal-web': '/health'}
    assert one['healthcheck']['reason_keys'] == {'caracal-go': 'reason', 'caracal-node': 'error',
                                                 'caracal-web': 'status'}
    assert one['services']['sts']['jwks_path'] == '/.well-known/jwks.json'
    assert one['metrics'] == {'path': '/metrics', 'bearer_secret': 'metricsBearer',
                              'services': ['sts', 'api', 'gateway', 'audit', 'coordinator']}
    streams = one['audit_streams']
    assert streams['caracal.audit.events'] == {'groups': ['audit-ingestor', 'siem-export'], 'maxlen': 1000000}
    assert streams['caracal.audit.events.dlq'] == {'groups': ['audit-dlq-observer'], 'maxlen': 100000}
    assert sorted(streams) == sorted([
        'caracal.audit.events', 'caracal.audit.events.dlq', 'caracal.policy.invalidate', 'caracal.sessions.revoke',
        'caracal.keys.invalidate', 'caracal.agents.lifecycle', 'caracal.invocations.lifecycle',
        'caracal.delegations.invalidate', 'caracal.providers.ratelimit'])
    assert (one['audit_stream'], one['audit_dlq'], one['audit_max_deliveries']) == \
        ('caracal.audit.events', 'caracal.audit.events.dlq', 8)


def _broken_1_0(mutate):
    return _broken(mutate, '1.0')


def _unmount_everywhere(p, secret):
    for svc in p['services'].values():
        svc['secrets'].pop(secret, None)
        svc['secret_targets'].pop(secret, None)


@pytest.mark.parametrize('mutate,problem', [
    (lambda p: p.update({'deployable': 'no'}), 'deployable must be true or false'),
    (lambda p: p.update({'releases': ['1.0.0', 'v1.0.1']}), 'release v1.0.1 does not have the release format'),
    (lambda p: p.update({'default_release': '1.0.1'}), 'default release 1.0.1 is not one of its releases'),
    (lambda p: p.update({'release_format': '('}), 'release_format is not a regular expression'),
    (lambda p: p['secrets']['databaseUrl'].update({'unmounted': None}), 'databaseUrl has no consumer'),
    (lambda p: (p['services']['sts']['secrets'].update({'databaseUrl': None}),
                p['secrets']['databaseUrl'].update({'roll': ['sts']})),
     'databaseUrl is marked as mounted by no service, but sts mount it'),
    (lambda p: p['services']['api']['secret_targets'].update({'auditHmacKey': 'databaseUrl'}),
     'mounts apiDatabaseUrl and auditHmacKey as the same file databaseUrl'),
    (lambda p: p['services']['api']['secret_targets'].update({'apiDatabaseUrl': '../databaseUrl'}),
     'which is not a file name'),
    (lambda p: p['services']['api']['secret_targets'].update({'apiDatabaseUrl': 'redisUrl'}),
     'mounts apiDatabaseUrl as redisUrl, which it also reads under that name'),
    (lambda p: p['services']['api']['secret_targets'].update({'stsDatabaseUrl': 'databaseUrl'}),
     'mounts stsDatabaseUrl under another name but does not read it'),
    (lambda p: p['services']['web']['secrets'].update({'redisUrl': ['CARACAL_AUTH_DATABASE_URL']}),
     'reads authDatabaseUrl and redisUrl through the same variable CARACAL_AUTH_DATABASE_URL'),
    (lambda p: p['host_paths']['ca'].update({'service': 'ghost'}), 'host path ca names unknown service ghost'),
    (lambda p: p['host_paths']['ca'].update({'base': 'etc'}), "host path ca has unknown base 'etc'"),
    (lambda p: p['host_paths']['ca'].update({'source': '../ca'}), 'host path ca needs a relative source'),
    (lambda p: p['host_paths']['ca'].update({'target': '/run/secrets'}), 'host path ca needs an absolute target'),
    (lambda p: p['host_paths']['ca'].update({'read_only': False}), 'host path ca is not mounted read-only'),
    (lambda p: p['host_paths']['console'].update({'target': '/run/caracalHostSecrets'}),
     'host paths allowlist and console share the target'),
    (lambda p: p['mode_services'].append('ghost'), 'mode services name unknown service ghost'),
    (lambda p: p['metrics'].update({'bearer_secret': 'ghostBearer'}), 'metrics bearer names unknown secret'),
    (lambda p: p['metrics']['services'].append('web'), 'metrics service web does not read the bearer'),
    (lambda p: p['audit_streams'].pop('caracal.audit.events.dlq'), 'audit streams do not list caracal.audit.events.dlq'),
    (lambda p: p['audit_streams']['caracal.keys.invalidate'].update({'groups': None}),
     'audit stream caracal.keys.invalidate has no list of groups'),
    (lambda p: p['password_sync'].pop('auditDbPassword'),
     'auditDbPassword is the password of Postgres roles caracalaudit but has no password sync'),
    (lambda p: p['password_sync']['apiDbPassword'].update({'method': 'sql'}), "unknown method 'sql'"),
    (lambda p: p['password_sync']['apiDbPassword'].update({'method': 'psql'}),
     'apiDbPassword by psql needs a storage service'),
    (lambda p: (p['services']['postgres']['secrets'].update({'apiDbPassword': None}),
                p['password_sync']['apiDbPassword'].update({'service': 'postgres'})),
     'names postgres, which is not a one-shot job'),
    (lambda p: p['password_sync']['apiDbPassword'].update({'service': 'api'}),
     'password sync of apiDbPassword names api, which does not read it'),
    (lambda p: p['password_sync'].update({'redisPassword': {'service': 'redis', 'user': None, 'superuser': None,
                                                            'method': 'psql'}}),
     'no role logs in with it'),
    (lambda p: p['secrets']['secretStoreKek']['roll'].append('gateway'),
     'secretStoreKek rolls gateway, which does not read it'),
    (lambda p: p['secrets']['apiDatabaseUrl'].update({'template': 'postgres://caracalapi:x@postgres:5432/caracal'}),
     'apiDatabaseUrl template does not use apiDbPassword'),
    (lambda p: _unmount_everywhere(p, 'idempotencyHmacKey'), 'idempotencyHmacKey has no consumer'),
])
def test_check_profile_finds_problems_of_the_1_0_rules(mutate, problem):
    problems = _broken_1_0(mutate)
    assert any(problem in p for p in problems), problems


def test_check_profile_reports_an_inconsistent_1_0():
    # What tests/images/build.sh would report for a release of a broken 1.0.
    saved = contract.PROFILES
    broken = copy.deepcopy(saved['1.0'])
    broken['services']['audit']['depends_on']['sts'] = 'healthy'
    broken['services']['sts']['depends_on']['audit'] = 'healthy'
    contract.PROFILES = dict(saved, **{'1.0': broken})
    try:
        assert any('cycle' in p for p in contract.check_profile('1.0'))
        assert contract.check_profile('2026.07') == []
    finally:
        contract.PROFILES = saved
