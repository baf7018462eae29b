# -*- coding: utf-8 -*-
"""Verify the verify role on a live deployment (secrets, compose, tls, firewall on Debian 13).

The first tests run the role on the converged host and expect a passing report. The later
ones each seed one defect live (a world-readable secret, CARACAL_MODE=dev through a compose
override, a container with an extra capability, an open egress rule), expect the right
check to fail with the right finding and the play to fail (fail closed), then undo the
defect. pytest runs them in file order; each leaves the host as it found it.
"""

import json
import os
import re
import shutil
import tempfile

import pytest
import yaml

from caracal_molecule import run_playbook

HOME = '/opt/caracal'
STORE = HOME + '/secrets/store'
VIEWS = HOME + '/secrets/services'
COMPOSE_DIR = HOME + '/compose'
CLI = ('docker compose --project-directory {d} --file {d}/compose.yaml --env-file {d}/.env'.format(d=COMPOSE_DIR))
OVERRIDE = '/root/verify-override.yaml'
KEK_BACKUP = '/var/backups/caracal-kek'
SCENARIO_VARS = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', 'vars', 'main.yml'))
ROLE_TASKS = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', 'roles', 'verify', 'tasks',
                                          'main.yml'))
# What the role runs without a module on the host.
CONTROLLER_ACTIONS = {'ansible.builtin.assert', 'ansible.builtin.set_fact', 'ansible.builtin.debug',
                      'ansible.builtin.include_tasks', 'ansible.builtin.fail', 'caracal.hardened.report_files'}
READY_TIMEOUT = 240

# Checks that cannot pass on this host by design: no runtime profile is configured.
NOT_APPLICABLE = {'secrets.runtime_profiles'}


def verify(check=False, extra=None):
    """Run the verify role; returns (rc, output, JSON report, Markdown report)."""
    report_dir = tempfile.mkdtemp(prefix='caracal-verify-report-')
    try:
        plays = [{'name': 'verify scenario', 'hosts': 'all', 'gather_facts': False,
                  'vars_files': [SCENARIO_VARS], 'roles': [{'role': 'caracal.hardened.verify'}]}]
        variables = dict({'caracal_verify_report_dir': report_dir}, **(extra or {}))
        rc, out = run_playbook(plays, extra_vars=variables, check=check)
        with open(os.path.join(report_dir, 'caracal-verify.json')) as handle:
            report = json.load(handle)
        with open(os.path.join(report_dir, 'caracal-verify.md')) as handle:
            markdown = handle.read()
        return rc, out, report, markdown
    finally:
        shutil.rmtree(report_dir, ignore_errors=True)


def statuses(report):
    return dict((c['id'], c['status']) for c in report['checks'])


def record(report, check_id):
    return [c for c in report['checks'] if c['id'] == check_id][0]


def failed(report):
    return sorted(c['id'] for c in report['checks'] if c['status'] == 'fail')


def sh(host, script):
    cmd = host.run("bash -c '%s'" % script.replace("'", "'\\''"))
    assert cmd.rc == 0, cmd.stdout + cmd.stderr
    return cmd.stdout


def wait_healthy(host, service):
    sh(host, 'end=$(( $(date +%%s) + %d )); c=caracal-%s-1; '
             'until [ "$(docker inspect -f "{{.State.Health.Status}}" $c 2>/dev/null)" = healthy ]; do '
             '  [ "$(date +%%s)" -lt "$end" ] || { docker logs --tail 20 $c; exit 1; }; sleep 2; done'
       % (READY_TIMEOUT, service))


def override(host, service, body):
    """Recreate ``service`` with a compose override (what an operator's hand edit would do)."""
    sh(host, "cat > %s <<'EOF'\nservices:\n  %s:\n%s\nEOF\n%s --file %s up -d --no-deps %s"
       % (OVERRIDE, service, body, CLI, OVERRIDE, service))
    wait_healthy(host, service)


def restore(host, service):
    """Recreate ``service`` from the project the compose role rendered."""
    sh(host, 'rm -f %s; %s up -d --no-deps %s' % (OVERRIDE, CLI, service))
    wait_healthy(host, service)


def store_values(host):
    out = sh(host, 'for f in %s/*; do printf "%%s\\n" "$(cat "$f")"; done' % STORE)
    return [line.strip() for line in out.splitlines() if line.strip()]


@pytest.fixture(scope='module')
def baseline(host):
    """The passing report of the converged host, with the KEK backed up (a root-only copy)."""
    sh(host, 'install -d -m 0700 %s && install -m 0600 %s/zoneKek %s/zoneKek' % (KEK_BACKUP, STORE, KEK_BACKUP))
    for service in ('api', 'audit', 'web'):
        wait_healthy(host, service)
    rc, out, report, markdown = verify()
    return {'rc': rc, 'out': out, 'report': report, 'markdown': markdown}


# ------------------------------------------------------------------ the converged host passes

def test_converged_host_passes(baseline):
    report = baseline['report']
    assert baseline['rc'] == 0, baseline['out'][-4000:]
    assert report['passed'] is True
    bad = dict((c['id'], c['findings']) for c in report['checks'] if c['status'] == 'fail')
    assert not bad, bad
    assert set(i for i, s in statuses(report).items() if s == 'not_applicable') == NOT_APPLICABLE
    assert report['engines'] == ['docker']
    assert '| Verdict | **PASS** |' in baseline['markdown']


def test_one_module_call_verifies_the_host(baseline):
    with open(ROLE_TASKS) as handle:
        tasks = yaml.safe_load(handle)
    on_host = [(t['name'], [k for k in t if '.' in k]) for t in tasks if not CONTROLLER_ACTIONS & set(t)]
    assert [actions for _name, actions in on_host] == [['caracal.hardened.caracal_verify_info']]
    ran = re.findall(r'^TASK \[caracal\.hardened\.verify : (.+?)\]', baseline['out'], re.M)
    assert [name for name in ran if name == on_host[0][0]] == [on_host[0][0]]
    assert len(ran) == len(set(ran))


def test_every_checklist_row_is_in_the_report(baseline):
    rows = baseline['report']['checklist']
    assert len(rows) == 26
    assert sorted(r['row'] for r in rows if r['status'] == 'not_applicable') == [
        'Resource servers', 'Runtime CLI', 'Tamper checks']
    assert all(r['status'] == 'pass' for r in rows if r['status'] != 'not_applicable')


def test_live_measurements_are_real(baseline):
    report = baseline['report']
    probes = record(report, 'tls.protocols')['evidence']['probes']
    assert probes['TLSv1']['offered'] is True and probes['TLSv1']['accepted'] is False
    assert probes['TLSv1.2']['accepted'] is True
    cert = record(report, 'tls.certificate')['evidence']
    assert 'console.caracal.test' in cert['dns_names'] and cert['chain']['verified'] is True
    metrics = record(report, 'metrics.bearer')['evidence']['endpoints']
    assert sorted(e['status'] for e in metrics.values()) == [401] * 5
    assert sorted(e['current_bearer'] for e in metrics.values()) == [200] * 5
    ready = record(report, 'health.ready')['evidence']['services']
    assert ready['dbMigrate'] == 'completed' and ready['postgres']['health'] == 'healthy'
    assert sorted(s for s, f in ready.items() if isinstance(f, dict) and f.get('ready') == 200) == [
        'api', 'audit', 'coordinator', 'gateway', 'sts', 'web']
    issuers = record(report, 'health.jwks')['evidence']['issuers']
    assert list(issuers) == ['caracal-sts-1'] and issuers['caracal-sts-1']['status'] == 200
    assert len(issuers['caracal-sts-1']['keys']) == 1
    logins = record(report, 'health.credentials')['evidence']['logins']
    assert len(logins) >= 10 and all(item['accepted'] for item in logins)
    assert set(item['server'] for item in logins) == {'postgres', 'redis'}
    audit = record(report, 'audit.streams')['evidence']
    assert audit['types'] == {'caracal.audit.events': 'stream', 'caracal.audit.events.dlq': 'stream'}
    users = record(report, 'containers.non_root')['evidence']['users']
    assert users['caracal-api-1']['process_uid'] == 65532
    assert record(report, 'keys.kek_backup')['evidence']['kek']['zoneKek']['plain_copies'] == [KEK_BACKUP + '/zoneKek']


def test_no_secret_value_in_the_report_or_the_output(host, baseline):
    text = json.dumps(baseline['report']) + baseline['markdown'] + baseline['out']
    values = store_values(host)
    assert len(values) >= 13
    for value in values:
        assert value not in text


def test_check_mode_gives_the_same_report(baseline):
    rc, out, report, _md = verify(check=True)
    assert rc == 0, out[-3000:]
    assert statuses(report) == statuses(baseline['report'])


# ------------------------------------------------------------------ seeded defects fail the right check

def test_world_readable_secret_fails(host, baseline):
    path = '%s/api/zoneKek' % VIEWS
    sh(host, 'chmod o+r %s' % path)
    try:
        rc, out, report, markdown = verify()
    finally:
        sh(host, 'chmod o-r %s' % path)
    assert rc != 0 and "fails Caracal's hardening checklists: secrets.permissions" in out
    assert failed(report) == ['secrets.permissions']
    findings = record(report, 'secrets.permissions')['findings']
    assert findings == ['%s: world-readable (mode 0444 0:65532, expected 0440 root:65532)' % path]
    assert 'world-readable' in markdown and report['passed'] is False


def test_dev_mode_through_a_compose_override_fails(host, baseline):
    override(host, 'api', '    environment:\n      CARACAL_MODE: dev')
    try:
        rc, out, report, _md = verify()
    finally:
        restore(host, 'api')
    assert rc != 0
    assert record(report, 'mode.caracal_mode')['findings'] == [
        'api (caracal-api-1): CARACAL_MODE=dev (only rc or stable are acceptable outside a laptop)']
    # a dev-mode service also serves its metrics without the bearer
    assert set(failed(report)) <= {'mode.caracal_mode', 'metrics.bearer'}
    assert 'mode.caracal_mode' in failed(report)


def test_container_with_an_extra_capability_fails(host, baseline):
    override(host, 'audit', '    cap_add: [NET_ADMIN]')
    try:
        rc, out, report, _md = verify()
    finally:
        restore(host, 'audit')
    assert rc != 0
    assert failed(report) == ['containers.capabilities']
    assert record(report, 'containers.capabilities')['findings'] == [
        'audit (caracal-audit-1): adds NET_ADMIN beyond the contract (allowed: none)']


def test_open_egress_fails(host, baseline):
    sh(host, 'nft insert rule inet caracal_filter output counter accept comment \\"verify-scenario\\"')
    try:
        rc, out, report, _md = verify()
    finally:
        sh(host, 'h=$(nft -a list chain inet caracal_filter output | sed -n "s/.*verify-scenario.*# handle //p"); '
                 'nft delete rule inet caracal_filter output handle $h')
    assert rc != 0
    assert record(report, 'network.default_deny')['findings'] == [
        'host egress is open: an unconditional accept rule in chain output']
    assert failed(report) == ['network.blocked_ranges', 'network.default_deny']


def test_a_wrong_database_password_in_a_view_fails_naming_the_service(host, baseline):
    path = '%s/api/databaseUrl' % VIEWS
    sh(host, 'cp -p {p} /root/databaseUrl.keep && sed -i "s#^\\(postgres://[^:]*:\\)[^@]*@#\\1wrongpassword@#" {p}'
             .format(p=path))
    try:
        rc, out, report, _md = verify()
    finally:
        sh(host, 'cp -p /root/databaseUrl.keep {p} && rm -f /root/databaseUrl.keep'.format(p=path))
    assert rc != 0
    findings = record(report, 'health.credentials')['findings']
    assert len(findings) == 1 and findings[0].startswith(
        'api: postgres refuses the databaseUrl it holds as caracal (refused'), findings
    # the view also no longer matches the store
    assert failed(report) == ['health.credentials', 'keys.present']


def test_a_stopped_service_fails_naming_it(host, baseline):
    sh(host, 'docker stop caracal-coordinator-1 >/dev/null')
    try:
        rc, out, report, _md = verify()
    finally:
        sh(host, 'docker start caracal-coordinator-1 >/dev/null')
        wait_healthy(host, 'coordinator')
    assert rc != 0 and 'health.ready' in failed(report)
    findings = record(report, 'health.ready')['findings']
    assert 'coordinator is not running (caracal-coordinator-1 exited)' in findings, findings


def test_warn_only_reports_without_failing(host, baseline):
    sh(host, 'chmod o+r %s/web/caracalAuthSecret' % VIEWS)
    try:
        rc, out, report, markdown = verify(extra={'caracal_verify_warn_only': True})
    finally:
        sh(host, 'chmod o-r %s/web/caracalAuthSecret' % VIEWS)
    assert rc == 0 and 'WARNING:' in out
    assert failed(report) == ['secrets.permissions'] and '**FAIL** (warn only)' in markdown


def test_the_host_passes_again(baseline):
    rc, out, report, _md = verify()
    assert rc == 0, out[-3000:]
    assert statuses(report) == statuses(baseline['report'])
