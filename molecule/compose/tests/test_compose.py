# -*- coding: utf-8 -*-
"""Verify the compose role on Debian 13: a hardened engine and the whole stack under systemd.

The scenario converged the secrets role and the compose role with the local test images
(tests/images), whose stand-ins honour Caracal's startup contract. The first tests only
read; the later ones run playbooks and restart things, each starting from the state the
previous one left (pytest runs them in file order).
"""

import datetime
import json
import os

from ansible_collections.caracal.hardened.plugins.module_utils._contract import roll_order
from caracal_molecule import changed_count, environments as process_environments, fingerprint
from caracal_molecule import proc_statuses as process_statuses, run_playbook, tree_digest
from caracal_stack_tests import APPS, CONTROL, GID, HOME, JOBS, LONG_RUNNING, ORDER, PROFILE, READY_TIMEOUT
from caracal_stack_tests import SERVICES, UID, VIEWS, check_unchanged_host_skips_and_drift_is_repaired, fingerprints
from caracal_stack_tests import get, publish_port, store_values

COMPOSE_DIR = HOME + '/compose'
UNIT = 'caracal-compose.service'
CLI = 'docker compose --project-directory %s' % COMPOSE_DIR
SCENARIO_VARS = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', 'vars', 'main.yml'))


# ------------------------------------------------------------------ helpers

def apply(roles, extra=None, **kwargs):
    """Run ``roles`` with the scenario's variables (plus ``extra``) in one play."""
    plays = [{
        'name': 'compose scenario: %s' % ', '.join(roles),
        'hosts': 'all',
        'gather_facts': False,
        'vars_files': [SCENARIO_VARS],
        'roles': [{'role': 'caracal.hardened.%s' % r} for r in roles],
    }]
    return run_playbook(plays, extra_vars=extra, **kwargs)


def ps(host):
    """{service: compose ps record} of every container of the project."""
    out = host.check_output('%s ps --all --format json' % CLI)
    records = json.loads(out) if out.startswith('[') else [json.loads(line) for line in out.splitlines() if line.strip()]
    return {r['Service']: r for r in records}


def inspect(host, service):
    cid = host.check_output('%s ps --all --quiet %s' % (CLI, service))
    return json.loads(host.check_output('docker inspect %s' % cid))[0]


def started(host, services):
    """{service: StartedAt as a datetime} (Docker trims trailing zeros of the nanoseconds)."""
    result = {}
    for svc in services:
        raw = inspect(host, svc)['State']['StartedAt']
        stamp, dummy, frac = raw.rstrip('Z').partition('.')
        micro = int((frac + '000000')[:6]) if frac else 0
        result[svc] = datetime.datetime.strptime(stamp, '%Y-%m-%dT%H:%M:%S').replace(microsecond=micro)
    return result


def wait_ready(host, timeout=READY_TIMEOUT):
    """Every long-running service healthy and every job exited 0, bounded."""
    script = (
        'end=$(( $(date +%%s) + %d )); '
        'while [ "$(date +%%s)" -lt "$end" ]; do '
        '  s=$(%s ps --all --format "{{.Service}}={{.State}}/{{.Health}}/{{.ExitCode}}" | sort | tr "\\n" " "); '
        '  ok=1; for want in %s; do case " $s" in *" $want "*) ;; *) ok=0;; esac; done; '
        '  [ $ok = 1 ] && { echo "$s"; exit 0; }; sleep 2; '
        'done; echo "$s"; exit 1'
    ) % (timeout, CLI, ' '.join(
        ['%s=running/healthy/0' % s for s in LONG_RUNNING] + ['%s=exited//0' % s for s in JOBS]))
    return host.run("bash -c '%s'" % script.replace("'", "'\\''"))


def _pids(host, service):
    return 'docker top %s -eo pid' % host.check_output('%s ps --quiet %s' % (CLI, service))


def proc_statuses(host, service):
    return process_statuses(host, _pids(host, service))


def environments(host, service):
    return process_environments(host, _pids(host, service))


# ------------------------------------------------------------------ engine

def test_daemon_configuration_is_hardened(host):
    f = host.file('/etc/docker/daemon.json')
    assert (f.user, f.group, f.mode) == ('root', 'root', 0o644)
    config = json.loads(f.content_string)
    assert config['hosts'] == ['fd://']
    assert config['no-new-privileges'] is True
    assert config['live-restore'] is True
    assert config['userland-proxy'] is False
    assert config['icc'] is False
    assert config['log-driver'] == 'json-file'
    assert config['log-opts'] == {'max-size': '10m', 'max-file': '3'}
    info = json.loads(host.check_output("docker info --format '{{json .}}'"))
    assert info['LiveRestoreEnabled'] is True
    assert info['LoggingDriver'] == 'json-file'
    assert any('no-new-privileges' in opt for opt in info['SecurityOptions']) or config['no-new-privileges']
    # The command line carries no -H and no $DOCKER_OPTS: daemon.json is the only listener.
    execstart = host.check_output('systemctl show docker.service -p ExecStart --value')
    assert ' -H ' not in execstart and 'DOCKER_OPTS' not in execstart


def test_engine_and_compose_from_debian(host):
    for pkg in ('docker.io', 'docker-cli', 'docker-compose'):
        assert host.package(pkg).is_installed, pkg
    assert host.check_output('docker compose version --short').startswith('2.')
    assert host.service('docker').is_running and host.service('docker').is_enabled


# ------------------------------------------------------------------ project files and unit

def test_project_files(host):
    compose = host.file(COMPOSE_DIR + '/compose.yaml')
    env = host.file(COMPOSE_DIR + '/.env')
    assert (compose.user, compose.group, compose.mode) == ('root', 'root', 0o640)
    assert (env.user, env.group, env.mode) == ('root', 'root', 0o600)
    settings = [line for line in env.content_string.splitlines() if line and not line.startswith('#')]
    assert settings == ['COMPOSE_PROJECT_NAME=caracal']
    assert host.run('%s config --quiet' % CLI).rc == 0


def test_unit_owns_the_project_and_is_sandboxed(host):
    assert host.service(UNIT).is_enabled and host.service(UNIT).is_running
    props = dict(line.split('=', 1) for line in host.check_output(
        'systemctl show %s -p Type -p RemainAfterExit -p Requires -p After -p ProtectSystem -p ProtectHome '
        '-p PrivateTmp -p NoNewPrivileges -p RestrictSUIDSGID -p LockPersonality -p CapabilityBoundingSet '
        '-p PrivateNetwork -p RestrictAddressFamilies -p TimeoutStartUSec' % UNIT).splitlines())
    assert props['Type'] == 'oneshot' and props['RemainAfterExit'] == 'yes'
    assert 'docker.service' in props['Requires'] and 'docker.service' in props['After']
    assert props['ProtectSystem'] == 'strict' and props['ProtectHome'] == 'yes'
    for key in ('PrivateTmp', 'NoNewPrivileges', 'RestrictSUIDSGID', 'LockPersonality', 'PrivateNetwork'):
        assert props[key] == 'yes', key
    assert props['CapabilityBoundingSet'] == ''
    assert props['RestrictAddressFamilies'] == 'AF_UNIX'
    assert props['TimeoutStartUSec'] != 'infinity'
    unit = host.file('/etc/systemd/system/' + UNIT).content_string
    assert ' down ' in unit and '--volumes' not in unit and ' -v' not in unit
    assert host.run('systemd-analyze verify /etc/systemd/system/%s' % UNIT).rc == 0


# ------------------------------------------------------------------ the running stack

def test_stack_is_healthy(host):
    result = wait_ready(host, timeout=30)
    assert result.rc == 0, result.stdout
    records = ps(host)
    assert set(records) == set(ORDER) | {'replayInit'}


def test_app_containers_are_non_root_read_only_and_capability_free(host):
    for svc in APPS:
        data = inspect(host, svc)
        hc = data['HostConfig']
        assert data['Config']['User'] == '%d:%d' % (UID, GID), svc
        assert hc['ReadonlyRootfs'] is True, svc
        assert hc['CapDrop'] == ['ALL'] and not hc['CapAdd'], svc
        assert 'no-new-privileges:true' in hc['SecurityOpt'], svc
        assert hc['Init'] is True, svc
        assert hc['Memory'] > 0 and hc['NanoCpus'] > 0 and hc['PidsLimit'] > 0, svc
        assert hc['LogConfig']['Type'] == 'json-file', svc
        for pid, status in proc_statuses(host, svc).items():
            assert status['Uid'].split()[:2] == [str(UID), str(UID)], (svc, pid, status['Uid'])
            assert int(status['CapEff'], 16) == 0 and int(status['CapPrm'], 16) == 0, (svc, pid)
            assert status['NoNewPrivs'] == '1', (svc, pid)


def test_storage_containers_have_only_their_contract_capabilities(host):
    for svc in ('postgres', 'redis'):
        hc = inspect(host, svc)['HostConfig']
        runtime = SERVICES[svc]['runtime']
        assert hc['CapDrop'] == ['ALL'], svc
        assert sorted(hc['CapAdd'] or []) == sorted(runtime['cap_add']), svc
        assert 'no-new-privileges:true' in hc['SecurityOpt'], svc
        assert hc['GroupAdd'] == [str(GID)], svc
        for pid, status in proc_statuses(host, svc).items():
            assert status['NoNewPrivs'] == '1', (svc, pid)
            assert status['Uid'].split()[0] != '0', (svc, pid)  # postgres drops root for good


def test_jobs_completed(host):
    records = ps(host)
    for svc in JOBS:
        assert records[svc]['State'] == 'exited' and records[svc]['ExitCode'] == 0, records[svc]


def test_replay_state_is_prepared(host):
    for svc in PROFILE['replay_state']['services']:
        out = host.check_output('%s exec -T %s stat -c "%%a %%u %%g" %s' % (CLI, svc, PROFILE['replay_state']['path']))
        assert out == '750 %d %d' % (UID, GID), svc


def test_nothing_listens_beyond_loopback(host):
    listening = host.check_output('ss -ltnH').splitlines()
    addresses = [line.split()[3] for line in listening]
    for addr in addresses:
        ip = addr.rsplit(':', 1)[0].strip('[]')
        assert ip.startswith('127.') or ip == '::1', addr
    ports = set(int(a.rsplit(':', 1)[1]) for a in addresses)
    for svc in APPS:
        assert publish_port(svc) in ports, svc
    # Storage is not published: it sits on internal networks only.
    assert 5432 not in ports and 6379 not in ports
    assert get(host, 'sts', '/health')[0] == 200


def test_storage_is_reachable_only_by_its_users(host):
    nets = {}
    for svc in ORDER:
        nets[svc] = set(inspect(host, svc)['NetworkSettings']['Networks'])
    assert nets['postgres'] == {'caracal_data-postgres'}
    assert nets['redis'] == {'caracal_data-redis'}
    assert 'caracal_data-redis' not in nets['web'] and 'caracal_data-postgres' in nets['web']
    for net in ('caracal_data-postgres', 'caracal_data-redis'):
        assert json.loads(host.check_output('docker network inspect %s' % net))[0]['Internal'] is True
    probe = ("python3 -c \"import socket,sys\ntry:\n socket.create_connection((sys.argv[1],int(sys.argv[2])),3)\n"
             "except OSError:\n sys.exit(1)\" %s %s")
    assert host.run('%s exec -T web %s' % (CLI, probe % ('redis', 6379))).rc != 0
    assert host.run('%s exec -T sts %s' % (CLI, probe % ('redis', 6379))).rc == 0


def test_each_container_sees_only_its_own_secrets(host):
    for svc in ORDER:
        secrets = SERVICES[svc]['secrets']
        mounts = [m for m in inspect(host, svc)['Mounts'] if m['Destination'] == PROFILE['secrets_mount']]
        assert len(mounts) == 1, svc
        assert mounts[0]['Source'] == '%s/%s' % (VIEWS, svc) and mounts[0]['RW'] is False, svc
        if svc in JOBS:
            continue
        listed = host.check_output('%s exec -T %s ls -A %s' % (CLI, svc, PROFILE['secrets_mount'])).split()
        assert sorted(listed) == sorted(secrets), svc


def test_no_secret_value_in_inspect_environment_or_project_files(host):
    values = store_values(host)
    texts = {'docker inspect': host.check_output('docker inspect $(%s ps --all --quiet)' % CLI)}
    for svc in LONG_RUNNING:
        texts['%s process environments' % svc] = environments(host, svc)
    for path in (COMPOSE_DIR + '/compose.yaml', COMPOSE_DIR + '/.env', '/etc/systemd/system/' + UNIT):
        texts[path] = host.file(path).content_string
    texts['unit journal'] = host.check_output('journalctl -u %s --no-pager' % UNIT)
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
    before = tree_digest(host, HOME, '/etc/docker', '/etc/systemd/system/' + UNIT)
    rc, out = apply(['compose'], {'caracal_mode': 'dev'})
    assert rc != 0
    assert 'caracal_mode "dev" is refused' in out, out[-3000:]
    assert changed_count(out) == 0
    assert tree_digest(host, HOME, '/etc/docker', '/etc/systemd/system/' + UNIT) == before


def test_rotation_restarts_exactly_the_consumers_in_roll_order(host):
    secret = 'gatewayStsHmacKey'
    expected = roll_order(PROFILE, [secret])
    old = store_values(host)[secret]
    before = started(host, LONG_RUNNING)
    # The same run opens the Control gate (caracal_control_enabled), a file change only.
    rc, out = apply(['secrets', 'compose'], {'caracal_secrets_rotate': [secret], 'caracal_control_enabled': True})
    assert rc == 0, out[-5000:]
    new = store_values(host)[secret]
    assert new != old
    after = started(host, LONG_RUNNING)
    restarted = [s for s in LONG_RUNNING if after[s] != before[s]]
    assert sorted(restarted) == sorted(expected), (restarted, expected)
    assert sorted(restarted, key=lambda s: after[s]) == expected
    for svc in expected:
        assert fingerprints(host, svc)[secret] == fingerprint(new), svc
    assert not host.file(COMPOSE_DIR + '/restart-pending.json').exists
    assert wait_ready(host, timeout=30).rc == 0
    # The gate is a file in a directory the api mounts: no restart needed.
    gate = host.file(CONTROL + '/enabled')
    assert gate.exists and (gate.user, gate.group, gate.mode) == ('root', 'caracal', 0o440)
    assert get(host, 'api', '/control/ping')[0] != 503


def test_a_refusing_service_fails_the_run_naming_it_and_why_then_a_password_rotation_repairs(host):
    view = '%s/audit/auditHmacKey' % VIEWS
    short = 'ab' * 8
    # Tamper with one service's view on the host (a short key), keeping owner and mode.
    host.run_expect([0], "sh -c 'printf \"%%s\\n\" %s > %s'" % (short, view))
    rc, out = apply(['compose'], {'caracal_compose_restart': ['audit'], 'caracal_control_enabled': True})
    assert rc != 0
    assert 'The Caracal stack is not ready: audit' in out, out[-5000:]
    assert 'refusing to start: audit' in out and 'AUDIT_HMAC_KEY' in out, out[-5000:]
    assert short not in out
    assert host.file(COMPOSE_DIR + '/restart-pending.json').exists
    # Restore: the secrets role repairs the view and names audit for a restart (the pending
    # file would restart it anyway). The same run rotates the Postgres password, which the
    # role must set on the database roles before the consumers restart with the new URLs,
    # and closes the Control gate again.
    old_url = store_values(host)['databaseUrl']
    before = started(host, ORDER)
    rc, out = apply(['secrets', 'compose'], {'caracal_secrets_rotate': ['postgresPassword']})
    assert rc == 0, out[-5000:]
    assert wait_ready(host, timeout=60).rc == 0
    values = store_values(host)
    assert values['databaseUrl'] != old_url
    after = started(host, ORDER)
    restarted = sorted((s for s in ORDER if after[s] != before[s]), key=lambda s: after[s])
    # The secrets role names the readers of every file that changed (audit's repaired view,
    # the password and the URLs derived from it) in the contract's roll order; the role
    # restarts them in exactly that order.
    expected = roll_order(PROFILE, ['auditHmacKey', 'postgresPassword', 'databaseUrl', 'authDatabaseUrl'])
    assert restarted == expected, (restarted, expected)
    # Every service is ready again: its /ready check logged in to Postgres with the new URL.
    assert fingerprints(host, 'audit')['auditHmacKey'] == fingerprint(values['auditHmacKey'])
    assert fingerprints(host, 'api')['databaseUrl'] == fingerprint(values['databaseUrl'])
    assert fingerprints(host, 'web')['authDatabaseUrl'] == fingerprint(values['authDatabaseUrl'])
    assert not host.file(COMPOSE_DIR + '/restart-pending.json').exists
    assert not host.file(CONTROL + '/enabled').exists
    assert get(host, 'api', '/control/ping')[0] == 503
    assert not [v for v in values.values() if v in out]


def test_unit_restart_brings_the_stack_back_with_its_state(host):
    marker = '%s/molecule-marker' % PROFILE['replay_state']['path']
    host.run_expect([0], '%s exec -T sts touch %s' % (CLI, marker))
    held = fingerprints(host, 'sts')
    host.run_expect([0], 'systemctl restart %s' % UNIT)
    result = wait_ready(host)
    assert result.rc == 0, result.stdout
    assert host.run('%s exec -T sts test -f %s' % (CLI, marker)).rc == 0
    assert fingerprints(host, 'sts') == held


def test_engine_restart_brings_the_stack_back(host):
    host.run_expect([0], 'systemctl restart docker.service')
    result = wait_ready(host)
    assert result.rc == 0, result.stdout
    # The unit (Requires=docker.service) restarts with the engine; its start returns when
    # `up --wait` has seen every service healthy, a moment after the containers are (bounded).
    active = host.run('timeout %d sh -c "until systemctl is-active --quiet %s; do sleep 1; done"' % (READY_TIMEOUT, UNIT))
    assert active.rc == 0, host.run('systemctl status --no-pager %s' % UNIT).stdout
    assert host.service(UNIT).is_running
    assert get(host, 'web', '/health')[0] == 200


def test_a_container_stopped_behind_the_units_back_is_started_by_the_role(host):
    # The unit (a oneshot that stays active) does not notice a `docker stop`; the role does.
    host.run_expect([0], '%s stop gateway' % CLI)
    assert ps(host)['gateway']['State'] != 'running'
    assert host.service(UNIT).is_running
    before = started(host, [s for s in LONG_RUNNING if s != 'gateway'])
    rc, out = apply(['compose'])
    assert rc == 0, out[-4000:]
    assert changed_count(out) > 0
    result = wait_ready(host, timeout=60)
    assert result.rc == 0, result.stdout
    # Only the stopped service came back; the others kept running.
    assert started(host, list(before)) == before


def test_an_unchanged_host_skips_the_full_run_and_drift_is_repaired(host):
    # Drift: the project file readable by all, a container stopped behind the unit's back.
    check_unchanged_host_skips_and_drift_is_repaired(
        host, apply, 'compose', 'chmod 0644 %s/compose.yaml && %s stop web' % (COMPOSE_DIR, CLI),
        lambda h: h.file(COMPOSE_DIR + '/compose.yaml').mode == 0o640, wait_ready)
