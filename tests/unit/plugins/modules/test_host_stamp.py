# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""caracal.hardened.host_stamp, run for real on a temporary tree.

systemctl and dpkg-query are replaced by a fake ``run_command`` that answers from a dict,
so that a test can change a unit's state or a package's version between two runs.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import stat

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.caracal.hardened.plugins.modules import host_stamp

INPUTS = 'a' * 64


class Exited(Exception):
    pass


class Failed(Exception):
    pass


def _exit(self, **result):
    NO_LOG[:] = list(self.no_log_values)
    raise Exited(result)


NO_LOG = []


def _fail(self, **result):
    raise Failed(result)


class FakeHost(object):
    """What systemctl, dpkg-query and other commands answer."""

    def __init__(self):
        self.units = {'nginx.service': {'LoadState': 'loaded', 'ActiveState': 'active', 'SubState': 'running',
                                        'UnitFileState': 'enabled', 'DropInPaths': ''}}
        self.packages = {'nginx': 'install ok installed 1.26.3-3'}
        self.outputs = {}
        self.calls = []

    def run_command(self, module, argv, **kwargs):
        self.calls.append(list(argv))
        if argv[0] == 'systemctl':
            units = argv[argv.index('--') + 1:]
            blocks = []
            for unit in units:
                props = self.units.get(unit, {'LoadState': 'not-found', 'ActiveState': 'inactive'})
                blocks.append('\n'.join('%s=%s' % item for item in sorted(props.items())))
            return 0, '\n\n'.join(blocks) + '\n', ''
        if argv[0] == 'dpkg-query':
            names = argv[argv.index('--') + 1:]
            lines = ['%s %s' % (n, self.packages[n]) for n in names if n in self.packages]
            return (0 if len(lines) == len(names) else 1), '\n'.join(lines) + '\n', ''
        key = ' '.join(argv)
        if key not in self.outputs:
            raise OSError(2, 'No such file or directory')
        return self.outputs[key]


@pytest.fixture
def fake(monkeypatch):
    host = FakeHost()
    monkeypatch.setattr(basic.AnsibleModule, 'exit_json', _exit)
    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', _fail)

    def run_command(module, argv, **kwargs):
        return host.run_command(module, argv, **kwargs)
    monkeypatch.setattr(basic.AnsibleModule, 'run_command', run_command)
    return host


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / 'etc'
    (root / 'conf.d').mkdir(parents=True)
    (root / 'main.conf').write_text(u'main\n')
    (root / 'conf.d' / 'a.conf').write_text(u'a\n')
    os.chmod(str(root / 'main.conf'), 0o640)
    return root


def run(args, check=False):
    args = dict(args)
    args['_ansible_check_mode'] = check
    with pytest.raises(Exited) as exc:
        with patch_module_args(args):
            host_stamp.main()
    return exc.value.args[0]


def fail(args):
    with pytest.raises(Failed) as exc:
        with patch_module_args(args):
            host_stamp.main()
    return exc.value.args[0]


def stamp_args(tmp_path, tree, **changes):
    args = {
        'path': str(tmp_path / 'stamps' / 'role.json'),
        'inputs': INPUTS,
        'watch': {'paths': [str(tree / 'main.conf'), str(tmp_path / 'absent')], 'trees': [str(tree / 'conf.d')],
                  'units': ['nginx.service'], 'packages': ['nginx'],
                  'commands': [{'argv': ['ss', '-ltn'], 'ignore': [r'pid=\d+']}]},
    }
    args.update(changes)
    return args


@pytest.fixture
def written(fake, tmp_path, tree):
    fake.outputs['ss -ltn'] = (0, 'LISTEN 0.0.0.0:443 pid=10\n', '')
    args = stamp_args(tmp_path, tree)
    result = run(dict(args, state='present'))
    assert result['changed'] is True and result['items'] == 7
    return args


def test_an_unchanged_host_is_converged(written, fake):
    result = run(written)
    assert result == dict(result, changed=False, converged=True, reasons=[], items=7)


def test_the_stamp_is_root_only_and_holds_no_content(written, tree):
    path = written['path']
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    text = open(path).read()
    assert 'main\n' not in text and 'LISTEN' not in text
    assert json.loads(text)['inputs'] == INPUTS


def test_the_inputs_digest_is_never_returned(written):
    result = run(dict(written, inputs='b' * 64))
    assert 'b' * 64 not in json.dumps(result) and INPUTS not in json.dumps(result)
    # no_log in the argument spec: Ansible masks the value in the invocation and every output.
    assert 'b' * 64 in NO_LOG
    assert result['reasons'] == ['inputs changed']


@pytest.mark.parametrize('drift,reason', [
    (lambda tree, fake: (tree / 'main.conf').write_text(u'edited\n'), 'path %(tree)s/main.conf changed'),
    (lambda tree, fake: os.chmod(str(tree / 'main.conf'), 0o644), 'path %(tree)s/main.conf changed'),
    (lambda tree, fake: (tree / 'conf.d' / 'b.conf').write_text(u'new\n'), 'path %(tree)s/conf.d/b.conf not in the stamp'),
    (lambda tree, fake: os.unlink(str(tree / 'conf.d' / 'a.conf')), 'path %(tree)s/conf.d/a.conf no longer watched'),
    (lambda tree, fake: os.symlink('/etc/passwd', str(tree / '..' / 'absent')), 'path %(tmp)s/absent changed'),
    (lambda tree, fake: fake.units['nginx.service'].update(ActiveState='failed'), 'unit nginx.service changed'),
    (lambda tree, fake: fake.units['nginx.service'].update(DropInPaths='/etc/x.conf'), 'unit nginx.service changed'),
    (lambda tree, fake: fake.packages.update(nginx='install ok installed 1.26.3-4'), 'package nginx changed'),
    (lambda tree, fake: fake.packages.pop('nginx'), 'package nginx changed'),
    (lambda tree, fake: fake.outputs.update({'ss -ltn': (0, 'LISTEN 0.0.0.0:80 pid=10\n', '')}), 'command ss -ltn changed'),
    (lambda tree, fake: fake.outputs.update({'ss -ltn': (1, 'LISTEN 0.0.0.0:443 pid=10\n', '')}), 'command ss -ltn changed'),
    (lambda tree, fake: fake.outputs.pop('ss -ltn'), 'command ss -ltn changed'),
], ids=['content', 'mode', 'new-entry', 'removed-entry', 'absent-appears', 'unit-state', 'unit-dropin', 'package-version',
        'package-removed', 'command-output', 'command-status', 'command-missing'])
def test_drift_is_named_and_removes_the_stamp(written, fake, tree, tmp_path, drift, reason):
    drift(tree, fake)
    result = run(written)
    assert result['converged'] is False
    assert result['reasons'] == [reason % {'tree': tree, 'tmp': tmp_path}]
    assert result['changed'] is True and not os.path.exists(written['path'])
    # Only a full run writes a new stamp: until then every run is a full one.
    assert run(written)['reasons'] == ['no stamp']


def test_ignored_parts_of_a_command_do_not_count(written, fake):
    fake.outputs['ss -ltn'] = (0, 'LISTEN 0.0.0.0:443 pid=4242\n', '')
    assert run(written)['converged'] is True


def test_check_mode_neither_removes_nor_writes(written, tree, fake, tmp_path):
    (tree / 'main.conf').write_text(u'edited\n')
    result = run(written, check=True)
    assert result['converged'] is False and result['changed'] is True
    assert os.path.exists(written['path'])
    other = str(tmp_path / 'stamps' / 'other.json')
    assert run(dict(written, path=other, state='present'), check=True)['changed'] is True
    assert not os.path.exists(other)


def test_max_age_makes_an_old_stamp_stale(written, monkeypatch):
    real = host_stamp.time.time
    monkeypatch.setattr(host_stamp.time, 'time', lambda: real() + 3600)
    assert run(dict(written, max_age=7200))['converged'] is True
    result = run(dict(written, max_age=600))
    assert result['converged'] is False and result['reasons'][0].startswith('last full run 3600 s ago')


def test_no_max_age(written, monkeypatch):
    real = host_stamp.time.time
    monkeypatch.setattr(host_stamp.time, 'time', lambda: real() + 10 * 365 * 86400)
    assert run(dict(written, max_age=0))['converged'] is True


def test_valid_until_the_earliest_recorded_date(fake, tmp_path, tree, monkeypatch):
    fake.outputs['ss -ltn'] = (0, '', '')
    args = stamp_args(tmp_path, tree)
    run(dict(args, state='present', valid_until=['2099-01-01T00:00:00Z', '20990101000000Z', 4070908800, '']))
    assert json.load(open(args['path']))['valid_until'] == 4070908800.0  # 2099-01-01
    assert run(dict(args, max_age=0))['converged'] is True
    monkeypatch.setattr(host_stamp.time, 'time', lambda: 4070908800.0)
    assert run(dict(args, max_age=0))['reasons'] == ['a recorded date has passed (renewal or rotation due)']


@pytest.mark.parametrize('value,expected', [
    ('1970-01-02T00:00:00Z', 86400.0), ('1970-01-02T00:00:00+00:00', 86400.0), ('19700102000000Z', 86400.0),
    (86400, 86400.0), ('86400', 86400.0), (None, None), ('', None)])
def test_moments(value, expected):
    assert host_stamp.parse_moment(value) == expected


def test_bad_arguments_fail_clearly(fake, tmp_path, tree):
    args = stamp_args(tmp_path, tree)
    assert 'cannot read' in fail(dict(args, state='present', valid_until=['next week']))['msg']
    assert 'max_age must be' in fail(dict(args, max_age=-1))['msg']
    assert 'inputs' in fail({'path': args['path']})['msg']


def test_absent_removes_the_stamp(written):
    assert run({'path': written['path'], 'state': 'absent'})['changed'] is True
    assert not os.path.exists(written['path'])
    assert run({'path': written['path'], 'state': 'absent'})['changed'] is False


def test_a_corrupt_or_foreign_stamp_is_never_trusted(written):
    with open(written['path'], 'w') as handle:
        handle.write('{not json')
    assert run(written)['reasons'] == ['stamp of another version']


def test_one_systemctl_and_one_dpkg_query_call_for_all_units_and_packages(written, fake):
    fake.units['cron.service'] = dict(fake.units['nginx.service'])
    fake.packages['cron'] = 'install ok installed 3.0'
    del fake.calls[:]
    args = dict(written)
    args['watch'] = dict(written['watch'], units=['nginx.service', 'cron.service'], packages=['nginx', 'cron'])
    run(dict(args, state='present'))
    assert [c[0] for c in fake.calls] == ['systemctl', 'dpkg-query', 'ss']
