# -*- coding: utf-8 -*-
"""Verify the secrets role on Debian 12 and 13.

The scenario converged both hosts with caracal-secrets-d12 as the source of shared values.
Tests that run playbooks change state; they are ordered so that each starts from the
state the previous one left.
"""

import hashlib
import json
import os
import subprocess
import tempfile

import pytest

from ansible_collections.caracal.hardened.plugins.module_utils._contract import get_profile
from caracal_molecule import changed_count, full_run_skipped, stamp_reasons, role_play, run_playbook, tree_digest

PROFILE = get_profile('2026.07')
HOME = '/opt/caracal'
SECRETS = HOME + '/secrets'
STORE = SECRETS + '/store'
VIEWS = SECRETS + '/services'
ARCHIVE = SECRETS + '/archive'
EVIDENCE = HOME + '/evidence/secrets.jsonl'
SOURCE = 'caracal-secrets-d12'
BASE_VARS = {'caracal_secrets_source_host': SOURCE, 'caracal_secrets_actor': 'molecule'}
GENERATED = [n for n, s in PROFILE['secrets'].items() if s['format'] == 'hex']


def fingerprint(value):
    return hashlib.sha256(b'caracal.hardened/fingerprint/v1\0' + value.encode()).hexdigest()[:16]


def apply(extra=None, **kwargs):
    role_vars = dict(BASE_VARS, **(extra or {}))
    return run_playbook(role_play('caracal.hardened.secrets', role_vars, gather_facts=False), **kwargs)


def store_values(host):
    return {name: host.file('%s/%s' % (STORE, name)).content_string.strip() for name in PROFILE['secrets']}


def evidence(host):
    return [json.loads(line) for line in host.file(EVIDENCE).content_string.splitlines() if line.strip()]


def state(host):
    return json.loads(host.file(ARCHIVE + '/state.json').content_string)


def edit_state(host, code):
    """Run python ``code`` with ``s`` bound to state.json on the host, then save it."""
    script = ("import json,datetime;p='%s/state.json';s=json.load(open(p));%s;"
              "json.dump(s,open(p,'w'))" % (ARCHIVE, code))
    assert host.run('python3 -c "%s"' % script.replace('"', '\\"')).rc == 0


def digests(hosts):
    return {name: tree_digest(h, HOME) for name, h in hosts.items()}


# ------------------------------------------------------------------ layout

def test_account_has_the_contract_ids(host):
    assert host.user('caracal').uid == PROFILE['uid']
    assert host.group('caracal').gid == PROFILE['gid']
    assert host.user('caracal').shell == '/usr/sbin/nologin'


@pytest.mark.parametrize('path,mode,user,group', [
    (HOME, 0o755, 'root', 'root'),
    (SECRETS, 0o711, 'root', 'root'),
    (STORE, 0o700, 'root', 'root'),
    (ARCHIVE, 0o700, 'root', 'root'),
    (HOME + '/evidence', 0o700, 'root', 'root'),
    (EVIDENCE, 0o600, 'root', 'root'),
    (ARCHIVE + '/state.json', 0o600, 'root', 'root'),
])
def test_layout_owner_and_mode(host, path, mode, user, group):
    f = host.file(path)
    assert f.exists and f.mode == mode and f.user == user and f.group == group


def test_store_files_are_root_only(host):
    for name in PROFILE['secrets']:
        f = host.file('%s/%s' % (STORE, name))
        assert (f.mode, f.user, f.group) == (0o600, 'root', 'root'), name


def test_each_service_view_holds_exactly_its_secrets(host):
    listed = sorted(host.file(VIEWS).listdir())
    assert listed == sorted(PROFILE['services'])
    for svc, spec in PROFILE['services'].items():
        d = host.file('%s/%s' % (VIEWS, svc))
        assert (d.mode, d.user, d.group) == (0o750, 'root', 'caracal'), svc
        assert sorted(d.listdir()) == sorted(spec['secrets']), svc
        for name in spec['secrets']:
            f = host.file('%s/%s/%s' % (VIEWS, svc, name))
            assert (f.mode, f.user, f.group) == (0o440, 'root', 'caracal'), (svc, name)
            assert f.content_string == host.file('%s/%s' % (STORE, name)).content_string


def test_nothing_is_world_readable(host):
    out = host.check_output('find %s -perm /o+rwx -not -path %s' % (SECRETS, SECRETS))
    assert out == ''


def test_values_have_the_contract_formats(host):
    values = store_values(host)
    for name in GENERATED:
        spec = PROFILE['secrets'][name]
        assert len(values[name]) == 2 * spec['bytes'], name
        int(values[name], 16)
    assert values['databaseUrl'] == 'postgres://caracal:%s@postgres:5432/caracal' % values['postgresPassword']
    assert values['authDatabaseUrl'] == 'postgres://caracal:%s@postgres:5432/caracal_auth' % values['postgresPassword']
    assert values['redisUrl'] == 'redis://:%s@redis:6379' % values['redisPassword']


def test_hosts_share_identical_values(hosts):
    first, second = [store_values(h) for h in hosts.values()]
    assert first == second
    assert len(set(first.values())) == len(first)


def test_initial_evidence(host):
    records = evidence(host)
    generated = {r['secret'] for r in records}
    assert generated == set(PROFILE['secrets'])
    for record in records:
        assert record['actor'] == 'molecule'
        assert record['ts'].endswith('Z') and record['location'].startswith(STORE)
    values = store_values(host)
    text = host.file(EVIDENCE).content_string
    assert not [n for n, v in values.items() if v in text]


# ------------------------------------------------------------------ runs

def test_check_mode_and_a_second_run_change_nothing(hosts):
    before = digests(hosts)
    rc, out = apply(check=True, diff=True)
    assert rc == 0, out
    assert changed_count(out) == 0, out
    rc, out = apply()
    assert rc == 0, out
    assert changed_count(out) == 0, out
    assert digests(hosts) == before


def test_an_unchanged_account_skips_its_tasks_and_drift_is_repaired(hosts):
    rc, out = apply(verbosity=1)
    assert rc == 0, out
    assert full_run_skipped(out, 'caracal.hardened.secrets'), stamp_reasons(out)
    for h in hosts.values():
        h.run_expect([0], 'chmod 0755 %s && usermod --shell /bin/sh caracal' % SECRETS)
    rc, out = apply(verbosity=1)
    assert rc == 0, out
    assert not full_run_skipped(out, 'caracal.hardened.secrets')
    assert changed_count(out) > 0
    for h in hosts.values():
        assert h.file(SECRETS).mode == 0o711
        assert h.user('caracal').shell == '/usr/sbin/nologin'
    rc, out = apply(verbosity=1)
    assert rc == 0, out
    assert full_run_skipped(out, 'caracal.hardened.secrets'), stamp_reasons(out)
    assert changed_count(out) == 0


def test_rotation_by_name_archives_and_records(hosts):
    old = {n: store_values(h)['auditHmacKey'] for n, h in hosts.items()}
    rc, out = apply({'caracal_secrets_rotate': ['auditHmacKey'], 'caracal_secrets_rotate_reason': 'exposure'})
    assert rc == 0, out
    for name, h in hosts.items():
        new = store_values(h)['auditHmacKey']
        assert new != old[name]
        assert new == store_values(hosts[SOURCE])['auditHmacKey']
        archived = h.file(ARCHIVE + '/auditHmacKey').listdir()
        assert len(archived) == 1 and archived[0].endswith(fingerprint(old[name]))
        f = h.file('%s/auditHmacKey/%s' % (ARCHIVE, archived[0]))
        assert (f.mode, f.user) == (0o600, 'root') and f.content_string.strip() == old[name]
        last = [r for r in evidence(h) if r['secret'] == 'auditHmacKey'][-1]
        assert last['action'] == 'rotated'
        assert last['reason'] == ('exposure' if name == SOURCE else 'source-changed')
        assert last['old_fingerprint'] == fingerprint(old[name])
        assert last['new_fingerprint'] == fingerprint(new)
        assert last['rollback_until']
        for svc in PROFILE['secrets']['auditHmacKey']['consumers']:
            assert h.file('%s/%s/auditHmacKey' % (VIEWS, svc)).content_string.strip() == new


def test_rotation_by_age_only_rotates_what_is_due(hosts):
    src = hosts[SOURCE]
    before = store_values(src)
    edit_state(src, "s['secrets']['streamsHmacKey']['created']='2020-01-01T00:00:00Z'")
    rc, out = apply()
    assert rc == 0, out
    after = store_values(src)
    assert after['streamsHmacKey'] != before['streamsHmacKey']
    assert {n for n in after if after[n] != before[n]} == {'streamsHmacKey'}
    last = [r for r in evidence(src) if r['secret'] == 'streamsHmacKey'][-1]
    assert (last['action'], last['reason']) == ('rotated', 'age')
    rc, out = apply()
    assert rc == 0 and changed_count(out) == 0, out


def test_retirement_after_the_rollback_window(hosts):
    src = hosts[SOURCE]
    assert src.file(ARCHIVE + '/auditHmacKey').listdir()
    edit_state(src, "[e.update(retire_after='2020-01-01T00:00:00Z') for e in s['archive']['auditHmacKey']]")
    rc, out = apply()
    assert rc == 0, out
    assert src.file(ARCHIVE + '/auditHmacKey').listdir() == []
    last = [r for r in evidence(src) if r['secret'] == 'auditHmacKey'][-1]
    assert (last['action'], last['reason']) == ('retired', 'window-expired')


def test_restore_puts_back_the_archived_value(hosts):
    src = hosts[SOURCE]
    before = store_values(src)['caracalCoordinatorToken']
    rc, out = apply({'caracal_secrets_rotate': ['caracalCoordinatorToken']})
    assert rc == 0, out
    assert store_values(src)['caracalCoordinatorToken'] != before
    rc, out = apply({'caracal_secrets_restore': ['caracalCoordinatorToken']})
    assert rc == 0, out
    for h in hosts.values():
        assert store_values(h)['caracalCoordinatorToken'] == before
    last = [r for r in evidence(src) if r['secret'] == 'caracalCoordinatorToken'][-1]
    assert (last['action'], last['reason']) == ('restored', 'rollback')


# Every validation rule is unit-tested (tests/unit); here one case per kind of rule proves
# the role stops before anything on either host changes.
BAD_INPUTS = [
    ({'caracal_secrets_values': {'auditHmacKey': 'ab' * 16}}, ['auditHmacKey', 'min-bytes']),
    ({'caracal_secrets_values': {'streamsHmacKey': 'zz' * 32}}, ['streamsHmacKey', 'hex']),
    ({'caracal_secrets_values': {'zoneKek': bytes(range(32)).hex()}}, ['zoneKek', 'weak-ascending']),
    ({'caracal_secrets_values': {'zoneKek': 'a1' + os.urandom(30).hex()}}, ['zoneKek', 'min-bytes']),
    # The collection's own weak-value rules for supplied values (Caracal checks only the KEK).
    ({'caracal_secrets_values': {'auditHmacKey': '00' * 32}}, ['auditHmacKey', 'weak-all-zeros']),
    ({'caracal_secrets_values': {'caracalAdminToken': 'deadbeef' * 8}}, ['caracalAdminToken', 'weak-pattern']),
    ({'caracal_secrets_rotate': ['zoneKek']}, ['zoneKek', 'destructive']),
    ({'caracal_secrets_services': ['sts', 'frontend']}, ['unknown services', 'frontend']),
]


@pytest.mark.parametrize('extra,expected', BAD_INPUTS, ids=[e[1][-1] + str(i) for i, e in enumerate(BAD_INPUTS)])
def test_bad_input_fails_and_leaves_the_hosts_byte_identical(hosts, extra, expected):
    before = digests(hosts)
    rc, out = apply(extra)
    assert rc != 0, out
    for word in expected:
        assert word in out, (word, out[-3000:])
    assert digests(hosts) == before


def test_missing_kek_on_a_host_with_history_is_never_regenerated(hosts):
    src = hosts[SOURCE]
    saved = src.file(STORE + '/zoneKek').content_string
    assert src.run('mv %s/zoneKek /root/zoneKek.saved' % STORE).rc == 0
    try:
        before = digests(hosts)
        rc, out = apply()
        assert rc != 0, out
        assert 'restore' in out.lower() and 'backup' in out.lower(), out[-3000:]
        assert digests(hosts) == before
        assert not src.file(STORE + '/zoneKek').exists
    finally:
        assert src.run('mv /root/zoneKek.saved %s/zoneKek' % STORE).rc == 0
    assert src.file(STORE + '/zoneKek').content_string == saved
    rc, out = apply()
    assert rc == 0 and changed_count(out) == 0, out


def test_values_file_from_ansible_vault(hosts):
    value = os.urandom(32).hex()
    with tempfile.TemporaryDirectory() as tmp:
        pw, vals = os.path.join(tmp, 'pw'), os.path.join(tmp, 'values.yml')
        with open(pw, 'w') as fh:
            fh.write(os.urandom(16).hex())
        with open(vals, 'w') as fh:
            fh.write('caracalAuthSecret: "%s"\n' % value)
        subprocess.run(['ansible-vault', 'encrypt', '--vault-password-file', pw, vals], check=True,
                       stdout=subprocess.DEVNULL)
        with open(vals) as fh:
            assert value not in fh.read()
        os.environ['ANSIBLE_VAULT_PASSWORD_FILE'] = pw
        try:
            rc, out = apply({'caracal_secrets_values_file': vals}, verbosity=3)
        finally:
            del os.environ['ANSIBLE_VAULT_PASSWORD_FILE']
    assert rc == 0, out
    assert value not in out
    for h in hosts.values():
        assert store_values(h)['caracalAuthSecret'] == value


def test_no_secret_value_in_verbose_output(hosts):
    """A -vvv run that rotates and receives values prints none of them."""
    old = {n: store_values(h) for n, h in hosts.items()}
    supplied = os.urandom(32).hex()
    rc, out = apply({'caracal_secrets_rotate': ['metricsBearer', 'redisPassword'],
                     'caracal_secrets_values': {'gatewayStsHmacKey': supplied}},
                    verbosity=3, diff=True)
    assert rc == 0, out
    new = {n: store_values(h) for n, h in hosts.items()}
    assert new[SOURCE]['gatewayStsHmacKey'] == supplied
    values = {v for d in list(old.values()) + list(new.values()) for v in d.values()}
    leaked = [v for v in values if v in out]
    assert leaked == []
    # the evidence log and the state file hold fingerprints only
    for h in hosts.values():
        text = h.file(EVIDENCE).content_string + h.file(ARCHIVE + '/state.json').content_string
        assert [v for v in values if v in text] == []


def test_runtime_profiles_are_owner_only(hosts):
    secret = os.urandom(32).hex()
    rc, out = apply({'caracal_secrets_runtime_profiles': [
        {'name': 'workload-a', 'path': '/etc/caracal/workload-a', 'client_secret': secret,
         'settings': {'sts_url': 'https://sts.example.test'}}]}, verbosity=2)
    assert rc == 0, out
    assert secret not in out
    for h in hosts.values():
        toml = h.file('/etc/caracal/workload-a/caracal.toml')
        cs = h.file('/etc/caracal/workload-a/client_secret')
        assert (toml.mode, cs.mode, h.file('/etc/caracal/workload-a').mode) == (0o600, 0o600, 0o700)
        assert secret not in toml.content_string
        assert 'client_secret_file = "/etc/caracal/workload-a/client_secret"' in toml.content_string
        assert cs.content_string.strip() == secret
