# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

from ansible_collections.caracal.hardened.plugins.module_utils._contract import get_profile
from ansible_collections.caracal.hardened.plugins.module_utils._stack import (
    REPLAY_INIT,
    StackError,
    build_stack,
    parse_publish,
    restart_plan,
    storage_needs,
)

PROFILE = get_profile('2026.07')
SERVICES = PROFILE['services']
APPS = [s for s in PROFILE['start_order'] if SERVICES[s]['kind'] == 'app']
IMAGES = dict((s, 'registry.test/%s:v1' % SERVICES[s]['image']) for s in PROFILE['start_order'])
BASE = {'web_url': 'https://console.example.com', 'issuer_url': 'https://sts.example.com'}


def build(**settings):
    merged = dict(BASE)
    merged.update(settings)
    return build_stack(PROFILE, merged, IMAGES)


def svc(model, name):
    return [s for s in model['services'] if s['name'] == name][0]


# ------------------------------------------------------------------ shape

def test_services_in_start_order_with_the_replay_init_first():
    model = build()
    assert model['service_names'] == [REPLAY_INIT] + PROFILE['start_order']
    assert model['restartable'] == PROFILE['start_order']
    assert model['mode'] == 'stable' and model['profile'] == '2026.07'
    assert model['release'] == PROFILE['default_release']


def test_model_is_plain_data_and_deterministic():
    assert json.dumps(build(), sort_keys=True) == json.dumps(build(), sort_keys=True)


def test_every_secret_is_a_file_path_never_a_value():
    model = build()
    for name, spec in SERVICES.items():
        s = svc(model, name)
        env = s['environment']
        expected = {}
        for secret, variables in spec['secrets'].items():
            for var in variables:
                expected['%s_FILE' % var] = '/run/secrets/%s' % secret
                assert var not in env, (name, var)
        assert dict((k, v) for k, v in env.items() if k.endswith('_FILE')) == expected, name
        assert s['secrets']['source'] == '/opt/caracal/secrets/services/%s' % name
        assert s['secrets']['target'] == '/run/secrets'
        assert s['secrets']['files'] == sorted(spec['secrets'])
        assert {'type': 'bind', 'source': s['secrets']['source'], 'target': '/run/secrets', 'read_only': True} in s['mounts']


def test_app_services_follow_the_contract_runtime():
    model = build()
    for name in APPS:
        s = svc(model, name)
        assert s['user'] == '65532:65532' and s['group_add'] == []
        assert s['read_only'] and s['no_new_privileges'] and s['init']
        assert s['cap_drop'] == ['ALL'] and s['cap_add'] == []
        assert s['tmpfs'] == {'/tmp': 'size=16m,mode=1777'}
        assert s['environment']['CARACAL_MODE'] == 'stable'
        assert s['command'] == SERVICES[name]['command']
        assert s['image'] == IMAGES[name]
        assert s['healthcheck']['test'] == ['/healthcheck'] and not s['oneshot'] and s['restart'] == 'always'
        assert s['limits'] == {'cpus': '1', 'memory': '512m', 'pids': 256}


def test_contract_environment_and_settings():
    model = build(upstream_allowlist=['api.example.com', 'tools.example.com:8443'])
    assert svc(model, 'sts')['environment']['ISSUER_URL'] == 'https://sts.example.com'
    assert svc(model, 'sts')['environment']['STS_ADMIN_TOKEN'] == ''
    assert svc(model, 'api')['environment']['STS_ISSUER_URL'] == 'https://sts.example.com'
    assert svc(model, 'coordinator')['environment']['ISSUER_URL'] == 'https://sts.example.com'
    assert svc(model, 'web')['environment']['CARACAL_AUTH_URL'] == 'https://console.example.com'
    gateway = svc(model, 'gateway')['environment']
    assert gateway['UPSTREAM_HOST_ALLOWLIST'] == 'api.example.com,tools.example.com:8443'
    assert gateway['JTI_FAIL_OPEN'] == 'false'
    for name in APPS:
        assert svc(model, name)['environment']['CARACAL_DB_SSLMODE'] == 'disable'
    assert 'CARACAL_MODE' not in svc(model, 'postgres')['environment']
    assert build(db_sslmode='verify-full', mode='rc')['services'][5]['environment']['CARACAL_DB_SSLMODE'] == 'verify-full'


def test_storage_services():
    model = build(redis_uid=990)
    pg = svc(model, 'postgres')
    assert pg['cap_add'] == SERVICES['postgres']['runtime']['cap_add'] and pg['cap_drop'] == ['ALL']
    assert pg['group_add'] == ['65532'] and pg['user'] is None and pg['no_new_privileges']
    assert pg['publishes'] == [] and pg['networks'] == ['data-postgres']
    assert {'type': 'volume', 'source': 'postgres-data', 'target': '/var/lib/postgresql', 'read_only': False} in pg['mounts']
    redis = svc(model, 'redis')
    assert redis['user'] == 'redis' and redis['cap_add'] == [] and redis['group_add'] == ['65532']
    assert redis['tmpfs'] == {'/run/caracal': 'uid=990,gid=990,mode=0700,size=1m'}
    assert redis['networks'] == ['data-redis'] and redis['publishes'] == []
    assert pg['limits'] == {'cpus': '2', 'memory': '1g', 'pids': 512}


def test_db_migrate_is_a_oneshot_job():
    job = svc(build(), 'dbMigrate')
    assert job['oneshot'] and job['restart'] == 'no' and job['healthcheck'] is None
    assert job['depends_on'] == {'postgres': 'healthy'}
    assert job['environment'] == {'PGPASSWORD_FILE': '/run/secrets/postgresPassword'}
    assert job['networks'] == ['data-postgres'] and job['user'] == '65532:65532' and job['group_add'] == []


def test_networks_give_storage_only_to_the_services_that_need_it():
    model = build()
    assert model['networks']['data-postgres']['internal'] is True
    assert model['networks']['data-redis']['internal'] is True
    assert model['networks']['app']['internal'] is False
    needs = storage_needs(PROFILE)
    assert needs['postgres'] == set(['dbMigrate', 'sts', 'api', 'gateway', 'audit', 'coordinator', 'web'])
    assert needs['redis'] == set(['sts', 'api', 'gateway', 'audit', 'coordinator'])
    assert svc(model, 'web')['networks'] == ['data-postgres', 'app']
    for name in ('sts', 'api', 'gateway', 'audit', 'coordinator'):
        assert svc(model, name)['networks'] == ['data-postgres', 'data-redis', 'app'], name
    for s in model['services']:
        assert s['network_aliases'] == ([s['name']] if s['networks'] else [])


def test_dependencies_with_conditions():
    model = build()
    assert svc(model, 'sts')['depends_on'] == {'postgres': 'healthy', 'redis': 'healthy',
                                               'dbMigrate': 'completed', REPLAY_INIT: 'completed'}
    assert svc(model, 'gateway')['depends_on'] == {'sts': 'healthy', 'api': 'healthy', REPLAY_INIT: 'completed'}
    assert svc(model, 'web')['depends_on'] == {'postgres': 'healthy', 'api': 'healthy', 'coordinator': 'healthy'}


def test_replay_init_prepares_the_replay_state_on_each_volume():
    model = build()
    init = svc(model, REPLAY_INIT)
    assert init['kind'] == 'init' and init['oneshot'] and init['networks'] == []
    assert init['image'] == IMAGES['dbMigrate']
    assert init['user'] == '0:0' and init['cap_drop'] == ['ALL'] and sorted(init['cap_add']) == ['CHOWN', 'FOWNER']
    assert init['read_only'] and init['no_new_privileges'] and init['secrets'] is None
    assert init['entrypoint'] == ['/usr/bin/install']
    assert init['command'] == ['-d', '-o', '65532', '-g', '65532', '-m', '0750',
                               '/replay/sts/audit-replay', '/replay/gateway/audit-replay']
    assert [m['source'] for m in init['mounts']] == ['sts-replay', 'gateway-replay']
    assert model['replay'] == {'path': '/var/lib/caracal/audit-replay', 'mode': '0750', 'owner': '65532:65532',
                               'services': ['sts', 'gateway'], 'init_service': REPLAY_INIT}
    assert model['volumes']['sts-replay']['services'] == ['sts', REPLAY_INIT]


def test_control_gate_mount_only_on_the_api():
    model = build(home='/srv/caracal', control_enabled=True)
    assert model['control'] == {'dir': '/srv/caracal/control', 'mount': '/run/caracal-control',
                                'gate_file': 'enabled', 'enabled': True, 'services': ['api']}
    gate = {'type': 'bind', 'source': '/srv/caracal/control', 'target': '/run/caracal-control', 'read_only': True}
    for s in model['services']:
        assert (gate in s['mounts']) == (s['name'] == 'api'), s['name']
    assert svc(model, 'api')['secrets']['source'] == '/srv/caracal/secrets/services/api'
    assert build(control_dir='/etc/caracal/control')['control']['dir'] == '/etc/caracal/control'


# ------------------------------------------------------------------ publishes

def test_publishes_are_loopback_from_the_contract():
    model = build()
    pubs = dict((s['name'], s['publishes']) for s in model['services'] if s['publishes'])
    assert sorted(pubs) == sorted(APPS)
    assert pubs['web'] == [{'host_ip': '127.0.0.1', 'host_port': 3001, 'container_port': 3002, 'protocol': 'tcp'}]


def test_publish_overrides():
    model = build(publish={'sts': '[::1]:18080', 'audit': False, 'postgres': True})
    assert svc(model, 'sts')['publishes'][0]['host_ip'] == '::1'
    assert svc(model, 'sts')['publishes'][0]['host_port'] == 18080
    assert svc(model, 'audit')['publishes'] == []
    pg = svc(model, 'postgres')
    assert pg['publishes'] == [{'host_ip': '127.0.0.1', 'host_port': 5432, 'container_port': 5432, 'protocol': 'tcp'}]
    # An internal network cannot publish: postgres gets a network of its own for it.
    assert pg['networks'] == ['data-postgres', 'publish-postgres']
    assert model['networks']['publish-postgres']['internal'] is False


@pytest.mark.parametrize('address', ['0.0.0.0:8080', '10.0.0.5:8080', '[::]:8080', 'localhost:8080', '127.0.0.1', '127.0.0.1:0'])
def test_publish_beyond_loopback_is_refused(address):
    with pytest.raises(StackError):
        parse_publish(address)
    with pytest.raises(StackError):
        build(publish={'sts': address})


def test_duplicate_publish_is_refused():
    with pytest.raises(StackError, match='publish the same address'):
        build(publish={'sts': '127.0.0.1:3000'})


# ------------------------------------------------------------------ refusals

def test_dev_mode_needs_the_nonproduction_switch():
    with pytest.raises(StackError, match='never a deployment'):
        build(mode='dev')
    model = build(mode='dev', allow_nonproduction=True, web_url='http://localhost:3001')
    assert svc(model, 'api')['environment']['CARACAL_MODE'] == 'dev'


def test_rc_mode_and_unknown_mode():
    assert svc(build(mode='rc'), 'sts')['environment']['CARACAL_MODE'] == 'rc'
    with pytest.raises(StackError, match='not one of'):
        build(mode='production')


@pytest.mark.parametrize('field', ['web_url', 'issuer_url'])
def test_published_modes_need_https_urls(field):
    with pytest.raises(StackError, match='https'):
        build(**{field: 'http://console.example.com'})
    with pytest.raises(StackError, match='absolute'):
        build(**{field: 'https://user:pw@console.example.com'})
    with pytest.raises(StackError, match='absolute'):
        build(**{field: None})


@pytest.mark.parametrize('env,match', [
    ({'ZONE_KEK': 'x'}, 'secret variable'),
    ({'ZONE_KEK_FILE': '/tmp/kek'}, 'secret variable'),
    ({'METRICS_BEARER': 'x'}, 'secret variable'),
    ({'INSECURE_STS': '1'}, 'fail-open'),
    ({'INSECURE_HTTP': 'yes'}, 'fail-open'),
    ({'JTI_FAIL_OPEN': 'TRUE'}, 'set by the deployment'),
    ({'ISSUER_URL': 'https://other'}, 'set by the deployment'),
    ({'CARACAL_MODE': 'dev'}, 'set by the deployment'),
    ({'UPSTREAM_API_TOKEN': 'x'}, 'looks like a secret'),
    ({'lower': 'x'}, 'not an environment variable name'),
    ({'NOTE': 'x\nPodmanArgs=--privileged'}, 'line break or another control character'),
    ({'NOTE': 'tab\there'}, 'control character'),
])
def test_extra_environment_refusals(env, match):
    with pytest.raises(StackError, match=match):
        build(extra_env={'gateway': env})


def test_fail_open_is_refused_on_any_service_and_in_dev_too():
    with pytest.raises(StackError, match='fail-open'):
        build(extra_env={'sts': {'INSECURE_STS': 'true'}})
    with pytest.raises(StackError, match='fail-open'):
        build(mode='dev', allow_nonproduction=True, extra_env={'api': {'INSECURE_HTTP': '1'}})


def test_extra_environment_accepted():
    model = build(extra_env={'gateway': {'TLS_CERT_FILE': '/run/tls/cert.pem', 'INSECURE_STS': ''}})
    assert svc(model, 'gateway')['environment']['TLS_CERT_FILE'] == '/run/tls/cert.pem'


def test_limits_defaults_and_overrides():
    model = build(limits={'api': {'memory': '2G', 'pids': 1024}}, kind_limits={'app': {'cpus': '1.5'}})
    assert svc(model, 'api')['limits'] == {'cpus': '1.5', 'memory': '2g', 'pids': 1024}
    assert svc(model, 'sts')['limits'] == {'cpus': '1.5', 'memory': '512m', 'pids': 256}


@pytest.mark.parametrize('limits,match', [
    ({'api': {'memory': 'lots'}}, 'memory'),
    ({'api': {'cpus': '0'}}, 'cpus'),
    ({'api': {'pids': -1}}, 'pids'),
    ({'api': {'swap': '1g'}}, 'unknown limit'),
    ({'nope': {'cpus': '1'}}, 'not deployed'),
])
def test_bad_limits_are_refused(limits, match):
    with pytest.raises(StackError, match=match):
        build(limits=limits)


def test_healthcheck_overrides():
    model = build(healthcheck={'interval': '30s', 'retries': 3})
    check = svc(model, 'web')['healthcheck']
    assert check['interval'] == '30s' and check['retries'] == 3 and check['timeout'] == '5s'
    with pytest.raises(StackError, match='duration'):
        build(healthcheck={'interval': 'often'})
    with pytest.raises(StackError, match='unknown healthcheck'):
        build(healthcheck={'cmd': 'true'})


def test_other_bad_settings():
    with pytest.raises(StackError, match='unknown stack settings'):
        build(colour='blue')
    with pytest.raises(StackError, match='db_sslmode'):
        build(db_sslmode='prefer')
    with pytest.raises(StackError, match='allowlist'):
        build(upstream_allowlist=['bad host'])
    with pytest.raises(StackError, match='absolute path'):
        build(home='relative/dir')
    with pytest.raises(StackError, match='redis_uid'):
        build(redis_uid='redis')
    with pytest.raises(StackError, match='no image'):
        build_stack(PROFILE, BASE, {})


def test_a_subset_of_services_must_hold_its_dependencies():
    with pytest.raises(StackError, match='not deployed on this host'):
        build(services=['sts'])
    with pytest.raises(StackError, match='unknown services'):
        build(services=['postgres', 'nginx'])
    model = build(services=['redis', 'postgres'])
    assert model['service_names'] == ['postgres', 'redis']
    assert model['replay']['init_service'] is None
    assert sorted(model['networks']) == ['data-postgres', 'data-redis']


# ------------------------------------------------------------------ restarts

def test_restart_plan_keeps_roll_order_on_this_host_only():
    model = build()
    assert restart_plan(model, ['sts', 'gateway', 'api', 'sts']) == ['sts', 'gateway', 'api']
    assert restart_plan(model, [REPLAY_INIT, 'dbMigrate', 'nope']) == ['dbMigrate']
    assert restart_plan(build(services=['postgres', 'redis']), ['sts', 'redis']) == ['redis']
    assert restart_plan(model, []) == [] and restart_plan(model, None) == []


def test_password_sync_names_the_roles_that_log_in_with_the_password():
    sync = build()['password_sync']['postgresPassword']
    # peer authentication as the postgres user inside the container: no file, no value
    assert sync == {'service': 'postgres', 'user': 'postgres', 'roles': ['caracal', 'postgres']}


def test_no_password_sync_without_postgres_on_the_host():
    model = build(services=['redis'])
    assert model['password_sync'] == {}
