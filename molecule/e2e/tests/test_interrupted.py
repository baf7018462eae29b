# -*- coding: utf-8 -*-
"""End to end: rotations killed on purpose, then finished (or rolled back) by the next plain run.

Each fixture starts a playbook, SIGKILLs it (the whole process group: a controller reboot, a
cancelled AWX job) when its output reaches a chosen step, waits until the modules it left
running on the hosts have ended, optionally restarts the engine or the host, then runs a plain
``deploy.yml`` or ``rotate.yml`` and checks that every host converged:

- every service is ready and holds the values of the store; verification passes (it checks
  that the datastores accept every stored credential and that no journal is open);
- the rotation journal is closed, the history says how it ended;
- ``state.json``, the store, the archive and the evidence agree; the old value is archived;
- no secret value shows in any output.

The kill points: right after the secrets role (the issue's latent outage: new URL files, old
Postgres password), the same followed by a host restart (the stack boots with the new files),
during the datastore credential sync, and between two consumer restarts followed by an
engine restart. Runs after test_e2e.py (pytest takes the files in name order).
"""

import json
import os
import re
import signal
import subprocess
import tempfile
import time

import pytest
import yaml

from ansible_collections.caracal.hardened.plugins.module_utils._contract import roll_order
from caracal_molecule import inventory
from test_e2e import (
    APPS, ARCHIVE, HOSTS, HOSTVARS, PLAYBOOKS, PROFILE, SERVICES, all_values, consumers, leaked,
    observe, on_host, playbook, report,
)

JOURNAL = ARCHIVE + '/journal.json'
HISTORY = ARCHIVE + '/journals.jsonl'
BEFORE_BACKEND = r'^TASK \[Roll the consumers through the backend'


def run_killed(name, pattern, extra=None, limit=None, timeout=1200):
    """Run playbooks/<name>.yml and SIGKILL its process group when a line of its output matches
    ``pattern``. Returns (killed, output)."""
    with tempfile.TemporaryDirectory() as tmp:
        book = os.path.join(tmp, 'play.yml')
        with open(book, 'w') as handle:
            yaml.safe_dump([{'ansible.builtin.import_playbook': os.path.join(PLAYBOOKS, name + '.yml')}], handle)
        argv = ['ansible-playbook', '-i', inventory(), book]
        if extra:
            varfile = os.path.join(tmp, 'vars.json')
            with open(os.open(varfile, os.O_WRONLY | os.O_CREAT, 0o600), 'w') as handle:
                json.dump(extra, handle)
            argv += ['-e', '@' + varfile]
        if limit:
            argv += ['--limit', limit]
        env = dict(os.environ, ANSIBLE_NOCOLOR='true', ANSIBLE_FORCE_COLOR='false', PYTHONUNBUFFERED='1')
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        lines, killed, deadline = [], False, time.time() + timeout
        for raw in proc.stdout:
            line = raw.decode('utf-8', 'replace')
            lines.append(line)
            if re.search(pattern, line):
                os.killpg(proc.pid, signal.SIGKILL)
                killed = True
                break
            if time.time() > deadline:
                break
        if not killed:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.stdout.close()
        proc.wait()
        return killed, ''.join(lines)


def settle(hosts):
    """Wait (bounded) until no module the killed run started is still running on the hosts."""
    for host in hosts:
        for dummy in range(120):
            if on_host(host, 'pgrep -f AnsiballZ_ >/dev/null && echo busy || echo idle').strip() == 'idle':
                break
            time.sleep(1)
        else:
            pytest.fail('modules still running on %s two minutes after the kill' % host)


def host_files(name):
    """The store's fingerprints, state.json, the archive listing, the journal and its history."""
    script = r'''
import hashlib, json, os
archive, store = %r, %r
def fp(value):
    return hashlib.sha256(b'caracal.hardened/fingerprint/v1\0' + value.strip().encode()).hexdigest()[:16]
out = {'store': dict((n, fp(open(os.path.join(store, n)).read())) for n in os.listdir(store)),
       'state': json.load(open(os.path.join(archive, 'state.json'))),
       'archived': dict((d, sorted(os.listdir(os.path.join(archive, d)))) for d in os.listdir(archive)
                        if os.path.isdir(os.path.join(archive, d))),
       'journal': json.load(open(%r)) if os.path.exists(%r) else None,
       'history': [json.loads(l) for l in open(%r)] if os.path.exists(%r) else []}
print(json.dumps(out))
''' % (ARCHIVE, ARCHIVE.replace('archive', 'store'), JOURNAL, JOURNAL, HISTORY, HISTORY)
    return json.loads(on_host(name, script, interpreter='python3'))


def restart_service(name, service):
    """Restart one service behind the deployment's back (as a crash or an operator would)."""
    if HOSTVARS[name]['caracal_backend'] == 'compose':
        on_host(name, 'docker restart $(docker ps -q --filter label=com.docker.compose.service=%s) >/dev/null' % service)
    else:
        on_host(name, 'systemctl restart caracal-%s.service' % service)
    for dummy in range(60):
        if observe(name)['ready'].get(service) == 200:
            return 200
        time.sleep(2)
    return observe(name)['ready'].get(service)


def assert_converged(name, before, rotated, outcome='completed'):
    """Everything a finished rotation leaves on ``name`` (``before``: host_files() before the kill)."""
    files = host_files(name)
    assert files['journal'] is None, files['journal']
    closed = files['history'][len(before['history']):]
    assert closed and closed[-1]['outcome'] == outcome, closed
    for secret, fp in files['store'].items():
        assert files['state']['secrets'][secret]['fingerprint'] == fp, secret
    for secret in rotated:
        old = before['store'][secret]
        if outcome == 'completed':
            assert files['store'][secret] != old, secret
            assert old in [e['fingerprint'] for e in files['state']['archive'][secret]], secret
        else:
            assert files['store'][secret] == old, secret
    for secret, entries in files['state']['archive'].items():
        assert sorted(e['file'] for e in entries) == files['archived'].get(secret, []), secret
    seen = observe(name)
    assert seen['ready'] == dict((s, 200) for s in APPS), seen['ready']
    for svc in consumers(rotated):
        for secret in rotated:
            if secret in SERVICES[svc]['secrets']:
                assert seen['fingerprints'][svc][secret] == files['store'][secret], (svc, secret)
    result = report(name)
    assert result['passed'] is True, [c['id'] for c in result['checks'] if c['status'] == 'fail']
    return files


def interrupted(playbook_name, pattern, extra, resume='rotate', resume_extra=None, between=None, limit=None):
    """Kill a run at ``pattern``, run ``between(hosts)``, resume with a plain run; what a test needs."""
    hosts = [limit] if limit else HOSTS
    before = dict((h, host_files(h)) for h in hosts)
    values_before = all_values()
    killed, out_killed = run_killed(playbook_name, pattern, extra=extra, limit=limit)
    settle(hosts)
    middle = dict((h, host_files(h)) for h in hosts)
    if between:
        between(hosts)
    rc, out, counts = playbook(resume, extra=resume_extra, limit=limit)
    return {'killed': killed, 'out_killed': out_killed, 'rc': rc, 'out': out, 'recap': counts, 'hosts': hosts,
            'before': before, 'middle': middle, 'values': [values_before, all_values()]}


def assert_run(run, rotated, outcome='completed'):
    assert run['killed'], run['out_killed'][-3000:]
    assert run['rc'] == 0, run['out'][-6000:]
    for name in run['hosts']:
        # The kill left work owed (the journal), or the test proves nothing.
        assert run['middle'][name]['journal'] is not None, name
        assert_converged(name, run['before'][name], rotated, outcome)
    assert leaked(run['out_killed'] + run['out'], *run['values']) == []


# ------------------------------------------------------------------ killed right after the secrets role

@pytest.fixture(scope='module')
def after_secrets():
    run = interrupted('rotate', BEFORE_BACKEND, {'caracal_secrets_rotate': ['postgresPassword']})
    run['api_restart'] = dict((h, restart_service(h, 'api')) for h in run['hosts'])
    return run


def test_a_rotation_killed_after_the_secrets_role_is_finished_by_the_next_run(after_secrets):
    assert_run(after_secrets, ['postgresPassword'])
    for name in after_secrets['hosts']:
        journal = after_secrets['middle'][name]['journal']
        assert journal['sync'] == ['postgresPassword'] and 'postgres' in journal['restart'], journal


def test_postgres_accepts_the_new_password_after_the_resumed_run(after_secrets):
    # The latent outage: the next restart of api must find Postgres on the new password.
    assert after_secrets['api_restart'] == dict((h, 200) for h in after_secrets['hosts'])
    # ... and the resumed run did the owed work (the first release reported changed=0 here).
    assert all(after_secrets['recap'][h]['changed'] > 0 for h in after_secrets['hosts']), after_secrets['recap']


# ------------------------------------------------------------------ ... then the host restarted

def restart_hosts(hosts):
    for host in hosts:
        subprocess.run(['docker', 'restart', '--time', '30', host], check=True, stdout=subprocess.PIPE)
    for host in hosts:
        for dummy in range(90):
            state = subprocess.run(['docker', 'exec', host, 'systemctl', 'is-system-running'],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
            if state.stdout.decode().strip() in ('running', 'degraded'):
                break
            time.sleep(2)
        # As a real host does at boot (systemd's credentials mounts; see test_e2e.SSH_SETUP).
        on_host(host, "grep -q ' /run .*shared:' /proc/self/mountinfo || mount --make-rshared /run")


# The fixtures below do not depend on each other: pytest runs the tests in file order, each
# fixture set up once (a dependency on a parametrized fixture would set it up once per param).
# Podman hosts only: on the Compose test host, Redis does not become healthy again after the
# test host's container is restarted in this sequence (seen in CI twice; it did not happen when
# the test ran alone; docs/status.md), which would leave that host broken for the tests after it.
RESTARTED = [h for h in HOSTS if HOSTVARS[h]['caracal_backend'] == 'quadlet']


@pytest.fixture(scope='module')
def host_restarted():
    if not RESTARTED:
        pytest.skip('no Podman host in the inventory')
    return interrupted('rotate', BEFORE_BACKEND, {'caracal_secrets_rotate': ['postgresPassword']},
                       resume='deploy', between=restart_hosts, limit=RESTARTED[0])


def test_a_host_restarted_mid_rotation_comes_back_on_the_new_values(host_restarted):
    assert_run(host_restarted, ['postgresPassword'])


# ------------------------------------------------------------------ killed during the credential sync

@pytest.fixture(scope='module', params=HOSTS)
def during_sync(request):
    role = 'caracal.hardened.%s' % HOSTVARS[request.param]['caracal_backend']
    return interrupted('rotate', r'^TASK \[%s : Check \(and repair\) the datastore credentials' % re.escape(role),
                       {'caracal_secrets_rotate': ['redisPassword']}, resume='deploy', limit=request.param)


def test_a_rotation_killed_during_the_credential_sync_converges(during_sync):
    assert_run(during_sync, ['redisPassword'])


# ------------------------------------------------------------------ between two restarts, then the engine

def restart_engines(hosts):
    for host in hosts:
        if HOSTVARS[host]['caracal_backend'] == 'compose':
            on_host(host, 'systemctl restart docker.service')
        else:
            # Podman has no daemon: its analogue is every container of the stack going down at once.
            on_host(host, 'systemctl stop caracal.target "caracal-*.service"')
    for host in hosts:
        if HOSTVARS[host]['caracal_backend'] == 'compose':
            # The unit restarts with the engine (Requires=): let it settle, bounded.
            on_host(host, 'for i in $(seq 90); do systemctl is-active --quiet caracal-compose.service && break; sleep 2; done')


@pytest.fixture(scope='module', params=HOSTS)
def between_restarts(request):
    streams = 'streamsHmacKey'
    order = [s for s in roll_order(PROFILE, [streams]) if s in APPS]
    assert len(order) >= 2
    return interrupted('rotate', r'^TASK \[.*Restart the service, .* \| %s\]' % re.escape(order[1]),
                       {'caracal_secrets_rotate': [streams]}, resume='rotate', between=restart_engines,
                       limit=request.param)


def test_a_rotation_killed_between_two_restarts_then_the_engine_restarted_converges(between_restarts):
    assert_run(between_restarts, ['streamsHmacKey'])
    name = between_restarts['hosts'][0]
    order = [s for s in roll_order(PROFILE, ['streamsHmacKey']) if s in APPS]
    assert between_restarts['middle'][name]['journal']['restart'] == order
