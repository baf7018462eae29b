# -*- coding: utf-8 -*-
"""The shared steps of the deployment backends (roles/backend_common), through the scenario's
minimal backend (roles/fake_backend): converge and molecule's idempotence step ran it twice.
Each test runs it again with one change and checks what the shared steps did. pytest runs
them in file order; each leaves the host as the next expects."""

import os

from caracal_molecule import changed_count, run_playbook

ROLE = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', 'roles', 'fake_backend'))
COMMON = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', 'roles', 'backend_common'))
RUNS = '/root/fake-backend-full-runs'
GATE = '/opt/fake-backend/control/enabled'
STAMP = '/var/lib/caracal-hardened/stamps/fake_backend.json'


def apply(**extra):
    plays = [{'name': 'Apply the fake backend', 'hosts': 'all', 'gather_facts': False, 'roles': [ROLE]}]
    return run_playbook(plays, extra_vars=extra or None)


def full_runs(host):
    return len(host.file(RUNS).content_string.splitlines()) if host.file(RUNS).exists else 0


def test_the_no_op_run_skipped_the_full_run(host):
    # converge ran it in full; the idempotence run matched the stamp and skipped it
    assert full_runs(host) == 1
    assert host.file(STAMP).exists
    gate = host.file(GATE)
    assert gate.exists and gate.mode == 0o440 and gate.gid == 65532
    assert gate.content_string == 'enabled by fake_backend (caracal_control_enabled)\n'


def test_drift_of_a_watched_file_makes_a_full_run_that_repairs_it(host):
    before = full_runs(host)
    host.run_test('chmod 0644 %s' % GATE)
    rc, out = apply()
    assert rc == 0, out[-3000:]
    assert full_runs(host) == before + 1 and host.file(GATE).mode == 0o440
    rc, out = apply()
    assert rc == 0 and changed_count(out) == 0 and full_runs(host) == before + 1, out[-3000:]


def test_new_inputs_make_a_full_run(host):
    before = full_runs(host)
    rc, out = apply(fake_input='second')
    assert rc == 0, out[-3000:]
    assert full_runs(host) == before + 1


def test_the_control_gate_closes_and_opens(host):
    rc, out = apply(fake_control_enabled=False)
    assert rc == 0, out[-3000:]
    assert not host.file(GATE).exists
    rc, out = apply()
    assert rc == 0, out[-3000:]
    assert host.file(GATE).mode == 0o440


def test_a_missing_secret_view_fails_before_any_change(host):
    before = full_runs(host)
    stack = {'services': [{'name': 'api', 'secrets': {'source': '/opt/fake-backend/views/api'}},
                          {'name': 'redis', 'secrets': {'source': '/opt/fake-backend/views/redis'}}],
             'restartable': ['api'],
             'control': {'dir': '/opt/fake-backend/control', 'gate_file': 'enabled', 'services': [], 'enabled': False}}
    rc, out = apply(fake_stack=stack, fake_input='third')
    assert rc != 0
    assert 'The secret views of redis are missing under /opt/fake-backend/views' in ' '.join(out.split())
    assert full_runs(host) == before and host.file(GATE).exists


def test_an_unknown_restart_name_fails_naming_the_variable(host):
    before = full_runs(host)
    rc, out = apply(fake_restart=['ghost'], fake_input='fourth')
    assert rc != 0
    assert 'fake_restart names services that do not run here: ghost (this host runs api, web)' in ' '.join(out.split())
    assert full_runs(host) == before


def test_the_shared_role_refuses_to_run_on_its_own():
    rc, out = run_playbook([{'name': 'Apply backend_common', 'hosts': 'all', 'gather_facts': False,
                             'roles': [COMMON]}])
    assert rc != 0 and 'holds the steps the backends share' in out
