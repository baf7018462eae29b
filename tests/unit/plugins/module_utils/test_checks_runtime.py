# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Container checks: a compliant stack passes, each seeded defect fails with the right finding."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.caracal.hardened.plugins.module_utils import _checks_runtime as rt
from ansible_collections.caracal.hardened.plugins.module_utils._checks import FAIL, NOT_APPLICABLE, PASS

from test_checks_fixtures import PROFILE, by_service, containers, stack

ENGINES = ['docker']


def run(check, items=None, **kwargs):
    return check(PROFILE, containers(items), engines=ENGINES, **kwargs)


def env_set(item, name, value):
    env = [e for e in item['Config']['Env'] if not e.startswith(name + '=')]
    if value is not None:
        env.append('%s=%s' % (name, value))
    item['Config']['Env'] = env


SIMPLE = [rt.check_mode, rt.check_fail_open, rt.check_non_root, rt.check_capabilities, rt.check_no_new_privileges,
          rt.check_read_only, rt.check_limits, rt.check_replay_state, rt.check_sts_admin_token,
          rt.check_gateway_allowlist]


@pytest.mark.parametrize('check', SIMPLE, ids=lambda c: c.__name__)
def test_compliant_stack_passes(check):
    rec = run(check)
    assert rec['status'] == PASS, rec['findings']


@pytest.mark.parametrize('check', SIMPLE, ids=lambda c: c.__name__)
def test_nothing_deployed_is_not_applicable_with_a_measured_reason(check):
    rec = check(PROFILE, [], engines=[])
    assert rec['status'] == NOT_APPLICABLE and 'no container engine' in rec['detail']
    rec = check(PROFILE, [], engines=['docker'], project='caracal')
    assert rec['status'] == NOT_APPLICABLE and "no container of the Caracal project 'caracal' in docker" in rec['detail']


# ---------------------------------------------------------------- mode

def test_dev_mode_fails():
    items = stack()
    env_set(by_service(items, 'api'), 'CARACAL_MODE', 'dev')
    rec = run(rt.check_mode, items)
    assert rec['status'] == FAIL
    assert rec['findings'] == ['api (caracal-api-1): CARACAL_MODE=dev (only rc or stable are acceptable outside a laptop)']
    assert rec['evidence']['modes']['caracal-api-1'] == 'dev'


def test_unset_mode_is_the_stable_default_and_rc_passes():
    items = stack()
    env_set(by_service(items, 'api'), 'CARACAL_MODE', None)
    env_set(by_service(items, 'sts'), 'CARACAL_MODE', 'rc')
    rec = run(rt.check_mode, items)
    assert rec['status'] == PASS
    assert rec['evidence']['modes']['caracal-api-1'] == 'stable (unset: the default)'


def test_unknown_mode_fails():
    items = stack()
    env_set(by_service(items, 'web'), 'CARACAL_MODE', 'production')
    rec = run(rt.check_mode, items)
    assert rec['status'] == FAIL and 'not a Caracal mode' in rec['findings'][0]


@pytest.mark.parametrize('name,value,bad', [
    ('JTI_FAIL_OPEN', 'true', True), ('JTI_FAIL_OPEN', 'TRUE', True), ('JTI_FAIL_OPEN', 'false', False),
    ('JTI_FAIL_OPEN', '', False), ('INSECURE_HTTP', '1', True), ('INSECURE_STS', 'yes', True), ('INSECURE_STS', '', False),
])
def test_fail_open_settings(name, value, bad):
    items = stack()
    env_set(by_service(items, 'gateway'), name, value)
    rec = run(rt.check_fail_open, items)
    assert rec['status'] == (FAIL if bad else PASS)
    if bad:
        assert rec['findings'][0].startswith('gateway (caracal-gateway-1): %s' % name)


# ---------------------------------------------------------------- containers

def test_root_container_fails_from_its_process():
    items = stack()
    ctrs = containers(items)
    api = [c for c in ctrs if c['service'] == 'api'][0]
    api['proc'].update({'uid': 0, 'euid': 0})
    rec = rt.check_non_root(PROFILE, ctrs, engines=ENGINES)
    assert rec['status'] == FAIL
    assert rec['findings'] == ['api (caracal-api-1): its process runs as uid 0 (root)']


def test_root_container_fails_from_its_config_when_the_process_is_not_visible():
    items = stack()
    by_service(items, 'audit')['Config']['User'] = 'root'
    rec = rt.check_non_root(PROFILE, containers(items, proc=False), engines=ENGINES)
    assert rec['status'] == FAIL
    assert any(f.startswith('audit (caracal-audit-1): configured to run as root') for f in rec['findings'])


def test_postgres_without_user_passes_when_its_process_dropped_root():
    rec = run(rt.check_non_root)
    assert rec['evidence']['users']['caracal-postgres-1'] == {'configured': '(image default)', 'process_uid': 991}
    assert 'one-shot' in rec['evidence']['users']['caracal-replayInit-1']['note']


def test_container_with_an_extra_capability_fails():
    items = stack()
    by_service(items, 'api')['HostConfig']['CapAdd'] = ['CAP_NET_ADMIN']
    rec = run(rt.check_capabilities, items)
    assert rec['status'] == FAIL
    assert rec['findings'][0] == 'api (caracal-api-1): adds NET_ADMIN beyond the contract (allowed: none)'


def test_postgres_contract_capabilities_pass_but_one_more_fails():
    items = stack()
    pg = by_service(items, 'postgres')
    pg['HostConfig']['CapAdd'] = pg['HostConfig']['CapAdd'] + ['SYS_ADMIN']
    rec = run(rt.check_capabilities, items)
    assert rec['findings'] == ['postgres (caracal-postgres-1): adds SYS_ADMIN beyond the contract '
                               '(allowed: CHOWN, DAC_READ_SEARCH, FOWNER, SETGID, SETUID)']


def test_capabilities_not_dropped_fail_from_config_and_from_the_bounding_set():
    items = stack()
    by_service(items, 'redis')['HostConfig']['CapDrop'] = None
    rec = rt.check_capabilities(PROFILE, containers(items, proc=False), engines=ENGINES)
    assert rec['findings'] == ['redis (caracal-redis-1): does not drop ALL capabilities (CapDrop: none)']
    ctrs = containers(stack())
    [c for c in ctrs if c['service'] == 'coordinator'][0]['proc']['cap_bnd'] = ['CHOWN', 'NET_RAW']
    rec = rt.check_capabilities(PROFILE, ctrs, engines=ENGINES)
    assert rec['findings'] == ['coordinator (caracal-coordinator-1): its process can still hold CHOWN, NET_RAW (not dropped)']


def test_privileged_container_fails():
    items = stack()
    by_service(items, 'web')['HostConfig']['Privileged'] = True
    rec = run(rt.check_capabilities, items)
    assert 'web (caracal-web-1): runs privileged (every capability and device)' in rec['findings']


def test_no_new_privileges_measured_and_configured():
    items = stack()
    by_service(items, 'sts')['HostConfig']['SecurityOpt'] = []
    rec = rt.check_no_new_privileges(PROFILE, containers(items, proc=False), engines=ENGINES)
    assert rec['findings'] == ['sts (caracal-sts-1): no-new-privileges is not set']
    ctrs = containers(stack())
    [c for c in ctrs if c['service'] == 'gateway'][0]['proc']['no_new_privs'] = False
    rec = rt.check_no_new_privileges(PROFILE, ctrs, engines=ENGINES)
    assert rec['findings'] == ['gateway (caracal-gateway-1): no-new-privileges is not set']


def test_writable_root_fails_for_apps_not_for_storage():
    items = stack()
    by_service(items, 'coordinator')['HostConfig']['ReadonlyRootfs'] = False
    rec = run(rt.check_read_only, items)
    assert rec['findings'] == ['coordinator (caracal-coordinator-1): the root filesystem is writable']
    assert rec['evidence']['containers']['caracal-postgres-1']['required'] is False


def test_missing_limits_fail():
    items = stack()
    by_service(items, 'web')['HostConfig'].update({'PidsLimit': None, 'Memory': 0})
    rec = run(rt.check_limits, items)
    assert rec['findings'] == ['web (caracal-web-1): no memory, pids limit']


def test_replay_state_must_be_on_a_volume():
    items = stack()
    by_service(items, 'sts')['Mounts'] = [m for m in by_service(items, 'sts')['Mounts'] if m['Type'] != 'volume']
    by_service(items, 'gateway')['Mounts'] = [m for m in by_service(items, 'gateway')['Mounts'] if m['Type'] != 'volume']
    by_service(items, 'gateway')['HostConfig']['Tmpfs'] = {'/var/lib/caracal': 'size=1m'}
    rec = run(rt.check_replay_state, items)
    assert rec['status'] == FAIL
    assert any('sts (caracal-sts-1): nothing is mounted at /var/lib/caracal/audit-replay' in f for f in rec['findings'])
    assert any('gateway (caracal-gateway-1): /var/lib/caracal/audit-replay is on a tmpfs mount' in f for f in rec['findings'])


def test_replay_state_not_applicable_without_sts_and_gateway():
    items = [by_service(stack(), 'postgres')]
    rec = run(rt.check_replay_state, items)
    assert rec['status'] == NOT_APPLICABLE and rec['detail'] == 'neither sts nor gateway runs on this host'


# ---------------------------------------------------------------- access

def test_control_gate_present_fails_unless_meant_to_be_on():
    ctrs = containers()
    gates = rt.control_gates(PROFILE, ctrs)
    assert [(c['service'], gate) for c, _m, gate in gates] == [('api', '/opt/caracal/control/enabled')]
    closed = rt.check_control(PROFILE, ctrs, {'/opt/caracal/control/enabled': False}, engines=ENGINES)
    assert closed['status'] == PASS
    opened = rt.check_control(PROFILE, ctrs, {'/opt/caracal/control/enabled': True}, engines=ENGINES)
    assert opened['findings'] == ['api (caracal-api-1): Control is enabled: the gate file /opt/caracal/control/enabled exists']
    meant = rt.check_control(PROFILE, ctrs, {'/opt/caracal/control/enabled': True}, enabled=True, engines=ENGINES)
    assert meant['status'] == PASS


def test_control_mount_read_write_fails():
    items = stack()
    for m in by_service(items, 'api')['Mounts']:
        if m['Destination'] == '/run/caracal-control':
            m['RW'] = True
    rec = rt.check_control(PROFILE, containers(items), {}, engines=ENGINES)
    assert rec['findings'] == ['api (caracal-api-1): mounts the control directory read-write (it could open its own gate)']


def test_control_not_applicable_without_api():
    rec = rt.check_control(PROFILE, containers([by_service(stack(), 'sts')]), {}, engines=ENGINES)
    assert rec['status'] == NOT_APPLICABLE and 'api' in rec['detail']


def test_sts_admin_token_set_fails_without_showing_it():
    items = stack()
    env_set(by_service(items, 'sts'), 'STS_ADMIN_TOKEN', 'deadbeef' * 8)
    rec = run(rt.check_sts_admin_token, items)
    assert rec['findings'] == ['sts (caracal-sts-1): STS_ADMIN_TOKEN is set (non-empty): the internal endpoints are open']
    assert 'deadbeef' not in repr(rec)


def test_gateway_allowlist_is_advisory():
    items = stack()
    env_set(by_service(items, 'gateway'), 'UPSTREAM_HOST_ALLOWLIST', '')
    rec = run(rt.check_gateway_allowlist, items)
    assert rec['status'] == FAIL and rec['required'] is False
    assert run(rt.check_gateway_allowlist)['evidence']['allowlist'] == {'caracal-gateway-1': ['api.upstream.test']}


# ---------------------------------------------------------------- metrics

def test_metrics_targets_use_the_loopback_publish():
    targets = dict((c['service'], (host, port, how)) for c, host, port, how in rt.metrics_targets(PROFILE, containers()))
    assert targets == {'sts': ('127.0.0.1', 8080, 'publish'), 'api': ('127.0.0.1', 3000, 'publish'),
                       'gateway': ('127.0.0.1', 8081, 'publish'), 'audit': ('127.0.0.1', 9090, 'publish'),
                       'coordinator': ('127.0.0.1', 4000, 'publish')}


def test_metrics_must_answer_401():
    ctrs = containers()
    names = [c['name'] for c, _h, _p, _w in rt.metrics_targets(PROFILE, ctrs)]
    probes = dict((n, {'status': 401}) for n in names)
    assert rt.check_metrics(PROFILE, ctrs, probes, engines=ENGINES)['status'] == PASS
    probes['caracal-audit-1'] = {'status': 200}
    probes['caracal-sts-1'] = {'error': 'connection refused'}
    rec = rt.check_metrics(PROFILE, ctrs, probes, engines=ENGINES)
    assert sorted(rec['findings']) == [
        'audit (caracal-audit-1): /metrics answered 200 without a bearer token (expected 401)',
        'sts (caracal-sts-1): /metrics at 127.0.0.1:8080 did not answer (connection refused)',
    ]


def test_metrics_use_the_container_address_without_a_publish():
    items = stack()
    by_service(items, 'audit')['NetworkSettings']['Ports'] = {'9090/tcp': None}
    by_service(items, 'audit')['HostConfig']['PortBindings'] = {}
    targets = dict((c['service'], (host, port, how)) for c, host, port, how in rt.metrics_targets(PROFILE, containers(items)))
    assert targets['audit'] == ('172.18.0.16', 9090, 'container network')


# ---------------------------------------------------------------- parsing

def test_parse_proc_status():
    text = ('Name:\tsts\nUid:\t65532\t65532\t65532\t65532\nGid:\t65532\t65532\t65532\t65532\n'
            'CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t0000000000003000\nNoNewPrivs:\t1\n')
    facts = rt.parse_proc_status(text)
    assert facts == {'comm': 'sts', 'uid': 65532, 'euid': 65532, 'gid': 65532, 'cap_prm': [], 'cap_eff': [],
                     'cap_bnd': ['NET_ADMIN', 'NET_RAW'], 'no_new_privs': True}


def test_caps_from_mask_of_docker_defaults():
    assert rt.caps_from_mask('00000000a80425fb') == set([
        'CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'KILL', 'SETGID', 'SETUID', 'SETPCAP', 'NET_BIND_SERVICE',
        'NET_RAW', 'SYS_CHROOT', 'MKNOD', 'AUDIT_WRITE', 'SETFCAP'])


def test_podman_capability_sets_are_used():
    item = by_service(stack(), 'api')
    item['HostConfig']['CapDrop'] = ['CAP_AUDIT_WRITE', 'CAP_CHOWN']  # podman lists what it dropped
    item['BoundingCaps'] = []
    item['EffectiveCaps'] = []
    ctr = rt.normalize_container(item, engine='podman')
    assert ctr['proc']['cap_bnd'] == []
    assert rt.check_capabilities(PROFILE, [ctr], engines=['podman'])['status'] == PASS
    item['BoundingCaps'] = ['CAP_NET_RAW']
    rec = rt.check_capabilities(PROFILE, [rt.normalize_container(item, engine='podman')], engines=['podman'])
    assert rec['findings'] == ['api (caracal-api-1): its process can still hold NET_RAW (not dropped)']


def test_project_containers_by_label_and_by_name():
    items = stack()
    other = by_service(stack(), 'api')
    other['Config']['Labels']['com.docker.compose.project'] = 'other'
    unlabelled = by_service(stack(), 'sts')
    unlabelled['Config']['Labels'] = {}
    unlabelled['Name'] = '/systemd-caracal-sts'
    stranger = by_service(stack(), 'web')
    stranger['Config']['Labels'] = {}
    stranger['Name'] = '/caracal-demo'
    ctrs = [rt.normalize_container(i) for i in items + [other, unlabelled, stranger]]
    found = rt.project_containers(ctrs, 'caracal', rt.known_services(PROFILE))
    names = [c['name'] for c in found]
    assert 'systemd-caracal-sts' in names and 'caracal-demo' not in names
    assert len(found) == len(items) + 1
    assert [c['service'] for c in found if c['name'] == 'systemd-caracal-sts'] == ['sts']


def test_project_containers_by_the_quadlet_labels():
    quadlet = by_service(stack(), 'gateway')
    quadlet['Config']['Labels'] = {'org.caracal.hardened.project': 'caracal', 'org.caracal.hardened.service': 'gateway'}
    quadlet['Name'] = 'caracal-gateway'
    foreign = by_service(stack(), 'gateway')
    foreign['Config']['Labels'] = {'org.caracal.hardened.project': 'other', 'org.caracal.hardened.service': 'gateway'}
    foreign['Name'] = 'caracal-gateway-other'
    found = rt.project_containers([rt.normalize_container(i, engine='podman') for i in (quadlet, foreign)],
                                  'caracal', rt.known_services(PROFILE))
    assert [(c['name'], c['service'], c['project']) for c in found] == [('caracal-gateway', 'gateway', 'caracal')]


def test_env_values_never_reach_a_record():
    items = stack()
    env_set(by_service(items, 'api'), 'CARACAL_MODE', 'dev')
    env_set(by_service(items, 'api'), 'SOMETHING_SECRET', 'f00d' * 16)
    for check in SIMPLE:
        assert 'f00d' * 16 not in repr(run(check, items))
