# -*- coding: utf-8 -*-
"""Verify the quadlet role on Debian 13: the whole stack as Podman Quadlet units under a target.

The scenario converged the secrets role and the quadlet role with the local test images
(tests/images), whose stand-ins honour Caracal's startup contract. The first tests only
read; the later ones run playbooks and restart things, each starting from the state the
previous one left (pytest runs them in file order).
"""

import base64
import datetime
import json
import os

from ansible_collections.caracal.hardened.plugins.module_utils._contract import roll_order
from caracal_molecule import changed_count, environments as process_environments, fingerprint
from caracal_molecule import proc_statuses as process_statuses, run_playbook, tree_digest
from caracal_stack_tests import APPS, CONTROL, GID, HOME, JOBS, LONG_RUNNING, ORDER, PROFILE, READY_TIMEOUT
from caracal_stack_tests import SERVICES, UID, VIEWS, check_unchanged_host_skips_and_drift_is_repaired, fingerprints
from caracal_stack_tests import get, publish_port, store_values

QUADLET_DIR = '/etc/containers/systemd/caracal'
TARGET = 'caracal.target'
SCENARIO_VARS = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', 'vars', 'main.yml'))


# ------------------------------------------------------------------ helpers

def unit(service):
    return 'caracal-%s.service' % service


def apply(roles, extra=None, **kwargs):
    """Run ``roles`` with the scenario's variables (plus ``extra``) in one play."""
    plays = [{
        'name': 'quadlet scenario: %s' % ', '.join(roles),
        'hosts': 'all',
        'gather_facts': False,
        'vars_files': [SCENARIO_VARS],
        'roles': [{'role': 'caracal.hardened.%s' % r} for r in roles],
    }]
    return run_playbook(plays, extra_vars=extra, **kwargs)


def inspect(host, service):
    return json.loads(host.check_output('podman inspect caracal-%s' % service))[0]


def started(host, services):
    """{service: when its container started} (a restart replaces the container)."""
    result = {}
    for svc in services:
        raw = inspect(host, svc)['State']['StartedAt']
        stamp, dummy, frac = raw.rstrip('Z').partition('.')
        frac = frac.split('+')[0].split('-')[0]
        micro = int((frac + '000000')[:6]) if frac else 0
        result[svc] = datetime.datetime.strptime(stamp[:19], '%Y-%m-%dT%H:%M:%S').replace(microsecond=micro)
    return result


def unit_states(host):
    out = host.run('systemctl is-active %s %s' % (TARGET, ' '.join(unit(s) for s in ORDER + ['replayInit'])))
    return dict(zip([TARGET] + ORDER + ['replayInit'], out.stdout.split()))


def wait_ready(host, timeout=READY_TIMEOUT):
    """Every unit active (containers healthy, jobs completed), bounded.

    Not ``systemctl is-active --quiet a b c``: that exits 0 when any one of them is active.
    """
    units = ' '.join([TARGET] + [unit(s) for s in ORDER])
    script = ('end=$(( $(date +%%s) + %d )); '
              'while [ "$(date +%%s)" -lt "$end" ]; do '
              '[ -z "$(systemctl is-active %s | grep -vx active)" ] && exit 0; sleep 2; done; '
              'systemctl is-active %s; exit 1') % (timeout, units, units)
    return host.run("bash -c '%s'" % script)


def proc_statuses(host, service):
    return process_statuses(host, 'podman top caracal-%s hpid' % service)


def environments(host, service):
    return process_environments(host, 'podman top caracal-%s hpid' % service)


def put(host, path, text):
    host.run_expect([0], 'echo %s | base64 -d > %s' % (base64.b64encode(text.encode('utf-8')).decode('ascii'), path))


def unit_file(host, service):
    return host.file('%s/caracal-%s.container' % (QUADLET_DIR, service)).content_string


# ------------------------------------------------------------------ engine and units

def test_podman_from_debian_without_api_socket_or_auto_updates(host):
    for pkg in ('podman', 'netavark', 'aardvark-dns', 'catatonit', 'crun'):
        assert host.package(pkg).is_installed, pkg
    assert int(host.check_output("podman version --format '{{.Client.Version}}'").split('.')[0]) >= 5
    for name in ('podman.socket', 'podman-auto-update.timer'):
        assert not host.service(name).is_enabled and not host.service(name).is_running, name


def test_one_quadlet_file_per_service_network_and_volume(host):
    d = host.file(QUADLET_DIR)
    assert (d.user, d.group, d.mode) == ('root', 'root', 0o750)
    files = sorted(host.file(QUADLET_DIR).listdir())
    expected = sorted(['caracal-%s.container' % s for s in ORDER + ['replayInit']]
                      + ['caracal-%s.network' % n for n in ('app', 'data-postgres', 'data-redis')]
                      + ['caracal-%s.volume' % v for v in ('postgres-data', 'redis-data', 'sts-replay', 'gateway-replay')])
    assert files == expected
    # Quadlet converts every file and systemd-analyze accepts every generated unit.
    assert host.run('/usr/libexec/podman/quadlet -dryrun').rc == 0
    generated = ' '.join('/run/systemd/generator/%s' % unit(s) for s in ORDER)
    result = host.run('systemd-analyze verify %s' % generated)
    assert result.rc == 0 and not result.stderr.strip(), result.stderr


def test_target_owns_the_stack_and_is_enabled_at_boot(host):
    assert host.service(TARGET).is_enabled and host.service(TARGET).is_running
    wants = host.check_output('systemctl show %s -p Wants --value' % TARGET).split()
    assert set(unit(s) for s in ORDER + ['replayInit']) <= set(wants)
    for svc in ORDER:
        props = dict(line.split('=', 1) for line in host.check_output(
            'systemctl show %s -p PartOf -p Wants -p After -p Requires -p Type -p LimitCORE -p TimeoutStartUSec' % unit(svc)).splitlines())
        assert TARGET in props['PartOf'].split(), svc
        assert props['LimitCORE'] == '0', svc
        assert props['TimeoutStartUSec'] != 'infinity', svc
        deps = list(SERVICES[svc].get('depends_on') or {})
        if svc in PROFILE['replay_state']['services']:
            deps.append('replayInit')
        for dep in deps:
            assert unit(dep) in props['Wants'].split() and unit(dep) in props['After'].split(), (svc, dep)
        # A restart of a dependency never restarts its dependents (no Requires= between services).
        assert not [u for u in props['Requires'].split() if u.startswith('caracal-') and not u.endswith(('-network.service', '-volume.service'))], svc
        assert props['Type'] == ('oneshot' if svc in JOBS else 'notify'), svc


def test_units_hold_no_secret_and_no_shell_healthcheck(host):
    values = store_values(host)
    for path in host.file(QUADLET_DIR).listdir():
        text = host.file('%s/%s' % (QUADLET_DIR, path)).content_string
        assert not [n for n, v in values.items() if v in text], path
    for svc in LONG_RUNNING:
        text = unit_file(host, svc)
        assert 'HealthCmd=CMD /healthcheck' in text and 'Notify=healthy' in text, svc
        assert 'Pull=never' in text and 'Secret=' not in text, svc
        hc = inspect(host, svc)['Config']['Healthcheck']['Test']
        assert hc[0] == 'CMD', (svc, hc)  # exec form: no shell in the image needed


# ------------------------------------------------------------------ the running stack

def test_stack_is_healthy(host):
    result = wait_ready(host, timeout=30)
    assert result.rc == 0, result.stdout
    for svc in LONG_RUNNING:
        data = inspect(host, svc)
        assert data['State']['Status'] == 'running', svc
        assert data['State']['Health']['Status'] == 'healthy', svc
    # One-shot jobs completed: units active (exited), their containers gone (--rm).
    for svc in JOBS:
        props = host.check_output('systemctl show %s -p ActiveState -p SubState -p Result' % unit(svc))
        assert 'ActiveState=active' in props and 'SubState=exited' in props and 'Result=success' in props, (svc, props)
    assert get(host, 'sts', '/health')[0] == 200


def test_app_containers_are_non_root_read_only_and_capability_free(host):
    for svc in APPS:
        data = inspect(host, svc)
        hc = data['HostConfig']
        assert data['Config']['User'] == '%d:%d' % (UID, GID), svc
        assert hc['ReadonlyRootfs'] is True, svc
        assert not hc['CapAdd'], svc
        assert 'no-new-privileges' in ' '.join(hc['SecurityOpt']), svc
        assert hc['Init'] is True, svc
        assert hc['Memory'] > 0 and hc['NanoCpus'] > 0 and hc['PidsLimit'] > 0, svc
        # Podman's --read-only adds writable tmpfs on /tmp, /var/tmp, /run unless told not to:
        # only the contract's tmpfs may be writable.
        assert set(hc['Tmpfs'] or {}) == set(SERVICES[svc]['runtime'].get('tmpfs') or {}), (svc, hc['Tmpfs'])
        for pid, status in proc_statuses(host, svc).items():
            assert status['Uid'].split()[:2] == [str(UID), str(UID)], (svc, pid, status['Uid'])
            assert int(status['CapEff'], 16) == 0 and int(status['CapPrm'], 16) == 0, (svc, pid)
            assert status['NoNewPrivs'] == '1', (svc, pid)


def test_storage_containers_have_only_their_contract_capabilities(host):
    for svc in ('postgres', 'redis'):
        data = inspect(host, svc)
        hc = data['HostConfig']
        runtime = SERVICES[svc]['runtime']
        added = sorted(c.replace('CAP_', '') for c in data['EffectiveCaps'] or [])
        assert added == sorted(runtime.get('cap_add') or []), (svc, added)
        assert 'no-new-privileges' in ' '.join(hc['SecurityOpt']), svc
        assert str(GID) in [str(g) for g in hc['GroupAdd']], svc
        for pid, status in proc_statuses(host, svc).items():
            assert status['NoNewPrivs'] == '1', (svc, pid)
            assert status['Uid'].split()[0] != '0', (svc, pid)


def test_replay_state_is_prepared(host):
    for svc in PROFILE['replay_state']['services']:
        out = host.check_output('podman exec caracal-%s stat -c "%%a %%u %%g" %s' % (svc, PROFILE['replay_state']['path']))
        assert out == '750 %d %d' % (UID, GID), svc


def test_nothing_listens_beyond_loopback(host):
    # Besides loopback, only Podman's DNS (aardvark-dns) on the gateway address of each of
    # the stack's bridges, where only that network's containers reach it.
    gateways = set()
    for net in json.loads(host.check_output('podman network inspect caracal-app caracal-data-postgres caracal-data-redis')):
        gateways.update(s['gateway'] for s in net['subnets'])
    listeners = host.check_output('ss -ltunpH').splitlines()
    addresses = [line.split()[4] for line in listeners]
    for line, addr in zip(listeners, addresses):
        ip, port = addr.rsplit(':', 1)
        ip = ip.strip('[]').split('%')[0]
        if ip in gateways:
            assert port == '53' and 'aardvark-dns' in line, line
            continue
        assert ip.startswith('127.') or ip == '::1', line
    ports = set(int(a.rsplit(':', 1)[1]) for a in addresses)
    for svc in APPS:
        assert publish_port(svc) in ports, svc
    assert 5432 not in ports and 6379 not in ports


def test_storage_is_reachable_only_by_its_users(host):
    nets = {svc: set(inspect(host, svc)['NetworkSettings']['Networks']) for svc in LONG_RUNNING}
    assert nets['postgres'] == {'caracal-data-postgres'}
    assert nets['redis'] == {'caracal-data-redis'}
    assert 'caracal-data-redis' not in nets['web'] and 'caracal-data-postgres' in nets['web']
    for net in ('caracal-data-postgres', 'caracal-data-redis'):
        assert json.loads(host.check_output('podman network inspect %s' % net))[0]['internal'] is True
    probe = ("python3 -c \"import socket,sys\ntry:\n socket.create_connection((sys.argv[1],int(sys.argv[2])),3)\n"
             "except OSError:\n sys.exit(1)\" %s %s")
    assert host.run('podman exec caracal-web %s' % (probe % ('redis', 6379))).rc != 0
    assert host.run('podman exec caracal-sts %s' % (probe % ('redis', 6379))).rc == 0


def test_each_container_sees_only_its_own_secrets(host):
    for svc in ORDER:
        mount = '%s/%s:%s:ro' % (VIEWS, svc, PROFILE['secrets_mount'])
        assert 'Volume=%s\n' % mount in unit_file(host, svc), svc
        if svc in JOBS:
            continue
        mounts = [m for m in inspect(host, svc)['Mounts'] if m['Destination'] == PROFILE['secrets_mount']]
        assert len(mounts) == 1 and mounts[0]['Source'] == '%s/%s' % (VIEWS, svc) and mounts[0]['RW'] is False, svc
        listed = host.check_output('podman exec caracal-%s ls -A %s' % (svc, PROFILE['secrets_mount'])).split()
        assert sorted(listed) == sorted(SERVICES[svc]['secrets']), svc


def test_no_secret_value_in_inspect_environment_units_or_journal(host):
    values = store_values(host)
    texts = {'podman inspect': host.check_output('podman inspect %s' % ' '.join('caracal-%s' % s for s in LONG_RUNNING))}
    for svc in LONG_RUNNING:
        texts['%s process environments' % svc] = environments(host, svc)
    texts['generated units'] = host.check_output('cat /run/systemd/generator/caracal-*.service')
    texts['journal'] = host.check_output('journalctl --no-pager -u "caracal-*"')
    texts['podman secrets'] = host.check_output('podman secret ls --format "{{.Name}}"')
    assert 'CARACAL_MODE=stable' in texts['sts process environments']
    leaks = [(where, name) for where, text in texts.items() for name, value in values.items() if value and value in text]
    assert not leaks, leaks


def test_running_processes_hold_the_delivered_values(host):
    values = store_values(host)
    for svc in APPS:
        held = fingerprints(host, svc)
        assert held == {name: fingerprint(values[name]) for name in SERVICES[svc]['secrets']}, svc


def test_control_is_closed_by_default(host):
    assert not host.file(CONTROL + '/enabled').exists
    assert get(host, 'api', '/control/ping')[0] == 503


# ------------------------------------------------------------------ runs that change things

def test_dev_mode_is_refused_before_anything_changes(host):
    before = tree_digest(host, HOME, QUADLET_DIR, '/etc/systemd/system/' + TARGET)
    rc, out = apply(['quadlet'], {'caracal_mode': 'dev'})
    assert rc != 0
    assert 'mode' in out and 'dev' in out and 'caracal_allow_nonproduction' in out, out[-3000:]
    assert changed_count(out) == 0
    assert tree_digest(host, HOME, QUADLET_DIR, '/etc/systemd/system/' + TARGET) == before


def test_the_checker_refuses_what_quadlet_or_systemd_refuses(host):
    checker = '/usr/local/libexec/caracal-quadlet-check'
    good = unit_file(host, 'api')
    cases = {
        'Quadlet cannot convert': good.replace('[Container]\n', '[Container]\nInit=true\n'),
        'systemd-analyze verify refused': good.replace('[Service]\n', '[Service]\nBogusKey=1\n'),
    }
    for message, text in cases.items():
        put(host, '/tmp/candidate', text)
        result = host.run('%s /tmp/candidate caracal-api.container %s /usr/libexec/podman/quadlet' % (checker, QUADLET_DIR))
        assert result.rc != 0 and message in result.stderr, (message, result.stderr)
    put(host, '/tmp/candidate', good)
    assert host.run('%s /tmp/candidate caracal-api.container %s /usr/libexec/podman/quadlet' % (checker, QUADLET_DIR)).rc == 0


def test_a_unit_that_fails_its_check_leaves_the_running_stack_untouched(host):
    before = tree_digest(host, QUADLET_DIR, '/etc/systemd/system/' + TARGET)
    was = started(host, LONG_RUNNING)
    generator = '/usr/libexec/podman/quadlet'
    # Fault injection: a Quadlet that refuses every file, so the changed api unit fails its check.
    host.run_expect([0], 'mv %s %s.real && printf "#!/bin/sh\\necho refused by the test >&2\\nexit 1\\n" > %s && chmod 755 %s'
                    % (generator, generator, generator, generator))
    try:
        rc, out = apply(['quadlet'], {'caracal_quadlet_limits': {'api': {'memory': '384m'}}})
    finally:
        host.run_expect([0], 'mv %s.real %s' % (generator, generator))
    assert rc != 0
    assert 'Quadlet cannot convert caracal-api.container' in out and 'refused by the test' in out, out[-4000:]
    assert tree_digest(host, QUADLET_DIR, '/etc/systemd/system/' + TARGET) == before
    assert started(host, LONG_RUNNING) == was
    assert wait_ready(host, timeout=10).rc == 0


def test_check_mode_with_a_changed_setting_changes_nothing(host):
    before = tree_digest(host, HOME, QUADLET_DIR, '/etc/systemd/system/' + TARGET)
    was = started(host, LONG_RUNNING)
    rc, out = apply(['secrets', 'quadlet'], {'caracal_secrets_rotate': ['metricsBearer'],
                                             'caracal_quadlet_limits': {'api': {'memory': '384m'}}}, check=True, diff=True)
    assert rc == 0, out[-4000:]
    assert changed_count(out) > 0
    assert '--memory=384m' in out  # the diff shows the unit change
    assert tree_digest(host, HOME, QUADLET_DIR, '/etc/systemd/system/' + TARGET) == before
    assert started(host, LONG_RUNNING) == was
    values = store_values(host)
    assert not [n for n, v in values.items() if v in out]


def test_rotation_restarts_exactly_the_consumers_in_roll_order(host):
    secret = 'gatewayStsHmacKey'
    expected = roll_order(PROFILE, [secret])
    old = store_values(host)[secret]
    # An operator restarted one consumer as often as systemd's crash-loop guard allows
    # (5 starts in 300 s): the rotation's planned restart, a sixth start, must still go through.
    held = expected[-1]
    limits = host.run('systemctl show --property=StartLimitBurst,StartLimitIntervalUSec %s' % unit(held)).stdout.split()
    assert sorted(limits) == ['StartLimitBurst=5', 'StartLimitIntervalUSec=5min']
    host.run_expect([0], 'systemctl reset-failed %s' % unit(held))
    for dummy in range(5):
        host.run_expect([0], 'systemctl restart %s' % unit(held))
    before = started(host, LONG_RUNNING)
    rc, out = apply(['secrets', 'quadlet'], {'caracal_secrets_rotate': [secret], 'caracal_control_enabled': True})
    assert rc == 0, out[-5000:]
    new = store_values(host)[secret]
    assert new != old
    after = started(host, LONG_RUNNING)
    restarted = [s for s in LONG_RUNNING if after[s] != before[s]]
    assert sorted(restarted) == sorted(expected), (restarted, expected)
    assert sorted(restarted, key=lambda s: after[s]) == expected
    for svc in expected:
        assert fingerprints(host, svc)[secret] == fingerprint(new), svc
    assert not host.file(HOME + '/quadlet-restart-pending.json').exists
    assert wait_ready(host, timeout=30).rc == 0
    gate = host.file(CONTROL + '/enabled')
    assert gate.exists and (gate.user, gate.group, gate.mode) == ('root', 'caracal', 0o440)
    assert get(host, 'api', '/control/ping')[0] != 503
    assert not [v for v in (old, new) if v in out]


def test_a_changed_unit_restarts_only_its_service(host):
    before = started(host, LONG_RUNNING)
    rc, out = apply(['quadlet'], {'caracal_quadlet_limits': {'api': {'memory': '384m'}}, 'caracal_control_enabled': True})
    assert rc == 0, out[-4000:]
    after = started(host, LONG_RUNNING)
    assert [s for s in LONG_RUNNING if after[s] != before[s]] == ['api']
    assert inspect(host, 'api')['HostConfig']['Memory'] == 384 * 1024 * 1024


def test_a_refusing_service_fails_the_run_naming_it_and_why_then_a_password_rotation_repairs(host):
    view = '%s/audit/auditHmacKey' % VIEWS
    short = 'ab' * 8
    host.run_expect([0], "sh -c 'printf \"%%s\\n\" %s > %s'" % (short, view))
    rc, out = apply(['quadlet'], {'caracal_quadlet_restart': ['audit'], 'caracal_control_enabled': True})
    assert rc != 0
    assert 'The Caracal stack is not ready: audit' in out, out[-5000:]
    assert 'refusing to start: audit' in out and 'AUDIT_HMAC_KEY' in out, out[-5000:]
    assert short not in out
    assert host.file(HOME + '/quadlet-restart-pending.json').exists
    # The secrets role repairs the view and names audit; the same run rotates the Postgres
    # password, which the role sets on the database roles before the consumers restart.
    old_url = store_values(host)['databaseUrl']
    before = started(host, [s for s in LONG_RUNNING if s != 'audit'])
    rc, out = apply(['secrets', 'quadlet'], {'caracal_secrets_rotate': ['postgresPassword']})
    assert rc == 0, out[-5000:]
    assert wait_ready(host, timeout=60).rc == 0
    values = store_values(host)
    assert values['databaseUrl'] != old_url
    after = started(host, [s for s in LONG_RUNNING if s != 'audit'])
    expected = [s for s in roll_order(PROFILE, ['auditHmacKey', 'postgresPassword', 'databaseUrl', 'authDatabaseUrl'])
                if s in before]
    restarted = sorted((s for s in before if after[s] != before[s]), key=lambda s: after[s])
    assert restarted == expected, (restarted, expected)
    assert fingerprints(host, 'audit')['auditHmacKey'] == fingerprint(values['auditHmacKey'])
    assert fingerprints(host, 'api')['databaseUrl'] == fingerprint(values['databaseUrl'])
    assert fingerprints(host, 'web')['authDatabaseUrl'] == fingerprint(values['authDatabaseUrl'])
    assert not host.file(HOME + '/quadlet-restart-pending.json').exists
    assert not host.file(CONTROL + '/enabled').exists
    assert not [v for v in values.values() if v in out]


def test_target_restart_brings_the_stack_back_with_its_state(host):
    marker = '%s/molecule-marker' % PROFILE['replay_state']['path']
    host.run_expect([0], 'podman exec caracal-sts touch %s' % marker)
    held = fingerprints(host, 'sts')
    before = started(host, LONG_RUNNING)
    host.run_expect([0], 'systemctl restart %s' % TARGET)
    result = wait_ready(host)
    assert result.rc == 0, result.stdout
    after = started(host, LONG_RUNNING)
    assert all(after[s] != before[s] for s in LONG_RUNNING)
    assert host.run('podman exec caracal-sts test -f %s' % marker).rc == 0
    assert fingerprints(host, 'sts') == held


def test_a_killed_container_is_replaced_by_systemd(host):
    old = inspect(host, 'gateway')['Id']
    # The service's process dies: the container exits and systemd restarts the unit
    # (Restart=always); the new container must become healthy again.
    host.run_expect([0], 'podman kill --signal KILL caracal-gateway')
    script = ('for i in $(seq 1 45); do '
              'id=$(podman inspect --format "{{.Id}} {{.State.Health.Status}}" caracal-gateway 2>/dev/null); '
              'case "$id" in %s*) ;; *" healthy") systemctl is-active --quiet caracal-gateway.service && exit 0;; esac; '
              'sleep 2; done; echo "$id"; exit 1') % old
    result = host.run("bash -c '%s'" % script)
    assert result.rc == 0, result.stdout
    assert inspect(host, 'gateway')['Id'] != old
    assert wait_ready(host, timeout=60).rc == 0


def test_a_service_held_back_by_the_start_limit_is_started_by_the_role(host):
    # Stopped after as many starts as the crash-loop guard allows: systemd refuses to start it,
    # and the target's Wants= would skip it without a word. The role clears the limit first.
    gateway = unit('gateway')
    host.run_expect([0], 'systemctl reset-failed %s' % gateway)
    for dummy in range(5):
        host.run_expect([0], 'systemctl restart %s' % gateway)
    host.run_expect([0], 'systemctl stop %s' % gateway)
    refused = host.run('systemctl start %s' % gateway)
    assert refused.rc != 0
    assert host.run('systemctl show --property=Result --value %s' % gateway).stdout.strip() == 'start-limit-hit'
    rc, out = apply(['quadlet'])
    assert rc == 0, out[-4000:]
    assert changed_count(out) > 0
    assert wait_ready(host, timeout=60).rc == 0


def test_an_unchanged_host_skips_the_full_run_and_drift_is_repaired(host):
    # Drift: a unit file with another mode, a service stopped behind the target's back.
    check_unchanged_host_skips_and_drift_is_repaired(
        host, apply, 'quadlet', 'chmod 0600 %s/caracal-web.container && systemctl stop %s' % (QUADLET_DIR, unit('web')),
        lambda h: h.file(QUADLET_DIR + '/caracal-web.container').mode == 0o644, wait_ready)
