# -*- coding: utf-8 -*-
"""The steps build_stack runs, each on its own: what it returns and what it refuses."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

import pytest

from ansible_collections.caracal.hardened.plugins.module_utils._contract import get_profile
from ansible_collections.caracal.hardened.plugins.module_utils._stack import (
    REPLAY_INIT,
    StackError,
    build_stack,
    check_unique_publishes,
    init_jobs,
    replay_init_job,
    service_environment,
    service_model,
    stack_networks,
    stack_volumes,
    validated_settings,
)

PROFILE = get_profile('2026.07')
IMAGES = dict((s, 'registry.test/%s:v1' % PROFILE['services'][s]['image']) for s in PROFILE['start_order'])
BASE = {'web_url': 'https://console.example.com', 'issuer_url': 'https://sts.example.com'}


def plan(profile=None, images=None, **settings):
    merged = dict(BASE)
    merged.update(settings)
    return validated_settings(profile or PROFILE, merged, IMAGES if images is None else images)


def model_of(name, **settings):
    steps = plan(**settings)
    networks = stack_networks(PROFILE, steps['host_services'])
    return service_model(PROFILE, steps, name, networks), networks


# ------------------------------------------------------------------ validated_settings

def test_the_plan_holds_the_checked_settings_of_this_host():
    images = dict(IMAGES)
    steps = plan(images=images, services=['redis', 'postgres', 'dbMigrate', 'sts'], upstream_allowlist='a.test, b.test:8443')
    assert steps['host_services'] == ['postgres', 'redis', 'dbMigrate', 'sts']
    assert steps['mode'] == 'stable' and steps['published'] is True
    assert steps['placeholders'] == {'web_url': 'https://console.example.com', 'issuer_url': 'https://sts.example.com',
                                     'upstream_allowlist': 'a.test,b.test:8443'}
    assert steps['replay_services'] == ['sts']
    assert steps['redis_uid'] == 999 and steps['healthcheck']['test'] == ['/healthcheck']
    assert steps['settings']['control_dir'] == '/opt/caracal/control'
    assert steps['images'] == images and steps['images'] is not images


def test_the_plan_of_a_dev_host():
    steps = plan(mode='dev', allow_nonproduction=True, web_url='http://localhost:3001')
    assert steps['mode'] == 'dev' and steps['published'] is False
    assert steps['placeholders']['web_url'] == 'http://localhost:3001'


@pytest.mark.parametrize('settings,match', [
    ({'colour': 'blue'}, 'unknown stack settings: colour'),
    ({'mode': 'production'}, "mode 'production' is not one of dev, rc, stable"),
    ({'mode': 'dev'}, 'never a deployment'),
    ({'services': []}, 'no service to deploy'),
    ({'services': ['sts']}, 'service sts depends on postgres, redis, dbMigrate, which is not deployed'),
    ({'services': ['redis'], 'publish': {'sts': True}}, 'publish names services that are not deployed: sts'),
    ({'kind_limits': {'daemon': {}}}, 'kind_limits names unknown kinds: daemon'),
    ({'web_url': 'http://console.example.com'}, 'web_url must be an https URL'),
    ({'upstream_allowlist': ['a b']}, 'upstream allowlist entry'),
    ({'db_sslmode': 'prefer'}, 'db_sslmode must be one of'),
    ({'redis_uid': -5}, 'redis_uid must be a non-negative integer'),
    ({'healthcheck': {'retries': 0}}, 'healthcheck retries must be a positive integer'),
])
def test_validated_settings_refusals(settings, match):
    with pytest.raises(StackError, match=match):
        plan(**settings)


def test_validated_settings_needs_an_image_for_every_service_of_the_host():
    with pytest.raises(StackError, match='no image reference for dbMigrate'):
        plan(images=dict(IMAGES, dbMigrate=''))
    assert plan(images={'redis': 'r'}, services=['redis'])['host_services'] == ['redis']


# ------------------------------------------------------------------ networks and volumes

def test_stack_networks_of_a_subset():
    assert list(stack_networks(PROFILE, ['postgres', 'dbMigrate'])) == ['data-postgres']
    networks = stack_networks(PROFILE, PROFILE['start_order'])
    assert list(networks) == ['data-postgres', 'data-redis', 'app']
    assert [n['internal'] for n in networks.values()] == [True, True, False]


def test_a_published_storage_service_adds_its_own_network():
    pg, networks = model_of('postgres', publish={'postgres': '127.0.0.1:15432'})
    assert pg['networks'] == ['data-postgres', 'publish-postgres']
    assert networks['publish-postgres'] == {'internal': False,
                                            'purpose': 'publishes postgres on loopback; nothing else is attached'}
    sts, networks = model_of('sts')
    assert sts['networks'] == ['data-postgres', 'data-redis', 'app'] and 'publish-sts' not in networks


def test_stack_volumes_follow_the_mounts_in_order():
    services = [{'name': 'a', 'mounts': [{'type': 'volume', 'source': 'v', 'target': '/state'},
                                         {'type': 'bind', 'source': '/etc/x', 'target': '/x'}]},
                {'name': 'b', 'mounts': [{'type': 'volume', 'source': 'v', 'target': '/other'},
                                         {'type': 'volume', 'source': 'w', 'target': '/w'}]}]
    assert stack_volumes(services) == {'v': {'services': ['a', 'b'], 'purpose': 'state of a (/state)'},
                                       'w': {'services': ['b'], 'purpose': 'state of b (/w)'}}


# ------------------------------------------------------------------ one service

def test_service_model_of_one_service():
    api, networks = model_of('api', control_enabled=True, limits={'api': {'pids': 300}})
    assert api['name'] == 'api' and api['image'] == IMAGES['api'] and api['limits']['pids'] == 300
    assert api['depends_on'] == {'sts': 'healthy'}
    assert {'type': 'bind', 'source': '/opt/caracal/control', 'target': '/run/caracal-control', 'read_only': True} in api['mounts']
    assert model_of('gateway')[0]['depends_on'] == {'sts': 'healthy', 'api': 'healthy', REPLAY_INIT: 'completed'}


@pytest.mark.parametrize('settings,match', [
    ({'extra_env': {'web': {'CARACAL_AUTH_URL': 'https://x'}}}, 'service web: CARACAL_AUTH_URL is set by the deployment'),
    ({'extra_env': {'web': {'INSECURE_HTTP': '1'}}}, 'service web: INSECURE_HTTP set \\(non-empty\\) is a fail-open'),
    ({'publish': {'web': '10.0.0.1:443'}}, 'not loopback'),
    ({'limits': {'web': {'memory': 'much'}}}, 'service web: memory must be a size'),
])
def test_service_model_refusals(settings, match):
    steps = plan(**settings)
    networks = stack_networks(PROFILE, steps['host_services'])
    with pytest.raises(StackError, match=match):
        service_model(PROFILE, steps, 'web', networks)
    # The other services are not concerned.
    assert service_model(PROFILE, steps, 'audit', networks)['name'] == 'audit'


def test_service_environment_without_secrets_view():
    steps = plan(db_sslmode='require', extra_env={'audit': {'LOG_LEVEL': 'debug'}})
    env = service_environment(PROFILE, steps, 'audit', None)
    assert env == {'CARACAL_MODE': 'stable', 'CARACAL_DB_SSLMODE': 'require', 'LOG_LEVEL': 'debug'}
    assert list(env) == sorted(env)
    assert service_environment(PROFILE, steps, 'redis', None) == {}


# ------------------------------------------------------------------ the init jobs

def test_no_init_job_without_a_replay_service_on_the_host():
    steps = plan(services=['postgres', 'redis'])
    assert replay_init_job(PROFILE, steps) is None and init_jobs(PROFILE, steps) == []


def test_init_jobs_are_the_replay_init_job():
    jobs = init_jobs(PROFILE, plan(services=['postgres', 'redis', 'dbMigrate', 'sts']))
    assert [j['name'] for j in jobs] == [REPLAY_INIT]
    assert jobs[0]['command'][-1] == '/replay/sts/audit-replay' and len(jobs[0]['mounts']) == 1


def test_replay_init_job_refusals():
    steps = plan()
    steps['images']['dbMigrate'] = ''
    with pytest.raises(StackError, match='needs the image of a one-shot job'):
        replay_init_job(PROFILE, steps)
    moved = copy.deepcopy(PROFILE)
    moved['replay_state']['path'] = '/srv/replay'
    with pytest.raises(StackError, match='service sts has no volume holding its replay state /srv/replay'):
        replay_init_job(moved, plan(profile=moved))
    with pytest.raises(StackError, match='service replayInit: memory must be a size'):
        replay_init_job(PROFILE, plan(kind_limits={'init': {'memory': 'lots'}}))


# ------------------------------------------------------------------ the model

def test_check_unique_publishes():
    pub = {'host_ip': '127.0.0.1', 'host_port': 8080}
    check_unique_publishes([{'name': 'a', 'publishes': [pub]}, {'name': 'b', 'publishes': [dict(pub, host_port=8081)]}])
    with pytest.raises(StackError, match='services a and b publish the same address 127.0.0.1:8080'):
        check_unique_publishes([{'name': 'a', 'publishes': [pub]}, {'name': 'b', 'publishes': [dict(pub)]}])


def test_password_sync_comes_from_the_contract():
    profile = copy.deepcopy(PROFILE)
    profile['password_sync']['postgresPassword']['superuser'] = 'admin'
    sync = build_stack(profile, BASE, IMAGES)['password_sync']
    assert sync == {'postgresPassword': {'service': 'postgres', 'user': 'postgres', 'roles': ['caracal', 'admin']}}
    del profile['password_sync']
    assert build_stack(profile, BASE, IMAGES)['password_sync'] == {}


def test_a_password_set_by_a_job_is_not_synced_by_the_collection():
    # Profile 1.0's role passwords: dbMigrate sets them on every run (it is in their roll order).
    profile = copy.deepcopy(PROFILE)
    profile['password_sync']['postgresPassword']['method'] = 'job'
    assert build_stack(profile, BASE, IMAGES)['password_sync'] == {}


def test_a_profile_that_is_not_deployable_has_no_model():
    one = get_profile('1.0')
    images = dict((s, 'registry.test/%s:v1' % one['services'][s]['image']) for s in one['start_order'])
    with pytest.raises(StackError, match='profile 1.0 is described in the release contract, but this release of '
                                         'caracal.hardened cannot deploy it yet'):
        build_stack(one, BASE, images)
