# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Secret delivery and key checks on a real layout in a temporary directory.

The layout is written as secret_files writes it (as root, with real owners); each test
seeds one defect and expects the right check to fail with the right finding, and no
finding or evidence to hold a secret value.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import os

import pytest

from ansible_collections.caracal.hardened.plugins.module_utils import _checks_secrets as sc
from ansible_collections.caracal.hardened.plugins.module_utils._checks import FAIL, NOT_APPLICABLE, PASS
from ansible_collections.caracal.hardened.plugins.module_utils._checks_host import (
    backup_files,
    runtime_profiles,
    secrets_snapshot,
)
from ansible_collections.caracal.hardened.plugins.module_utils._secrets import derive, fingerprint, format_ts

from test_checks_fixtures import GID, NOW, PROFILE, VIEWS, by_service, containers, layout, stack

IS_ROOT = os.geteuid() == 0
SERVICES, NAMES = sc.scope(PROFILE)


@pytest.fixture
def lay(tmp_path):
    return layout(tmp_path)


def snap(lay, services=SERVICES, names=NAMES):
    p = lay['paths']
    return secrets_snapshot(PROFILE, p['store_path'], p['views_path'], p['archive_path'], p['evidence_path'],
                            services, names)


def set_value(lay, name, value, views=True, state=True):
    """Replace a secret everywhere secret_files would (store, views, state, evidence)."""
    p = lay['paths']
    with open(os.path.join(p['store_path'], name), 'w') as handle:
        handle.write(value)
    if views:
        for svc, spec in PROFILE['services'].items():
            if name in spec['secrets']:
                with open(os.path.join(p['views_path'], svc, name), 'w') as handle:
                    handle.write(value)
    if state:
        path = os.path.join(p['archive_path'], 'state.json')
        data = json.load(open(path))
        data['secrets'][name]['fingerprint'] = fingerprint(value)
        with open(path, 'w') as handle:
            json.dump(data, handle)
        with open(p['evidence_path'], 'a') as handle:
            handle.write(json.dumps({'ts': format_ts(NOW), 'actor': 'pytest', 'action': 'adopted', 'reason': 'initial',
                                     'secret': name, 'profile': '2026.07', 'old_fingerprint': None,
                                     'new_fingerprint': fingerprint(value), 'rollback_until': None,
                                     'location': p['store_path']}) + '\n')
    lay['values'][name] = value


def all_records(lay, ctrs=None):
    s = snap(lay)
    ctrs = containers() if ctrs is None else ctrs
    return [
        sc.check_permissions(s, GID, 0o440, ctrs),
        sc.check_views(PROFILE, s, SERVICES, ctrs),
        sc.check_present(PROFILE, s, SERVICES, NAMES, ctrs),
        sc.check_strength('keys.hmac', PROFILE, s, NAMES, ctrs),
        sc.check_strength('keys.kek', PROFILE, s, NAMES, ctrs),
        sc.check_strength('keys.tokens', PROFILE, s, NAMES, ctrs),
        sc.check_rotation(PROFILE, s, NAMES, {}, 90, NOW, ctrs),
        sc.check_evidence(s, NAMES, ctrs),
        sc.check_file_delivery(PROFILE, ctrs, VIEWS, engines=['docker']),
    ]


def no_value_in(records, values):
    text = json.dumps(records, default=str)
    for name, value in values.items():
        assert value not in text, 'the value of %s leaked into a record' % name


def test_compliant_layout_passes(lay):
    records = all_records(lay)
    for rec in records:
        assert rec['status'] == PASS, (rec['id'], rec['findings'])
    no_value_in(records, lay['values'])


def test_scope_of_one_service_includes_the_passwords_behind_its_urls():
    services, names = sc.scope(PROFILE, ['sts'])
    assert services == ['sts']
    assert set(names) == set(PROFILE['services']['sts']['secrets']) | {'postgresPassword', 'redisPassword'}
    with pytest.raises(ValueError, match='unknown services nope'):
        sc.scope(PROFILE, ['nope'])


def test_nothing_deployed_is_not_applicable(tmp_path):
    p = dict((k, str(tmp_path / k)) for k in ('store', 'views', 'archive', 'evidence'))
    s = secrets_snapshot(PROFILE, p['store'], p['views'], p['archive'], p['evidence'], SERVICES, NAMES)
    rec = sc.check_permissions(s, GID, 0o440, [])
    assert rec['status'] == NOT_APPLICABLE and 'no secret store' in rec['detail']
    # containers running without a store is a failure, not "nothing here"
    rec = sc.check_present(PROFILE, s, SERVICES, NAMES, containers())
    assert rec['status'] == FAIL and 'zoneKek is missing from the store' in rec['findings']


# ---------------------------------------------------------------- permissions

def test_world_readable_secret_fails(lay):
    path = os.path.join(lay['paths']['views_path'], 'api', 'zoneKek')
    os.chmod(path, 0o444)
    rec = sc.check_permissions(snap(lay), GID, 0o440, containers())
    assert rec['status'] == FAIL
    if IS_ROOT:
        assert rec['findings'] == ['%s: world-readable (mode 0444 0:%d, expected 0440 root:%d)' % (path, GID, GID)]
    else:
        assert rec['findings'][0].startswith('%s: world-readable' % path)


def test_group_readable_store_file_fails(lay):
    path = os.path.join(lay['paths']['store_path'], 'auditHmacKey')
    os.chmod(path, 0o640)
    rec = sc.check_permissions(snap(lay), GID, 0o440, containers())
    assert rec['findings'][0].startswith('%s: group read (mode 0640' % path)


def test_listable_views_and_archive_fail(lay):
    os.chmod(lay['paths']['views_path'], 0o755)
    os.chmod(lay['paths']['archive_path'], 0o750)
    rec = sc.check_permissions(snap(lay), GID, 0o440, containers())
    assert any(f.startswith('%s: world-readable, world-searchable' % lay['paths']['views_path']) for f in rec['findings'])
    assert any(f.startswith('%s: group read/execute' % lay['paths']['archive_path']) for f in rec['findings'])


@pytest.mark.skipif(not IS_ROOT, reason='owners can only be set as root')
def test_wrong_owner_fails(lay):
    path = os.path.join(lay['paths']['views_path'], 'web', 'caracalAuthSecret')
    os.chown(path, 65532, 0)
    rec = sc.check_permissions(snap(lay), GID, 0o440, containers())
    assert rec['findings'] == ['%s: owner uid 65532, group gid 0 (mode 0440 65532:0, expected 0440 root:%d)' % (path, GID)]


def test_symlinked_secret_fails(lay):
    path = os.path.join(lay['paths']['store_path'], 'metricsBearer')
    os.rename(path, path + '.real')
    os.symlink(path + '.real', path)
    rec = sc.check_permissions(snap(lay), GID, 0o440, containers())
    assert '%s: is a symbolic link (a store file expected)' % path in rec['findings']


def test_evidence_log_readable_fails(lay):
    os.chmod(lay['paths']['evidence_path'], 0o644)
    assert sc.check_permissions(snap(lay), GID, 0o440, containers())['status'] == FAIL
    rec = sc.check_evidence(snap(lay), NAMES)
    assert rec['findings'][0].startswith('%s: world-readable, group read' % lay['paths']['evidence_path'])


# ---------------------------------------------------------------- views and presence

def test_extra_file_in_a_view_fails(lay):
    path = os.path.join(lay['paths']['views_path'], 'web', 'zoneKek')
    with open(path, 'w') as handle:
        handle.write(lay['values']['zoneKek'])
    os.chmod(path, 0o440)
    rec = sc.check_views(PROFILE, snap(lay), SERVICES, containers())
    assert rec['findings'] == ['%s: holds zoneKek, which web does not read' % os.path.dirname(path)]


def test_missing_secret_fails(lay):
    os.remove(os.path.join(lay['paths']['store_path'], 'streamsHmacKey'))
    rec = sc.check_present(PROFILE, snap(lay), SERVICES, NAMES, containers())
    assert rec['findings'] == ['streamsHmacKey is missing from the store']


def test_stale_view_fails(lay):
    fresh = 'ab' * 32
    set_value(lay, 'metricsBearer', fresh, views=False)
    rec = sc.check_present(PROFILE, snap(lay), SERVICES, NAMES, containers())
    assert rec['status'] == FAIL
    assert rec['findings'][0].startswith('metricsBearer: the view of sts holds fingerprint ')
    assert len(rec['findings']) == len(PROFILE['secrets']['metricsBearer']['consumers'])


def test_value_changed_behind_the_module_fails(lay):
    set_value(lay, 'caracalAdminToken', 'cd' * 32, state=False)
    rec = sc.check_present(PROFILE, snap(lay), SERVICES, NAMES, containers())
    assert rec['findings'][0].startswith('caracalAdminToken: the store holds fingerprint %s but state.json records'
                                         % fingerprint('cd' * 32))


# ---------------------------------------------------------------- strength

def test_short_key_fails(lay):
    set_value(lay, 'auditHmacKey', '0f1e2d3c4b5a69788796a5b4c3d2e1f0')
    rec = sc.check_strength('keys.hmac', PROFILE, snap(lay), NAMES, containers())
    assert rec['findings'] == ['auditHmacKey: breaks rule min-bytes: value has 16 bytes, at least 32 required']
    assert rec['evidence']['secrets']['auditHmacKey']['bytes'] == 16
    no_value_in([rec], lay['values'])


@pytest.mark.parametrize('value,rule', [
    ('00' * 32, 'weak-all-zeros'),
    (''.join('%02x' % i for i in range(32)), 'weak-ascending'),
    ('a5' * 32, 'weak-repeated-byte'),
    ('a55a' * 16, 'weak-alternating'),
    ('ab' * 31, 'min-bytes'),
    ('zz' * 32, 'hex'),
])
def test_weak_kek_fails(lay, value, rule):
    set_value(lay, 'zoneKek', value)
    rec = sc.check_strength('keys.kek', PROFILE, snap(lay), NAMES, containers())
    assert rec['status'] == FAIL and rec['findings'][0].startswith('zoneKek: breaks rule %s: ' % rule)
    assert rec['evidence']['secrets']['zoneKek']['rule'] == rule
    assert value not in json.dumps(rec)


def test_bad_token_and_stale_url_fail(lay):
    set_value(lay, 'caracalCoordinatorToken', 'not-hex-at-all-but-long-enough-to-count-xxxxxxxxxxxx')
    new_pw = '12' * 24
    set_value(lay, 'postgresPassword', new_pw)  # databaseUrl still embeds the old one
    rec = sc.check_strength('keys.tokens', PROFILE, snap(lay), NAMES, containers())
    assert 'caracalCoordinatorToken: breaks rule hex: value must contain hexadecimal digits only' in rec['findings']
    assert 'databaseUrl: does not embed the current postgresPassword' in rec['findings']
    assert 'authDatabaseUrl: does not embed the current postgresPassword' in rec['findings']
    set_value(lay, 'databaseUrl', derive(PROFILE['secrets']['databaseUrl'], lay['values']))
    rec = sc.check_strength('keys.tokens', PROFILE, snap(lay), NAMES, containers())
    assert 'databaseUrl: does not embed the current postgresPassword' not in rec['findings']


def test_strength_not_applicable_when_no_service_reads_the_kind(lay):
    services, names = sc.scope(PROFILE, ['redis'])
    rec = sc.check_strength('keys.kek', PROFILE, snap(lay, services, names), names, containers())
    assert rec['status'] == NOT_APPLICABLE and rec['detail'] == 'no service on this host reads a kek secret'


# ---------------------------------------------------------------- rotation and evidence

def test_overdue_secret_fails_but_the_kek_has_no_age_policy(tmp_path):
    lay = layout(tmp_path, created=NOW - datetime.timedelta(days=120))
    rec = sc.check_rotation(PROFILE, snap(lay), NAMES, {}, 90, NOW, containers())
    assert rec['status'] == FAIL
    assert 'auditHmacKey: 120 days old, beyond its 90-day rotation policy' in rec['findings']
    assert not [f for f in rec['findings'] if f.startswith('zoneKek')]
    assert rec['evidence']['secrets']['zoneKek']['max_age_days'] == 0
    relaxed = dict((n, {'max_age_days': 365}) for n in NAMES if PROFILE['secrets'][n]['format'] != 'derived')
    assert sc.check_rotation(PROFILE, snap(lay), NAMES, relaxed, 90, NOW, containers())['status'] == PASS
    strict = {'zoneKek': {'max_age_days': 100}}
    rec = sc.check_rotation(PROFILE, snap(lay), NAMES, strict, 0, NOW, containers())
    assert rec['findings'] == ['zoneKek: 120 days old, beyond its 100-day rotation policy']


def test_rotation_without_state_fails(lay):
    os.remove(os.path.join(lay['paths']['archive_path'], 'state.json'))
    rec = sc.check_rotation(PROFILE, snap(lay), NAMES, {}, 90, NOW, containers())
    assert rec['status'] == FAIL and 'state.json' in rec['findings'][0]


def test_value_without_evidence_fails(lay):
    path = lay['paths']['evidence_path']
    lines = [line for line in open(path) if json.loads(line)['secret'] != 'gatewayStsHmacKey']
    with open(path, 'w') as handle:
        handle.write(''.join(lines) + 'garbage\n')
    rec = sc.check_evidence(snap(lay), NAMES)
    fp = fingerprint(lay['values']['gatewayStsHmacKey'])
    assert 'gatewayStsHmacKey: no evidence record for its current value (fingerprint %s)' % fp in rec['findings']
    assert any('is not an evidence record' in f for f in rec['findings'])


def test_missing_evidence_log_fails(lay):
    os.remove(lay['paths']['evidence_path'])
    rec = sc.check_evidence(snap(lay), NAMES, containers())
    assert rec['findings'] == ['%s: the evidence log is missing' % lay['paths']['evidence_path']]


# ---------------------------------------------------------------- KEK backup

def test_kek_backup_not_configured_is_not_applicable(lay):
    rec = sc.check_kek_backup(PROFILE, snap(lay), NAMES, None, [])
    assert rec['status'] == NOT_APPLICABLE and 'kek_backup_path' in rec['detail']


def test_kek_backup_plain_copy_and_by_fingerprint(lay, tmp_path):
    backups = tmp_path / 'backups'
    backups.mkdir()
    copy = backups / 'zoneKek.2026-07-09'
    copy.write_text(lay['values']['zoneKek'] + '\n')
    os.chmod(str(copy), 0o600)
    rec = sc.check_kek_backup(PROFILE, snap(lay), NAMES, str(backups), backup_files(str(backups)))
    assert rec['status'] == PASS and rec['evidence']['kek']['zoneKek']['plain_copies'] == [str(copy)]
    os.chmod(str(copy), 0o644)
    rec = sc.check_kek_backup(PROFILE, snap(lay), NAMES, str(backups), backup_files(str(backups)))
    assert rec['status'] == FAIL and rec['findings'][0].startswith('%s: world-readable' % copy)
    copy.unlink()
    sealed = backups / ('zoneKek-%s.gpg' % fingerprint(lay['values']['zoneKek']))
    sealed.write_bytes(b'\x85\x02binary')
    os.chmod(str(sealed), 0o600)
    rec = sc.check_kek_backup(PROFILE, snap(lay), NAMES, str(backups), backup_files(str(backups)))
    assert rec['status'] == PASS and rec['evidence']['kek']['zoneKek']['named_by_fingerprint'] == [str(sealed)]


def test_kek_backup_of_an_old_value_fails(lay, tmp_path):
    old = tmp_path / 'zoneKek.bak'
    old.write_text('9f' * 32)
    os.chmod(str(old), 0o600)
    rec = sc.check_kek_backup(PROFILE, snap(lay), NAMES, str(old), backup_files(str(old)))
    fp = fingerprint(lay['values']['zoneKek'])
    assert rec['findings'] == ['zoneKek: no backup of the current value (fingerprint %s) under %s (1 files compared)'
                               % (fp, old)]


# ---------------------------------------------------------------- runtime profiles

def test_runtime_profiles(tmp_path):
    assert sc.check_runtime_profiles([])['status'] == NOT_APPLICABLE
    prof = tmp_path / 'agent'
    prof.mkdir()
    os.chmod(str(prof), 0o700)
    for name in ('caracal.toml', 'client_secret'):
        (prof / name).write_text('x')
        os.chmod(str(prof / name), 0o600)
    assert sc.check_runtime_profiles(runtime_profiles([str(prof)]))['status'] == PASS
    os.chmod(str(prof / 'caracal.toml'), 0o644)
    rec = sc.check_runtime_profiles(runtime_profiles([str(prof)]))
    assert rec['findings'][0].startswith('%s: world-readable, group read' % (prof / 'caracal.toml'))
    rec = sc.check_runtime_profiles(runtime_profiles([str(tmp_path / 'missing')]))
    assert rec['findings'] == ['%s: the runtime profile directory is missing' % (tmp_path / 'missing')]


# ---------------------------------------------------------------- delivery into containers

def env_set(item, name, value):
    item['Config']['Env'] = [e for e in item['Config']['Env'] if not e.startswith(name + '=')] + ['%s=%s' % (name, value)]


def test_secret_in_an_env_var_fails_both_delivery_checks(lay):
    items = stack()
    env_set(by_service(items, 'api'), 'ZONE_KEK', lay['values']['zoneKek'])
    ctrs = containers(items)
    rec = sc.check_file_delivery(PROFILE, ctrs, VIEWS, engines=['docker'])
    assert rec['findings'] == ['api (caracal-api-1): sets ZONE_KEK directly (a value in the environment overrides ZONE_KEK_FILE)']
    raw = dict((c['name'], i) for c, i in zip(ctrs, []))
    values = dict((n, v) for n, v in lay['values'].items() if PROFILE['secrets'][n]['format'] != 'derived')
    rec = sc.check_no_inline_values(PROFILE, values, ctrs, raw, [])
    fp = fingerprint(lay['values']['zoneKek'])
    assert rec['findings'] == ['container caracal-api-1: variable ZONE_KEK holds the value of zoneKek (fingerprint %s)' % fp]
    no_value_in([rec], lay['values'])


def test_secret_in_a_label_a_process_environment_or_a_command_line_fails(lay):
    items = stack()
    web = by_service(items, 'web')
    web['Config']['Labels']['debug.token'] = lay['values']['caracalAuthSecret']
    ctrs = containers(items)
    raw = {'caracal-web-1': web}
    procs = [
        {'pid': 4242, 'comm': 'node', 'environ': ['PATH=/bin', 'DATABASE_URL=%s' % lay['values']['databaseUrl']],
         'cmdline': 'node main.js'},
        {'pid': 4343, 'comm': 'redis-cli', 'environ': [], 'cmdline': 'redis-cli -a %s ping' % lay['values']['redisPassword']},
    ]
    values = dict((n, v) for n, v in lay['values'].items() if PROFILE['secrets'][n]['format'] != 'derived')
    rec = sc.check_no_inline_values(PROFILE, values, ctrs, raw, procs, unreadable=3)
    fps = dict((n, fingerprint(v)) for n, v in lay['values'].items())
    assert rec['findings'] == [
        'container caracal-web-1: its inspect output (labels, command or health check) holds the value of '
        'caracalAuthSecret (fingerprint %s)' % fps['caracalAuthSecret'],
        'process 4242 (node): variable DATABASE_URL holds the value of postgresPassword (fingerprint %s)' % fps['postgresPassword'],
        'process 4343 (redis-cli): its command line holds the value of redisPassword (fingerprint %s)' % fps['redisPassword'],
    ]
    assert rec['evidence']['processes_unreadable'] == 3
    no_value_in([rec], lay['values'])


def test_no_values_to_search_fails_unless_nothing_is_deployed(tmp_path):
    rec = sc.check_no_inline_values(PROFILE, {}, containers(), {}, [])
    assert rec['status'] == FAIL
    p = dict((k, str(tmp_path / k)) for k in ('store', 'views', 'archive', 'evidence'))
    s = secrets_snapshot(PROFILE, p['store'], p['views'], p['archive'], p['evidence'], SERVICES, NAMES)
    assert sc.check_no_inline_values(PROFILE, {}, [], {}, [], snapshot=s)['status'] == NOT_APPLICABLE


def test_missing_file_variable_and_writable_mount_fail():
    items = stack()
    sts = by_service(items, 'sts')
    sts['Config']['Env'] = [e for e in sts['Config']['Env'] if not e.startswith('ZONE_KEK_FILE=')]
    env_set(sts, 'AUDIT_HMAC_KEY_FILE', '/etc/audit.key')
    for m in sts['Mounts']:
        if m['Destination'] == '/run/secrets':
            m['RW'] = True
            m['Source'] = '/opt/caracal/secrets/store'
    rec = sc.check_file_delivery(PROFILE, containers(items), VIEWS, engines=['docker'])
    assert rec['findings'] == [
        'sts (caracal-sts-1): ZONE_KEK_FILE is not set (it reads zoneKek)',
        'sts (caracal-sts-1): AUDIT_HMAC_KEY_FILE is /etc/audit.key, expected /run/secrets/auditHmacKey',
        'sts (caracal-sts-1): /run/secrets is mounted read-write',
        'sts (caracal-sts-1): /run/secrets comes from /opt/caracal/secrets/store, not from its own view '
        '/opt/caracal/secrets/services/sts',
    ]


def test_file_delivery_not_applicable_without_containers():
    rec = sc.check_file_delivery(PROFILE, [], VIEWS, engines=[])
    assert rec['status'] == NOT_APPLICABLE and rec['detail'] == 'no container engine (docker, podman) on this host'
