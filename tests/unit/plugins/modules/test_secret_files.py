# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""caracal.hardened.secret_files, run for real in a temporary directory.

As root (the usual case here) owners are checked too; as another user ``os.chown``
is stubbed and only contents and modes are checked.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import hashlib
import json
import os
import shutil
import stat
import time

import pytest

from unittest import mock

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.caracal.hardened.plugins.modules import secret_files
from ansible_collections.caracal.hardened.plugins.module_utils import _secret_store, _stamp
from ansible_collections.caracal.hardened.plugins.module_utils._contract import (
    get_profile,
    roll_order,
    secret_names,
)
from ansible_collections.caracal.hardened.plugins.module_utils._secrets import (
    derive,
    fingerprint,
    format_ts,
    is_derived,
    is_destructive,
    parse_ts,
)

PROFILE = get_profile()
SPECS = PROFILE['secrets']
ALL = secret_names(PROFILE)
GENERATED = secret_names(PROFILE, generated_only=True)
KEK = [n for n in ALL if is_destructive(SPECS[n])][0]
HMAC = 'auditHmacKey'
PASSWORD = [n for n in ALL if SPECS[n]['kind'] == 'password'][0]
IS_ROOT = os.geteuid() == 0


class Exited(Exception):
    pass


class Failed(Exception):
    pass


def _exit(self, **result):
    raise Exited(dict(result, warnings=WARNINGS[:]))


def _fail(self, **result):
    raise Failed(dict(result, warnings=WARNINGS[:]))


WARNINGS = []


@pytest.fixture(autouse=True)
def module_io(monkeypatch):
    del WARNINGS[:]
    monkeypatch.setattr(basic.AnsibleModule, 'exit_json', _exit)
    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', _fail)
    monkeypatch.setattr(basic.AnsibleModule, 'warn', lambda self, msg: WARNINGS.append(msg))
    monkeypatch.delenv('AWX_JOB_ID', raising=False)
    monkeypatch.delenv('TOWER_JOB_ID', raising=False)
    if not IS_ROOT:
        monkeypatch.setattr(os, 'chown', lambda *args, **kwargs: None)


@pytest.fixture
def host(tmp_path):
    return Host(tmp_path)


class Host(object):
    """The four paths of one test host and helpers to run the module on them."""

    def __init__(self, root):
        self.root = str(root)
        self.paths = {
            'store_path': os.path.join(self.root, 'etc', 'secrets'),
            'views_path': os.path.join(self.root, 'etc', 'views'),
            'archive_path': os.path.join(self.root, 'var', 'archive'),
            'evidence_path': os.path.join(self.root, 'var', 'log', 'evidence.jsonl'),
        }

    def _invoke(self, args, check, diff):
        args = dict(self.paths, **args)
        args['_ansible_check_mode'] = check
        args['_ansible_diff'] = diff
        del WARNINGS[:]
        with patch_module_args(args):
            secret_files.main()

    def run(self, check=False, diff=False, roll=True, **args):
        """Run the module; with ``roll`` (the default) also close the journal it left open, as
        the backend does once every consumer is ready (``roll=False``: a run killed before that)."""
        with pytest.raises(Exited) as exc:
            self._invoke(args, check, diff)
        result = exc.value.args[0]
        assert not result.get('failed'), result
        if roll and not check:
            _secret_store.close_journal(self.paths['archive_path'])
        return result

    @property
    def journal_path(self):
        return os.path.join(self.paths['archive_path'], 'journal.json')

    def journal(self):
        if not os.path.exists(self.journal_path):
            return None
        with open(self.journal_path) as handle:
            return json.load(handle)

    def fail(self, **args):
        with pytest.raises(Failed) as exc:
            self._invoke(args, False, False)
        return exc.value.args[0]

    def store(self, name):
        with open(os.path.join(self.paths['store_path'], name)) as handle:
            return handle.read()

    def view(self, service, name):
        with open(os.path.join(self.paths['views_path'], service, name)) as handle:
            return handle.read()

    def views(self):
        top = self.paths['views_path']
        return {svc: sorted(os.listdir(os.path.join(top, svc))) for svc in os.listdir(top)}

    @property
    def state_path(self):
        return os.path.join(self.paths['archive_path'], 'state.json')

    def state(self):
        with open(self.state_path) as handle:
            return json.load(handle)

    def write_state(self, state):
        """Edit state.json as the module writes it (so an edit alone is no change)."""
        with open(self.state_path, 'w') as handle:
            handle.write(json.dumps(state, indent=2, sort_keys=True) + '\n')

    def evidence(self):
        if not os.path.exists(self.paths['evidence_path']):
            return []
        with open(self.paths['evidence_path']) as handle:
            return [json.loads(line) for line in handle]

    def snapshot(self):
        """Every path under the host with its type, owner, group, mode and content hash."""
        seen = {}
        for top, dirs, files in os.walk(self.root):
            for entry in dirs + files:
                path = os.path.join(top, entry)
                st = os.lstat(path)
                digest = None
                if stat.S_ISREG(st.st_mode):
                    with open(path, 'rb') as handle:
                        digest = hashlib.sha256(handle.read()).hexdigest()
                seen[path] = (st.st_mode, st.st_uid, st.st_gid, digest)
        return seen

    def all_bytes(self):
        """The content of every file under the host (to search for values)."""
        blobs = []
        for top, _dirs, files in os.walk(self.root):
            for entry in files:
                with open(os.path.join(top, entry), 'rb') as handle:
                    blobs.append((os.path.join(top, entry), handle.read().decode('utf-8', 'replace')))
        return blobs


def mode_of(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def random_hex(size):
    return os.urandom(size).hex()


def assert_no_values(result, values):
    text = json.dumps(result)
    for value in values:
        assert value not in text


def backdate(host, days, names=None):
    state = host.state()
    for name, record in state['secrets'].items():
        if names is None or name in names:
            record['created'] = format_ts(parse_ts(record['created']) - datetime.timedelta(days=days))
    host.write_state(state)


# ---------------------------------------------------------------- first run, second run, check mode

def test_generates_the_whole_inventory(host):
    result = host.run()
    assert result['changed']
    assert result['changed_secrets'] == ALL
    assert sorted(result['secrets']) == sorted(ALL)
    store = host.paths['store_path']
    assert sorted(os.listdir(store)) == sorted(ALL)
    assert mode_of(store) == 0o700
    for name in ALL:
        path = os.path.join(store, name)
        assert mode_of(path) == 0o600
        assert result['secrets'][name]['path'] == path
        assert result['secrets'][name]['fingerprint'] == fingerprint(host.store(name))
        assert result['secrets'][name]['action'] == ('derived' if is_derived(SPECS[name]) else 'generated')
        assert result['secrets'][name]['age_days'] == 0 and not result['secrets'][name]['due']
        if IS_ROOT:
            st = os.lstat(path)
            assert (st.st_uid, st.st_gid) == (0, 0)
    for name in GENERATED:
        assert len(host.store(name)) == 2 * SPECS[name]['bytes']
    evidence = host.evidence()
    assert evidence == result['evidence']
    assert sorted(r['secret'] for r in evidence) == sorted(ALL)
    assert {(r['action'], r['reason']) for r in evidence} == {('generated', 'initial'), ('derived', 'initial')}
    assert result['restart'] == roll_order(PROFILE, ALL)
    assert result['retired'] == [] and result['due'] == []
    assert mode_of(host.paths['evidence_path']) == 0o600
    assert mode_of(host.paths['archive_path']) == 0o700
    assert mode_of(host.state_path) == 0o600


def test_views_hold_exactly_what_each_service_reads(host):
    host.run()
    views = host.views()
    assert sorted(views) == sorted(PROFILE['services'])
    for service, spec in PROFILE['services'].items():
        assert views[service] == sorted(spec['secrets'])
        directory = os.path.join(host.paths['views_path'], service)
        assert mode_of(directory) == 0o750
        for name in spec['secrets']:
            path = os.path.join(directory, name)
            assert mode_of(path) == 0o440
            assert host.view(service, name) == host.store(name)
            if IS_ROOT:
                st = os.lstat(path)
                assert (st.st_uid, st.st_gid) == (0, PROFILE['gid'])


def test_second_run_changes_nothing(host):
    first = host.run()
    before = host.snapshot()
    second = host.run()
    assert not second['changed']
    assert second['changed_secrets'] == [] and second['restart'] == [] and second['evidence'] == []
    assert {s['action'] for s in second['secrets'].values()} == {'unchanged'}
    assert {n: s['fingerprint'] for n, s in second['secrets'].items()} == \
        {n: s['fingerprint'] for n, s in first['secrets'].items()}
    assert host.snapshot() == before
    assert len(host.evidence()) == len(ALL)


def test_check_mode_writes_nothing(host):
    result = host.run(check=True)
    assert result['changed'] and result['changed_secrets'] == ALL
    assert len(result['evidence']) == len(ALL)
    assert os.listdir(host.root) == []
    host.run()
    before = host.snapshot()
    result = host.run(check=True, rotate=[HMAC])
    assert result['changed'] and result['changed_secrets'] == [HMAC]
    assert result['restart'] == roll_order(PROFILE, [HMAC])
    assert host.snapshot() == before


def test_diff_shows_fingerprints_owners_and_modes_never_values(host):
    result = host.run(diff=True)
    after = result['diff']['after']
    path = os.path.join(host.paths['store_path'], HMAC)
    assert after[path] == {'fingerprint': fingerprint(host.store(HMAC)), 'mode': '0600', 'owner': 0, 'group': 0}
    assert path not in result['diff']['before']
    assert_no_values(result, [host.store(n) for n in ALL])
    result = host.run(diff=True, rotate=[HMAC])
    assert result['diff']['before'][path]['fingerprint'] != result['diff']['after'][path]['fingerprint']
    assert_no_values(result, [host.store(n) for n in ALL])


# ---------------------------------------------------------------- validation before any write

def test_bad_value_leaves_the_host_byte_identical(host):
    host.run()
    before = host.snapshot()
    result = host.fail(values={HMAC: 'zz' * 32, PASSWORD: random_hex(4)}, rotate=['metricsBearer'])
    assert host.snapshot() == before
    assert HMAC in result['msg'] and 'hex' in result['msg']
    assert PASSWORD in result['msg'] and 'min-bytes' in result['msg']
    assert [(e['secret'], e['rule']) for e in result['errors']] == [(HMAC, 'hex'), (PASSWORD, 'min-bytes')]


@pytest.mark.parametrize('value, rule', [
    ('', 'not-empty'), ('0' * 63, 'even-length'), ('00' * 31, 'min-bytes'), ('00' * 33, 'max-bytes'),
    ('00' * 32, 'weak-all-zeros'), ('7f' * 32, 'weak-repeated-byte'), (bytes(range(32)).hex(), 'weak-ascending'),
    (bytes(range(32, 0, -1)).hex(), 'weak-descending'), ('c0de' * 16, 'weak-alternating'),
])
def test_bad_kek_refused_on_a_fresh_host(host, value, rule):
    result = host.fail(values={KEK: value})
    assert os.listdir(host.root) == []
    assert KEK in result['msg'] and rule in result['msg']


def test_invalid_existing_file_fails_naming_secret_and_rule(host):
    host.run()
    with open(os.path.join(host.paths['store_path'], 'metricsBearer'), 'w') as handle:
        handle.write('not-hex\n')
    before = host.snapshot()
    result = host.fail()
    assert 'metricsBearer' in result['msg'] and 'hex' in result['msg']
    assert host.snapshot() == before


@pytest.mark.parametrize('args, words', [
    ({'names': ['nope']}, ['names', 'nope']),
    ({'services': ['nginx']}, ['services', 'nginx']),
    ({'values': {'databaseUrl': 'postgres://x'}}, ['databaseUrl', 'derived']),
    ({'rotate': ['redisUrl']}, ['redisUrl', 'derived']),
    ({'rotate': [HMAC], 'restore': [HMAC]}, [HMAC, 'rotate', 'restore']),
    ({'names': [HMAC], 'rotate': ['metricsBearer']}, ['metricsBearer', 'not managed']),
    ({'mode': '0444'}, ['mode']),
    ({'group': 'no-such-group-caracal'}, ['no-such-group-caracal']),
    ({'policies': {HMAC: {'max_age_days': -1}}}, [HMAC, 'negative']),
    ({'policies': {HMAC: {'maxage': 1}}}, [HMAC, 'max_age_days']),
    ({'profile': '0.9'}, ['0.9']),
])
def test_bad_requests_are_refused_before_anything_is_written(host, args, words):
    result = host.fail(**args)
    for word in words:
        assert word in result['msg']
    assert os.listdir(host.root) == []


def test_symbolic_link_is_refused(host):
    host.run()
    path = os.path.join(host.paths['store_path'], 'metricsBearer')
    os.unlink(path)
    os.symlink('/etc/hostname', path)
    before = host.snapshot()
    assert 'symbolic link' in host.fail()['msg']
    assert host.snapshot() == before


# ---------------------------------------------------------------- rotation, archive, retirement

def test_rotate_by_name_archives_and_records(host):
    host.run()
    old = host.store(HMAC)
    result = host.run(rotate=[HMAC], rotate_reason='exposure', actor='alice')
    new = host.store(HMAC)
    assert new != old
    assert result['changed_secrets'] == [HMAC]
    assert result['secrets'][HMAC]['action'] == 'rotated'
    assert result['restart'] == roll_order(PROFILE, [HMAC])
    for service in SPECS[HMAC]['consumers']:
        assert host.view(service, HMAC) == new
    entry = host.state()['archive'][HMAC][-1]
    archived = os.path.join(host.paths['archive_path'], HMAC, entry['file'])
    with open(archived) as handle:
        assert handle.read() == old
    assert mode_of(archived) == 0o600 and mode_of(os.path.dirname(archived)) == 0o700
    assert entry['fingerprint'] == fingerprint(old)
    assert parse_ts(entry['retire_after']) - parse_ts(entry['archived_at']) == datetime.timedelta(days=7)
    record = host.evidence()[-1]
    assert record == result['evidence'][0] and len(result['evidence']) == 1
    assert (record['action'], record['reason'], record['actor'], record['secret']) == ('rotated', 'exposure', 'alice', HMAC)
    assert record['old_fingerprint'] == fingerprint(old) and record['new_fingerprint'] == fingerprint(new)
    assert record['rollback_until'] == entry['retire_after']
    assert record['location'] == os.path.join(host.paths['store_path'], HMAC)


def test_restart_is_limited_to_the_host_services(host):
    services = ['postgres', 'api', 'web']
    host.run(services=services)
    result = host.run(services=services, rotate=['caracalAdminToken'])
    assert result['restart'] == [s for s in roll_order(PROFILE, ['caracalAdminToken']) if s in services]


def test_rotate_by_age(host):
    host.run()
    backdate(host, 91)
    before = {n: host.store(n) for n in ALL}
    result = host.run()
    rotated = [n for n in GENERATED if not is_destructive(SPECS[n])]
    assert [n for n in GENERATED if result['secrets'][n]['action'] == 'rotated'] == rotated
    assert host.store(KEK) == before[KEK]
    assert result['due'] == []
    assert {r['reason'] for r in result['evidence'] if r['action'] == 'rotated'} == {'age'}
    assert all(host.store(n) != before[n] for n in rotated)
    assert not host.run()['changed']


def test_age_policy_per_secret(host):
    host.run(policies={HMAC: {'max_age_days': 10}}, default_max_age_days=0)
    backdate(host, 11)
    result = host.run(policies={HMAC: {'max_age_days': 10}}, default_max_age_days=0)
    assert result['changed_secrets'] == [HMAC]


def test_due_kek_is_blocked_without_acknowledgement(host):
    policies = {KEK: {'max_age_days': 30}}
    host.run(policies=policies)
    backdate(host, 31, [KEK])
    kek = host.store(KEK)
    result = host.run(policies=policies)
    assert not result['changed'] and result['due'] == [KEK]
    assert result['secrets'][KEK]['due'] and result['secrets'][KEK]['age_days'] == 31
    assert host.store(KEK) == kek
    assert any(KEK in w for w in result.get('warnings', []))
    result = host.run(policies=policies, allow_destructive_kek_rotation=True)
    assert result['changed_secrets'] == [KEK] and result['due'] == []
    assert host.store(KEK) != kek


def test_retirement_after_the_window(host):
    host.run()
    host.run(rotate=[HMAC, 'metricsBearer'], policies={'metricsBearer': {'rollback_days': 0}})
    state = host.state()
    assert state['archive']['metricsBearer'][0]['retire_after'] is None
    entry = state['archive'][HMAC][0]
    path = os.path.join(host.paths['archive_path'], HMAC, entry['file'])
    assert not host.run()['changed']
    entry['retire_after'] = format_ts(datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=5))
    state['archive']['metricsBearer'][0]['archived_at'] = '2000-01-01T00:00:00Z'
    host.write_state(state)
    result = host.run()
    assert result['retired'] == [{'secret': HMAC, 'fingerprint': entry['fingerprint']}]
    assert not os.path.exists(path)
    assert host.state()['archive'][HMAC] == []
    assert len(host.state()['archive']['metricsBearer']) == 1
    record = result['evidence'][0]
    assert (record['action'], record['reason'], record['old_fingerprint']) == ('retired', 'window-expired', entry['fingerprint'])
    assert result['changed_secrets'] == [] and result['restart'] == []
    assert not host.run()['changed']


def test_restore_puts_back_the_archived_value(host):
    host.run()
    original = host.store(HMAC)
    host.run(rotate=[HMAC])
    failed = host.store(HMAC)
    result = host.run(restore=[HMAC])
    assert host.store(HMAC) == original
    assert result['secrets'][HMAC]['action'] == 'restored'
    assert result['changed_secrets'] == [HMAC] and result['restart'] == roll_order(PROFILE, [HMAC])
    record = result['evidence'][0]
    assert (record['action'], record['reason']) == ('restored', 'rollback')
    assert (record['old_fingerprint'], record['new_fingerprint']) == (fingerprint(failed), fingerprint(original))
    entries = host.state()['archive'][HMAC]
    assert [e['fingerprint'] for e in entries] == [fingerprint(failed)]
    files = os.listdir(os.path.join(host.paths['archive_path'], HMAC))
    assert files == [entries[0]['file']]
    for service in SPECS[HMAC]['consumers']:
        assert host.view(service, HMAC) == original


def test_restore_without_archive_is_refused(host):
    host.run()
    before = host.snapshot()
    result = host.fail(restore=[HMAC])
    assert HMAC in result['msg'] and 'no archived value' in result['msg']
    assert host.snapshot() == before


# ---------------------------------------------------------------- the KEK

def test_kek_rotation_refused_without_acknowledgement(host):
    host.run()
    before = host.snapshot()
    for args in ({'rotate': [KEK]}, {'values': {KEK: random_hex(32)}}):
        result = host.fail(**args)
        assert KEK in result['msg'] and 'allow_destructive_kek_rotation' in result['msg']
        assert host.snapshot() == before
    kek = host.store(KEK)
    result = host.run(rotate=[KEK], allow_destructive_kek_rotation=True)
    assert result['changed_secrets'] == [KEK] and host.store(KEK) != kek
    assert result['restart'] == roll_order(PROFILE, [KEK])


def test_kek_restore_needs_acknowledgement_too(host):
    host.run()
    host.run(rotate=[KEK], allow_destructive_kek_rotation=True)
    before = host.snapshot()
    assert 'allow_destructive_kek_rotation' in host.fail(restore=[KEK])['msg']
    assert host.snapshot() == before


@pytest.mark.parametrize('forget', ['nothing', 'state'])
def test_missing_kek_that_existed_is_never_regenerated(host, forget):
    host.run()
    kek = host.store(KEK)
    os.unlink(os.path.join(host.paths['store_path'], KEK))
    if forget == 'state':  # only the evidence log remembers the KEK
        os.unlink(host.state_path)
    before = host.snapshot()
    for ack in (False, True):
        result = host.fail(allow_destructive_kek_rotation=ack)
        assert KEK in result['msg'] and 'backup' in result['msg'] and 'Nothing was changed' in result['msg']
        assert host.snapshot() == before
    if forget == 'nothing':
        assert fingerprint(kek) in result['msg']
    result = host.run(values={KEK: kek})  # restored from the backup
    assert host.store(KEK) == kek and result['secrets'][KEK]['fingerprint'] == fingerprint(kek)


def test_missing_kek_with_data_present_is_refused(host):
    result = host.fail(data_present=True)
    assert KEK in result['msg'] and 'data_present' in result['msg']
    assert os.listdir(host.root) == []
    kek = random_hex(32)
    result = host.run(data_present=True, values={KEK: kek})
    assert host.store(KEK) == kek and result['secrets'][KEK]['action'] == 'adopted'


def test_missing_kek_with_data_in_a_data_path_is_refused(host, tmp_path_factory):
    data = tmp_path_factory.mktemp('data')
    empty, volume, a_file = data / 'empty', data / 'volume', data / 'a-file'
    empty.mkdir()
    volume.mkdir()
    (volume / 'PG_VERSION').write_text('17\n')
    a_file.write_text('not a directory\n')
    result = host.fail(data_paths=[str(data / 'missing'), str(a_file), str(empty), str(volume)])
    assert KEK in result['msg'] and '%s holds data' % volume in result['msg'] and 'Nothing was changed' in result['msg']
    assert os.listdir(host.root) == []
    # Missing paths, files and empty directories prove nothing: a first deployment generates the KEK.
    result = host.run(data_paths=[str(data / 'missing'), str(a_file), str(empty)])
    assert result['secrets'][KEK]['action'] == 'generated'


# ---------------------------------------------------------------- supplied values, adoption, derived

def test_supplied_shared_values(host):
    value = random_hex(32)
    result = host.run(values={HMAC: value})
    assert host.store(HMAC) == value and result['secrets'][HMAC]['action'] == 'adopted'
    assert host.state()['secrets'][HMAC]['source'] == 'supplied'
    assert not host.run(values={HMAC: value + '\n'})['changed']
    newer = random_hex(32).upper()
    result = host.run(values={HMAC: newer})
    assert host.store(HMAC) == newer and result['changed_secrets'] == [HMAC]
    record = result['evidence'][0]
    assert (record['action'], record['reason']) == ('rotated', 'source-changed')
    archived = host.state()['archive'][HMAC][0]
    with open(os.path.join(host.paths['archive_path'], HMAC, archived['file'])) as handle:
        assert handle.read() == value


def test_existing_files_are_adopted(host):
    store = host.paths['store_path']
    os.makedirs(store)
    value = random_hex(32)
    path = os.path.join(store, HMAC)
    with open(path, 'w') as handle:
        handle.write(value + '\n')
    mtime = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    os.utime(path, (mtime.timestamp(), mtime.timestamp()))
    result = host.run(default_max_age_days=0)
    assert result['secrets'][HMAC]['action'] == 'adopted'
    assert result['secrets'][HMAC]['created'] == '2026-01-02T03:04:05Z'
    assert HMAC not in result['changed_secrets']
    record = [r for r in result['evidence'] if r['secret'] == HMAC][0]
    assert (record['action'], record['reason'], record['new_fingerprint']) == ('adopted', 'initial', fingerprint(value))
    assert host.store(HMAC) == value
    assert host.view('audit', HMAC) == value
    assert not host.run(default_max_age_days=0)['changed']


def test_derived_urls_embed_the_passwords(host):
    host.run()
    for name in ALL:
        spec = SPECS[name]
        if is_derived(spec):
            sources = {src: host.store(src) for src in spec['derived_from']}
            assert host.store(name) == derive(spec, sources)
            for value in sources.values():
                assert value in host.store(name)
    result = host.run(names=[PASSWORD], rotate=[PASSWORD])
    derived = [n for n in ALL if PASSWORD in (SPECS[n].get('derived_from') or [])]
    assert result['changed_secrets'] == [PASSWORD] + derived
    assert sorted(result['secrets']) == sorted([PASSWORD] + derived)
    for name in derived:
        assert host.store(PASSWORD) in host.store(name)
        assert result['secrets'][name]['action'] == 'derived'
    assert result['restart'] == roll_order(PROFILE, [PASSWORD])


def test_tampered_derived_file_is_rebuilt(host):
    host.run()
    path = os.path.join(host.paths['store_path'], 'redisUrl')
    with open(path, 'w') as handle:
        handle.write('redis://:wrong@redis:6379')
    result = host.run()
    assert result['changed_secrets'] == ['redisUrl']
    assert host.store('redisPassword') in host.store('redisUrl')


# ---------------------------------------------------------------- ownership, views, secrecy

def test_modes_are_enforced_on_every_run(host):
    host.run()
    store_file = os.path.join(host.paths['store_path'], HMAC)
    view_file = os.path.join(host.paths['views_path'], 'audit', HMAC)
    os.chmod(store_file, 0o644)
    os.chmod(view_file, 0o444)
    os.chmod(host.paths['store_path'], 0o755)
    result = host.run()
    assert result['changed'] and result['changed_secrets'] == [] and result['restart'] == [] and result['evidence'] == []
    assert mode_of(store_file) == 0o600 and mode_of(view_file) == 0o440 and mode_of(host.paths['store_path']) == 0o700


def test_view_drift_restarts_only_the_drifted_service(host):
    host.run()
    view_file = os.path.join(host.paths['views_path'], 'audit', HMAC)
    os.chmod(view_file, 0o600)
    with open(view_file, 'w') as handle:
        handle.write(random_hex(32))
    result = host.run()
    assert result['restart'] == ['audit'] and result['changed_secrets'] == []
    assert host.view('audit', HMAC) == host.store(HMAC)


def test_views_follow_the_service_list(host):
    host.run()
    stray = os.path.join(host.paths['views_path'], 'web', 'zoneKek')
    with open(stray, 'w') as handle:
        handle.write('x')
    result = host.run(services=['web', 'api'], mode=0o640)  # an int, as YAML reads 0640
    assert result['changed'] and result['changed_secrets'] == []
    assert sorted(host.views()) == ['api', 'web']
    assert host.views()['web'] == sorted(PROFILE['services']['web']['secrets'])
    assert mode_of(os.path.join(host.paths['views_path'], 'web', 'caracalAuthSecret')) == 0o640


def test_numeric_and_named_group(host):
    host.run(group='0', services=['web'])
    if IS_ROOT:
        assert os.lstat(os.path.join(host.paths['views_path'], 'web')).st_gid == 0
    result = host.run(group='root', services=['web'])
    assert not result['changed']


def test_values_never_leave_the_host_in_results(host):
    supplied = random_hex(32)
    results = [host.run(values={HMAC: supplied}, diff=True), host.run(rotate=['metricsBearer', PASSWORD], diff=True)]
    results.append(host.run(restore=['metricsBearer'], diff=True))
    values = {supplied}
    values.update(host.store(n) for n in ALL)
    for top, _dirs, files in os.walk(host.paths['archive_path']):
        for entry in files:
            if entry != 'state.json':
                with open(os.path.join(top, entry)) as handle:
                    values.add(handle.read())
    assert len(values) > len(ALL)
    for result in results:
        assert_no_values(result, values)
    for path, text in host.all_bytes():
        if path in (host.state_path, host.paths['evidence_path']):
            for value in values:
                assert value not in text


def test_actor_defaults_to_the_awx_job(host, monkeypatch):
    monkeypatch.setenv('AWX_JOB_ID', '4711')
    result = host.run(names=[HMAC])
    assert {r['actor'] for r in result['evidence']} == {'awx-job-4711'}
    assert sorted(result['secrets']) == [HMAC]


def test_argument_spec_hides_values():
    spec = secret_files.argument_spec()
    assert spec['values']['no_log'] is True
    with mock.patch.object(secret_files, 'AnsibleModule') as module:
        module.side_effect = RuntimeError('stop')
        with pytest.raises(RuntimeError):
            secret_files.main()
        assert module.call_args[1]['supports_check_mode'] is True


# ---------------------------------------------------------------- drift and damage

def test_out_of_band_change_is_adopted_with_a_warning(host):
    host.run()
    value = random_hex(32)
    path = os.path.join(host.paths['store_path'], HMAC)
    with open(path, 'w') as handle:
        handle.write(value)
    result = host.run()
    record = result['evidence'][0]
    assert (record['action'], record['reason'], record['new_fingerprint']) == ('adopted', 'source-changed', fingerprint(value))
    assert any(HMAC in w and 'outside' in w for w in result['warnings'])
    assert result['restart'] == roll_order(PROFILE, [HMAC]) and result['changed_secrets'] == []
    assert host.view('api', HMAC) == value


def test_lost_secret_other_than_the_kek_is_generated_anew(host):
    host.run()
    old = host.store('metricsBearer')
    os.unlink(os.path.join(host.paths['store_path'], 'metricsBearer'))
    result = host.run()
    assert result['changed_secrets'] == ['metricsBearer'] and host.store('metricsBearer') != old
    assert any('metricsBearer' in w for w in result['warnings'])


def test_corrupt_state_is_refused(host):
    host.run()
    with open(host.state_path, 'w') as handle:
        handle.write('{"secrets": [')
    before = host.snapshot()
    assert 'state.json' in host.fail()['msg']
    assert host.snapshot() == before


def test_stray_symlink_in_a_view_is_removed_not_followed(host, tmp_path):
    host.run()
    target = tmp_path / 'outside'
    target.write_text(u'keep me')
    os.symlink(str(target), os.path.join(host.paths['views_path'], 'web', 'stray'))
    result = host.run()
    assert result['changed'] and target.read_text() == u'keep me'
    assert host.views()['web'] == sorted(PROFILE['services']['web']['secrets'])


# ---------------------------------------------------------------- the role stamp, in the same call

def test_stamp_is_compared_in_the_same_call_and_never_counts_as_a_change(host, tmp_path_factory):
    area = tmp_path_factory.mktemp('account')
    home, stamp_path = area / 'home', str(area / 'stamps' / 'secrets-account.json')
    home.mkdir(mode=0o755)
    inputs = hashlib.sha256(b'the inputs of this run').hexdigest()
    spec = {'path': stamp_path, 'inputs': inputs, 'watch': {'paths': [str(home)]}}

    def write_stamp():  # what the role writes at the end of its full run (host_stamp state=present)
        if not os.path.isdir(os.path.dirname(stamp_path)):
            os.makedirs(os.path.dirname(stamp_path), 0o700)
        with open(stamp_path, 'w') as handle:
            json.dump({'version': _stamp.STAMP_VERSION, 'inputs': inputs, 'written': time.time(),
                       'valid_until': None, 'items': _stamp.Fingerprint(None).items({'paths': [str(home)]})}, handle)

    result = host.run(stamp=spec)
    assert result['stamp'] == {'converged': False, 'reasons': ['no stamp'], 'items': 1}
    assert inputs not in json.dumps(result)
    write_stamp()
    result = host.run(stamp=spec)
    assert not result['changed'] and result['stamp'] == {'converged': True, 'reasons': [], 'items': 1}
    # Other inputs: not converged, and the stale stamp goes.
    assert host.run(stamp=dict(spec, inputs='0' * 64))['stamp']['reasons'] == ['inputs changed']
    assert not os.path.exists(stamp_path)
    # A watched path that drifted: check mode reports it and only reads; a real run removes the stamp.
    write_stamp()
    os.chmod(str(home), 0o700)
    result = host.run(check=True, stamp=spec)
    assert result['stamp']['reasons'] == ['path %s changed' % home] and not result['changed']
    assert os.path.exists(stamp_path)
    assert not host.run(stamp=spec)['stamp']['converged']
    assert not os.path.exists(stamp_path)


def test_stamp_watch_is_checked_like_host_stamps(host, tmp_path_factory):
    area = tmp_path_factory.mktemp('watch')
    spec = {'path': str(area / 'stamp.json'), 'inputs': '0' * 64, 'watch': {'paths': [str(area)], 'bogus': [1]}}
    result = host.fail(stamp=spec)
    assert result['msg'].startswith('stamp.watch: ') and 'bogus' in result['msg']
    assert os.listdir(host.root) == []  # refused before any secret file was written
    spec['watch'] = {'commands': [{'ignore': ['x']}]}
    assert 'argv' in host.fail(stamp=spec)['msg']
    # Accepted and converted: a single path as a list, a command's output in the fingerprint.
    spec['watch'] = {'paths': str(area), 'commands': [{'argv': ['true']}]}
    assert host.run(stamp=spec)['stamp']['items'] == 2


# ---------------------------------------------------------------- the rotation journal

class Killed(Exception):
    """The run died here (SIGKILL, power loss): nothing after this write happened."""


def kill_after(monkeypatch, count):
    """Make the run die just before the ``count``-th filesystem operation of its apply."""
    original = _secret_store.Tree.apply

    def apply(self):
        for number, (op, path, args) in enumerate(self.ops, 1):
            if number == count:
                raise Killed()
            getattr(self, '_do_' + op)(path, args)
    monkeypatch.setattr(_secret_store.Tree, 'apply', apply)
    return lambda: monkeypatch.setattr(_secret_store.Tree, 'apply', original)


def operations(host, **args):
    """How many filesystem operations a run with ``args`` plans (in check mode: writes nothing)."""
    captured = {}
    original = _secret_store.SecretFiles.result

    def result(self):
        captured['ops'] = len(self.tree.ops)
        return original(self)
    with mock.patch.object(_secret_store.SecretFiles, 'result', result):
        host.run(check=True, **args)
    return captured['ops']


def consistent(host):
    """The store, state.json, the archive and the evidence agree (what 'nothing half-written' means)."""
    state = host.state()
    for name in ALL:
        assert state['secrets'][name]['fingerprint'] == fingerprint(host.store(name)), name
    for name, entries in state['archive'].items():
        for entry in entries:
            path = os.path.join(host.paths['archive_path'], name, entry['file'])
            with open(path) as handle:
                assert fingerprint(handle.read()) == entry['fingerprint'], path
        on_disk = sorted(os.listdir(os.path.join(host.paths['archive_path'], name)))
        assert on_disk == sorted(e['file'] for e in entries), (name, on_disk)
    for service in PROFILE['services']:
        for name in PROFILE['services'][service]['secrets']:
            assert host.view(service, name) == host.store(name), (service, name)


def test_rotation_opens_a_journal_that_stays_open_until_the_consumers_are_rolled(host):
    host.run()
    assert host.journal() is None
    old = fingerprint(host.store(HMAC))
    result = host.run(rotate=[HMAC], roll=False)
    journal = host.journal()
    assert journal['phase'] == 'applied' and 'planned' not in journal
    assert journal['secrets'] == {HMAC: {'old_fingerprint': old, 'new_fingerprint': fingerprint(host.store(HMAC)),
                                         'action': 'rotated', 'reason': 'forced'}}
    assert journal['restart'] == roll_order(PROFILE, [HMAC]) == result['restart']
    assert journal['sync'] == []
    assert result['journal']['id'] == journal['id']
    assert all(r['journal'] == journal['id'] for r in result['evidence'])
    # A run killed before the roll: the next plain run (a second later) changes no file but still
    # owes the restarts.
    with mock.patch.object(_secret_store, 'utcnow', lambda: parse_ts(journal['opened']) + datetime.timedelta(seconds=5)):
        again = host.run(roll=False)
    assert not again['changed'] and again['changed_secrets'] == []
    assert again['restart'] == journal['restart'] and again['journal']['id'] == journal['id']
    assert host.journal() == journal
    closed = _secret_store.close_journal(host.paths['archive_path'], journal['id'])
    assert closed['id'] == journal['id'] and host.journal() is None
    with open(os.path.join(host.paths['archive_path'], 'journals.jsonl')) as handle:
        history = [json.loads(line) for line in handle]
    assert history[-1]['id'] == journal['id'] and history[-1]['outcome'] == 'completed'
    assert mode_of(os.path.join(host.paths['archive_path'], 'journals.jsonl')) == 0o600
    assert host.run(roll=False)['restart'] == []


def test_a_second_change_extends_the_open_journal(host):
    host.run()
    first = fingerprint(host.store(HMAC))
    host.run(rotate=[HMAC], roll=False)
    host.run(rotate=[HMAC, 'caracalAdminToken'], roll=False)
    journal = host.journal()
    assert journal['secrets'][HMAC]['old_fingerprint'] == first  # the value before the whole change
    assert journal['secrets'][HMAC]['new_fingerprint'] == fingerprint(host.store(HMAC))
    assert journal['restart'] == roll_order(PROFILE, [HMAC, 'caracalAdminToken'])


def test_restore_goes_back_to_the_value_before_the_journal(host):
    host.run()
    original = host.store(HMAC)
    host.run(rotate=[HMAC], roll=False)
    host.run(rotate=[HMAC], roll=False)
    host.run(restore=[HMAC], roll=False)
    assert host.store(HMAC) == original
    journal = host.journal()
    assert journal['secrets'][HMAC]['old_fingerprint'] == journal['secrets'][HMAC]['new_fingerprint'] \
        == fingerprint(original)
    consistent(host)


def test_a_password_rotation_owes_its_datastore_sync(host):
    host.run()
    result = host.run(rotate=[PASSWORD], roll=False)
    assert result['journal']['sync'] == [PASSWORD]
    derived = [n for n in ALL if PASSWORD in (SPECS[n].get('derived_from') or [])]
    assert set(result['journal']['secrets']) == set([PASSWORD] + derived)


def test_close_refuses_another_runs_journal_and_a_half_written_one(host):
    host.run()
    host.run(rotate=[HMAC], roll=False)
    with pytest.raises(_secret_store.PlanError, match='not other-id'):
        _secret_store.close_journal(host.paths['archive_path'], 'other-id')
    journal = host.journal()
    journal['phase'] = 'prepared'
    with open(host.journal_path, 'w') as handle:
        json.dump(journal, handle)
    with pytest.raises(_secret_store.PlanError, match='still being written'):
        _secret_store.close_journal(host.paths['archive_path'], journal['id'])
    assert host.journal() == journal


def test_a_corrupt_journal_is_refused_and_kept(host):
    host.run()
    with open(host.journal_path, 'w') as handle:
        handle.write('{not json')
    before = host.snapshot()
    assert 'not a valid rotation journal' in host.fail()['msg']
    assert host.snapshot() == before


@pytest.mark.parametrize('names', [[HMAC, 'caracalAdminToken'], [PASSWORD]])
def test_killed_at_every_write_the_next_run_finishes_or_undoes_it(tmp_path, monkeypatch, names):
    pristine = Host(tmp_path / 'pristine')
    pristine.run()
    total = operations(pristine, rotate=names)
    assert total > 5
    for step in range(1, total + 1):
        host = Host(tmp_path / ('step%d' % step))
        shutil.copytree(pristine.root, host.root, symlinks=True)
        before = dict((n, host.store(n)) for n in ALL)
        evidence_before = len(host.evidence())
        restore_apply = kill_after(monkeypatch, step)
        with pytest.raises(Killed):
            host._invoke(dict(rotate=names), False, False)
        restore_apply()
        result = host.run(roll=False)  # the next plain run (scheduled, or a deploy)
        consistent(host)
        changed = [n for n in ALL if host.store(n) != before[n]]
        journal = host.journal()
        if step == 1:
            # Killed before the journal was written: nothing happened at all.
            assert changed == [] and journal is None and len(host.evidence()) == evidence_before
            continue
        assert journal is not None and journal['phase'] == 'applied', step
        assert set(journal['secrets']) == set(changed), step
        for name in changed:
            assert journal['secrets'][name]['old_fingerprint'] == fingerprint(before[name])
            archived = [e['fingerprint'] for e in host.state()['archive'].get(name, [])]
            if not is_derived(SPECS[name]):
                assert fingerprint(before[name]) in archived, (step, name)
            assert [r for r in host.evidence() if r['secret'] == name and r.get('journal') == journal['id']
                    and r['new_fingerprint'] == fingerprint(host.store(name))], (step, name)
        assert set(result['restart']) >= set(roll_order(PROFILE, changed)), step
        # Each record once, however often the run was resumed.
        keys = [(r['secret'], r['action'], r.get('journal')) for r in host.evidence() if r.get('journal')]
        assert len(keys) == len(set(keys)), step
        # Closing it leaves a host that a plain run finds converged.
        _secret_store.close_journal(host.paths['archive_path'])
        assert not host.run(roll=False)['changed'], step
