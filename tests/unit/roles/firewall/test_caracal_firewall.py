# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""roles/firewall/files/caracal_firewall.py, the host helper of the firewall role, without a host.

The helper is loaded from its file. Nothing here runs nft, systemctl or systemd-run or resolves a
real name: every test gets a ``host`` (FakeHost) that answers the helper's ``_run``,
``socket.getaddrinfo``, its reads of the resolv.conf files and its clock, and keeps the state a
real host would (the live table, the rollback timer, the sets the refresh updates). State files
go to ``tmp_path``.

The plan inputs are the role's own: ``__caracal_firewall_plan_spec`` of roles/firewall/vars/main.yml
templated by Ansible with the role defaults (plus the variables a test sets), passed through JSON
as ``plan.yml`` does (``to_json``). The rendered ruleset is the role's templates rendered by the
``ansible.builtin.template`` lookup from the plan the helper printed. Only one test runs a real
``nft -c`` (check only), and only when nft can check here.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import errno
import fcntl
import functools
import hashlib
import importlib.util
import io
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import threading
import types

import pytest

from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import lookup_loader
from ansible.template import Templar

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..'))
ROLE = os.path.join(ROOT, 'roles', 'firewall')
HELPER = os.path.join(ROLE, 'files', 'caracal_firewall.py')


def _load_helper():
    spec = importlib.util.spec_from_file_location('caracal_firewall_helper_under_test', HELPER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fw = _load_helper()
REAL_RUN = fw._run
REAL_OPEN = open
NOW = 1700000000
STAMP = '2026-12-03T11:40:06+0000'
TIMER = fw.ROLLBACK_UNIT + '.timer'
T = 'inet caracal_filter'
HEAD = 'table inet caracal_filter\ndelete table inet caracal_filter\n'
LIVE = 'table inet caracal_filter {\n\tcomment "caracal.hardened firewall rev 00aa11bb22cc33dd"\n}\n'


class Killed(BaseException):
    """The helper stopped dead at a given command (SIGKILL, power loss): nothing after it runs."""


# --------------------------------------------------------------------------- the fake host

class FakeHost(object):
    """What the helper sees of a host: nft, systemd, the resolver, resolv.conf and the clock."""

    def __init__(self, tmp_path):
        bindir = tmp_path / 'bin'
        bindir.mkdir()
        self.bin = {}
        for name in ('nft', 'systemctl', 'systemd-run'):
            path = bindir / name
            path.write_text('#!/bin/sh\nexit 99\n')
            path.chmod(0o755)
            self.bin[name] = str(path)
        self.state_dir = str(tmp_path / 'state')
        self.persisted = str(tmp_path / 'ruleset.nft')
        self.calls = []           # (argv with the program's short name first, stdin)
        self.loaded = []          # texts nft -f loaded, in order
        self.table = None         # the stateless listing of the live table, None: no table
        self.reloadable = True    # nft -c accepts the listing (with the snapshot's head)
        self.check_err = None     # nft -c -f FILE rejects FILE with this message
        self.load_err = {}        # nft -f FILE (or '-') fails with this message
        self.arm_err = None       # systemd-run fails with this message
        self.kill_at = None       # raise Killed when a command starts with these words
        self.active = {}          # unit -> output of systemctl is-active (rc 0)
        self.enabled = {}         # unit -> output of systemctl is-enabled (rc 0)
        self.sets = {}            # set name -> elements nft -j lists
        self.names = {}           # host name -> addresses, or an exception to raise
        self.lookups = []         # getaddrinfo arguments
        self.resolv_conf = 'nameserver 192.0.2.53\n'
        self.upstream_conf = None

    # ---- subprocess

    def run(self, argv, stdin=None):
        short = dict((path, name) for name, path in self.bin.items())
        words = [short.get(argv[0], argv[0])] + list(argv[1:])
        self.calls.append((words, stdin))
        if self.kill_at and words[:len(self.kill_at)] == self.kill_at:
            raise Killed(' '.join(words))
        handler = getattr(self, '_' + words[0].replace('-', '_'), None)
        if handler is None:
            raise AssertionError('the helper ran an unexpected program: %r' % (argv,))
        return handler(words[1:], stdin)

    def _nft(self, args, stdin):
        if args[:3] == ['-s', 'list', 'table']:
            return (0, self.table, '') if self.table is not None else (1, '', 'Error: No such file or directory')
        if args[:3] == ['-j', 'list', 'set']:
            if args[5] not in self.sets:
                return 1, '', 'Error: No such file or directory'
            elems = self.sets[args[5]]
            body = {'family': args[3], 'name': args[5], 'table': args[4], 'type': 'ipv4_addr'}
            if elems:
                body['elem'] = elems
            return 0, json.dumps({'nftables': [{'metainfo': {'json_schema_version': 1}}, {'set': body}]}), ''
        if args[:2] == ['-c', '-f']:
            if args[2] == '-':
                return (0, '', '') if self.reloadable else (1, '', 'Error: syntax error, unexpected string')
            return (1, '', self.check_err) if self.check_err else (0, '', '')
        if args[0] == '-f':
            if args[1] in self.load_err:
                return 1, '', self.load_err[args[1]]
            if args[1] == '-':
                self.loaded.append(stdin)
                return 0, '', ''
            with REAL_OPEN(args[1]) as handle:
                text = handle.read()
            self.loaded.append(text)
            self.table = text
            return 0, '', ''
        raise AssertionError('unexpected nft call: %r' % (args,))

    def _systemctl(self, args, _stdin):
        verb, units = args[0], args[1:]
        if verb in ('is-active', 'is-enabled'):
            state = (self.active if verb == 'is-active' else self.enabled).get(units[0])
            return (0, state + '\n', '') if state else (3, 'inactive\n' if verb == 'is-active' else 'disabled\n', '')
        if verb == 'stop':
            for unit in units:
                self.active.pop(unit, None)
            return 0, '', ''
        if verb == 'reset-failed':
            return 0, '', ''
        raise AssertionError('unexpected systemctl call: %r' % (args,))

    def _systemd_run(self, _args, _stdin):
        if self.arm_err:
            return 1, '', self.arm_err
        self.active[TIMER] = 'active'
        return 0, 'Running timer as unit: %s\n' % TIMER, ''

    def commands(self):
        return [' '.join(words) for words, _stdin in self.calls]

    # ---- resolver, files, clock

    def getaddrinfo(self, name, port, family=0, type=0, proto=0, flags=0):
        self.lookups.append((name, port, family, type))
        found = self.names.get(name)
        if isinstance(found, BaseException):
            raise found
        if found is None:
            raise socket.gaierror(socket.EAI_NONAME, 'Name or service not known')
        infos = []
        for address in found:
            if ':' in address:
                infos.append((socket.AF_INET6, socket.SOCK_STREAM, 6, '', (address, 0, 0, 0)))
            else:
                infos.append((socket.AF_INET, socket.SOCK_STREAM, 6, '', (address, 0)))
        return infos

    def open(self, path, *args, **kwargs):
        text = {'/etc/resolv.conf': self.resolv_conf, '/run/systemd/resolve/resolv.conf': self.upstream_conf}
        if path not in text:
            return REAL_OPEN(path, *args, **kwargs)
        if text[path] is None:
            raise IOError(errno.ENOENT, 'No such file or directory', path)
        return io.StringIO(text[path])


@pytest.fixture(autouse=True)
def host(tmp_path, monkeypatch):
    """Every test: the helper talks to a FakeHost only (see the module docstring)."""
    fake = FakeHost(tmp_path)
    monkeypatch.setattr(fw, 'NFT', fake.bin['nft'])
    monkeypatch.setattr(fw, 'SYSTEMCTL', fake.bin['systemctl'])
    monkeypatch.setattr(fw, 'SYSTEMD_RUN', fake.bin['systemd-run'])
    monkeypatch.setattr(fw, '_run', fake.run)
    # The helper's own view of the socket module: the real one stays as it is (Ansible checks it).
    monkeypatch.setattr(fw, 'socket', types.SimpleNamespace(
        getaddrinfo=fake.getaddrinfo, gaierror=socket.gaierror,
        AF_INET=socket.AF_INET, AF_INET6=socket.AF_INET6, SOCK_STREAM=socket.SOCK_STREAM))
    monkeypatch.setattr(fw, 'open', fake.open, raising=False)
    monkeypatch.setattr(fw, 'time', types.SimpleNamespace(time=lambda: NOW + 0.75, strftime=lambda _fmt: STAMP))
    return fake


def remove_program(host, name):
    os.unlink(host.bin[name])


def read(path):
    """The text of ``path``, None when it does not exist."""
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        return handle.read()


def write(path, text):
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        os.makedirs(parent)
    with open(path, 'w') as handle:
        handle.write(text)


def cli(capsys, *argv):
    """Run the helper's main(); returns (rc, parsed stdout or None, stderr)."""
    rc = fw.main(list(argv))
    out, err = capsys.readouterr()
    return rc, (json.loads(out) if out.strip() else None), err


# --------------------------------------------------------------------------- the role's inputs

@functools.lru_cache(maxsize=None)
def _role_files():
    loader = DataLoader()
    merged = {'ansible_facts': {'env': {}}}
    for part in ('defaults', 'vars'):
        merged.update(loader.load_from_file(os.path.join(ROLE, part, 'main.yml'), trusted_as_template=True))
    return loader, merged


def role_vars(**overrides):
    """The role's defaults and vars as Ansible loads them (templates), plus ``overrides``.

    The base is a host the settings check accepts: admin sources set, and the controller's own
    address left out unless a test asks for it (caracal_firewall_keep_controller_ssh).
    """
    loader, files = _role_files()
    variables = dict(files, caracal_firewall_admin_sources=['192.0.2.0/24'], caracal_firewall_keep_controller_ssh=False)
    variables.update(overrides)
    return loader, variables


def role_spec(**overrides):
    """``__caracal_firewall_plan_spec | to_json`` as plan.yml hands it to the helper, parsed back."""
    loader, variables = role_vars(**overrides)
    return json.loads(json.dumps(Templar(loader=loader, variables=variables).template(variables['__caracal_firewall_plan_spec'])))


def plan(spec=None, **overrides):
    """The helper's plan of ``spec`` (default: the role's spec with ``overrides``), through JSON."""
    return json.loads(json.dumps(fw._Plan(role_spec(**overrides) if spec is None else spec).build()))


def groups(result, kind):
    return dict((g['key'], g) for g in result[kind])


def only_error(result):
    assert len(result['errors']) == 1, result['errors']
    return result['errors'][0]


def render(result, **overrides):
    """The role's ruleset for the plan ``result``, as plan.yml renders it: (body, revision, ruleset file)."""
    loader, variables = role_vars(__caracal_firewall_plan=result, **overrides)
    templar = Templar(loader=loader, variables=variables)
    lookup = lookup_loader.get('template', loader=loader, templar=templar)

    def template(name, extra):
        values = dict(variables, **extra)
        return str(lookup.run([os.path.join(ROLE, 'templates', name)], variables=values)[0])

    body = template('ruleset-body.nft.j2', {})
    revision = 'rev ' + hashlib.sha256(body.encode('utf-8')).hexdigest()[:16]
    ruleset = template('ruleset.nft.j2', {'__caracal_firewall_body': body, '__caracal_firewall_revision': revision})
    return body, revision, ruleset


def set_block(text, name):
    match = re.search(r'^\tset %s \{\n(.*?)^\t\}$' % re.escape(name), text, re.M | re.S)
    assert match, 'set %s is not in the ruleset' % name
    return match.group(1)


def chain_block(text, name):
    match = re.search(r'^\tchain %s \{\n(.*?)^\t\}$' % re.escape(name), text, re.M | re.S)
    assert match, 'chain %s is not in the ruleset' % name
    return [line.strip() for line in match.group(1).splitlines() if line.strip()]


# --------------------------------------------------------------------------- small helpers

def test_run_feeds_stdin_and_decodes_both_streams():
    code = 'import sys; sys.stdout.write(sys.stdin.read().upper()); sys.stderr.write("b\\xe4d"); sys.exit(3)'
    assert REAL_RUN([sys.executable, '-c', code], stdin='abc') == (3, 'ABC', 'b\xe4d')
    assert REAL_RUN([sys.executable, '-c', 'print("x")']) == (0, 'x\n', '')


def test_write_replaces_the_file_atomically_and_privately(tmp_path):
    (tmp_path / 'state').mkdir()
    path = str(tmp_path / 'state' / 'previous.nft')
    fw._write(path, 'old\n')
    fw._write(path, 'new\n')
    assert read(path) == 'new\n'
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.listdir(str(tmp_path / 'state')) == ['previous.nft']


def test_write_killed_before_the_rename_leaves_the_old_file_whole(tmp_path, monkeypatch):
    path = str(tmp_path / 'previous.nft')
    fw._write(path, 'confirmed ruleset\n')

    def killed(_fd):
        raise Killed('fsync')

    monkeypatch.setattr(fw.os, 'fsync', killed)
    with pytest.raises(Killed):
        fw._write(path, 'half written')
    assert read(path) == 'confirmed ruleset\n'


def test_remove_ignores_only_a_missing_file(tmp_path):
    fw._remove(str(tmp_path / 'absent'))
    (tmp_path / 'dir').mkdir()
    (tmp_path / 'dir' / 'f').write_text('x')
    with pytest.raises(OSError):
        fw._remove(str(tmp_path / 'dir'))


def test_state_dir_is_created_and_kept_private(tmp_path):
    fresh = str(tmp_path / 'a' / 'b')
    assert fw._state_dir(fresh) == fresh
    assert stat.S_IMODE(os.stat(fresh).st_mode) == 0o700
    loose = tmp_path / 'loose'
    loose.mkdir()
    loose.chmod(0o755)
    fw._state_dir(str(loose))
    assert stat.S_IMODE(os.stat(str(loose)).st_mode) == 0o700


def test_lock_serialises_the_commands(host):
    os.makedirs(host.state_dir)
    done = threading.Event()
    with open(os.path.join(host.state_dir, 'lock'), 'a') as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        worker = threading.Thread(target=lambda: (fw.cmd_confirm(argparse.Namespace(state_dir=host.state_dir)), done.set()))
        worker.start()
        assert not done.wait(0.3), 'confirm ran while another command held the lock'
        assert not os.path.exists(os.path.join(host.state_dir, 'confirmed'))
        fcntl.flock(held.fileno(), fcntl.LOCK_UN)
    assert done.wait(5)
    worker.join()
    assert os.path.exists(os.path.join(host.state_dir, 'confirmed'))


# --------------------------------------------------------------------------- addresses

@pytest.mark.parametrize('text, network, error', [
    ('10.0.0.0/8', '10.0.0.0/8', None),
    (' 192.0.2.1 ', '192.0.2.1/32', None),
    ('2001:db8::/32', '2001:db8::/32', None),
    ('0.0.0.0/0', '0.0.0.0/0', None),
    ('10.0.0.1/8', None, "'10.0.0.1/8' has host bits set (did you mean 10.0.0.0/8?)"),
    ('2001:db8::1/32', None, "'2001:db8::1/32' has host bits set (did you mean 2001:db8::/32?)"),
    ('10.0.0.0/33', None, None),
    ('api.example.com', None, None),
])
def test_parse_network(text, network, error):
    net, err = fw.parse_network(text)
    assert (str(net) if net else None, err) == (network, error)


def test_resolve_keeps_v4_and_v6_without_scope_or_duplicates(host, monkeypatch):
    infos = [
        (socket.AF_INET, socket.SOCK_STREAM, 6, '', ('192.0.2.1', 0)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, '', ('192.0.2.1', 0)),
        (socket.AF_INET6, socket.SOCK_STREAM, 6, '', ('fe80::1%eth0', 0, 0, 2)),
        (socket.AF_INET6, socket.SOCK_STREAM, 6, '', ('2001:db8::1', 0, 0, 0)),
        (getattr(socket, 'AF_UNIX', 1), socket.SOCK_STREAM, 0, '', '/ignored'),
    ]
    seen = []
    monkeypatch.setattr(fw.socket, 'getaddrinfo', lambda *args: seen.append(args) or infos)
    assert sorted(str(a) for a in fw.resolve('api.example.com')) == ['192.0.2.1', '2001:db8::1', 'fe80::1']
    assert seen == [('api.example.com', None, 0, socket.SOCK_STREAM)]


def test_resolve_lets_a_resolver_error_through(host):
    with pytest.raises(socket.gaierror):
        fw.resolve('nx.example')


def test_addresses_are_sorted_by_value_and_networks_collapsed():
    addresses = [fw.ipaddress.ip_address(a) for a in ('10.0.0.10', '2001:db8::a', '10.0.0.2', '2001:db8::9')]
    assert fw._split(addresses) == (['10.0.0.2', '10.0.0.10'], ['2001:db8::9', '2001:db8::a'])
    nets = [fw.ipaddress.ip_network(n) for n in ('10.0.0.128/25', '10.0.0.0/25', '10.0.0.0/24', '9.0.0.0/8', '::/0', '2001:db8::/32')]
    assert fw._collapse(nets) == (['9.0.0.0/8', '10.0.0.0/24'], ['::/0'])


@pytest.mark.parametrize('item, found', [
    ('192.0.2.1', '192.0.2.0/24'),
    ('2001:db8::1', '2001:db8::/32'),
    ('198.51.100.1', None),
    ('192.0.2.128/25', '192.0.2.0/24'),
    ('192.0.0.0/16', None),
    ('2001:db8::/31', None),
    ('2001:db8:1::/48', '2001:db8::/32'),
])
def test_inside_matches_addresses_and_networks_of_their_own_version(item, found):
    nets = [fw.ipaddress.ip_network(n) for n in ('2001:db8::/32', '192.0.2.0/24')]
    value = fw.ipaddress.ip_network(item) if '/' in item else fw.ipaddress.ip_address(item)
    hit = fw._inside(value, nets)
    assert (str(hit) if hit else None) == found


def test_overlaps_looks_at_the_same_version_only():
    nets = [fw.ipaddress.ip_network(n) for n in ('::/0', '10.0.0.0/8')]
    assert str(fw._overlaps(fw.ipaddress.ip_network('10.1.0.0/16'), nets)) == '10.0.0.0/8'
    assert str(fw._overlaps(fw.ipaddress.ip_network('0.0.0.0/0'), nets)) == '10.0.0.0/8'
    assert fw._overlaps(fw.ipaddress.ip_network('11.0.0.0/8'), nets) is None


@pytest.mark.parametrize('resolv_conf, upstream_conf, servers', [
    ('# comment\nsearch example.com\nnameserver 192.0.2.53\nnameserver  2001:db8::53\n', None, ['192.0.2.53', '2001:db8::53']),
    ('nameserver fe80::1%eth0\nnameserver bogus\nnameserver\n', None, ['fe80::1']),
    ('nameserver 127.0.0.53\noptions edns0\n', 'nameserver 192.0.2.1\nnameserver 192.0.2.2\n', ['192.0.2.1', '192.0.2.2']),
    ('nameserver 127.0.0.53\n', None, ['127.0.0.53']),
    ('nameserver 127.0.0.53\n', '# nothing\n', ['127.0.0.53']),
    ('nameserver 127.0.0.53\nnameserver 192.0.2.9\n', 'nameserver 192.0.2.1\n', ['127.0.0.53', '192.0.2.9']),
    (None, 'nameserver 192.0.2.1\n', []),
    ('', None, []),
])
def test_resolv_conf_servers_look_behind_a_loopback_stub(host, resolv_conf, upstream_conf, servers):
    host.resolv_conf, host.upstream_conf = resolv_conf, upstream_conf
    assert [str(s) for s in fw.resolv_conf_servers()] == servers


# --------------------------------------------------------------------------- live state

@pytest.mark.parametrize('listing, revision', [
    (None, None),
    ('', None),
    (LIVE, 'rev 00aa11bb22cc33dd'),
    ('table inet caracal_filter {\n}\n', 'unknown'),
])
def test_live_revision(listing, revision):
    assert fw.live_revision(listing) == revision


@pytest.mark.parametrize('state, active', [
    ('active', True), ('activating', True), ('reloading', True), (None, False), ('failed', False),
])
def test_unit_active(host, state, active):
    host.active['x.timer'] = state
    assert fw._unit_active('x.timer') is active


@pytest.mark.parametrize('state, enabled', [
    ('enabled', True), ('enabled-runtime', True), ('static', True), ('alias', True),
    ('masked', False), ('indirect', False), (None, False),
])
def test_unit_enabled(host, state, enabled):
    host.enabled['x.service'] = state
    assert fw._unit_enabled('x.service') is enabled


def test_status_without_nft_or_systemctl_runs_nothing(host):
    remove_program(host, 'nft')
    remove_program(host, 'systemctl')
    assert fw.status('inet', 'caracal_filter') == {'nft': False, 'table': False, 'revision': None, 'rollback_pending': False}
    assert host.calls == []


def test_status_cli_reads_the_given_table(host, capsys):
    host.table = LIVE
    host.active[TIMER] = 'active'
    rc, out, _err = cli(capsys, 'status', '--family', 'ip6', '--table', 'other')
    assert rc == 0
    assert out == {'nft': True, 'table': True, 'revision': 'rev 00aa11bb22cc33dd', 'rollback_pending': True}
    assert host.commands() == ['nft -s list table ip6 other', 'systemctl is-active ' + TIMER]


def test_main_needs_a_sub_command(capsys):
    with pytest.raises(SystemExit) as exc:
        fw.main([])
    assert exc.value.code == 2
    assert 'required' in capsys.readouterr().err


def test_apply_needs_an_integer_timeout(capsys):
    for argv in (['apply', 'candidate.nft'], ['apply', '--timeout', 'soon', 'candidate.nft']):
        with pytest.raises(SystemExit):
            fw.main(argv)
    assert 'timeout' in capsys.readouterr().err


# --------------------------------------------------------------------------- plan: the role's inputs

def test_plan_cli_prints_the_plan_as_sorted_json_and_changes_nothing(host, capsys):
    host.names['api.example.com'] = ['192.0.2.80']
    host.table = LIVE
    rc = fw.main(['plan', json.dumps(role_spec(caracal_upstream_allowlist=['api.example.com']))])
    out = capsys.readouterr().out
    assert rc == 0
    result = json.loads(out)
    assert out.strip() == json.dumps(result, sort_keys=True)
    assert sorted(result) == ['blocked', 'controller_added', 'egress', 'errors', 'ingress', 'live', 'resolve', 'warnings']
    assert result['errors'] == [] and result['live']['revision'] == 'rev 00aa11bb22cc33dd'
    assert host.commands() == ['systemctl is-enabled nftables.service', 'nft -s list table ' + T,
                               'systemctl is-active ' + TIMER]


def test_plan_cli_refuses_a_spec_that_is_not_json():
    with pytest.raises(ValueError):
        fw.main(['plan', '{not json'])


def test_plan_of_the_role_defaults(host):
    result = plan()
    assert result['errors'] == [] and result['warnings'] == [] and result['controller_added'] is False
    ingress = groups(result, 'ingress')
    assert list(ingress) == ['ssh', 'web']
    assert ingress['ssh'] == {'name': 'ssh', 'key': 'ssh', 'comment': 'SSH from the admin sources', 'protocols': ['tcp'],
                              'ports': [22], 'v4': ['192.0.2.0/24'], 'v6': []}
    assert (ingress['web']['ports'], ingress['web']['v4'], ingress['web']['v6']) == ([80, 443], ['0.0.0.0/0'], ['::/0'])
    egress = groups(result, 'egress')
    assert list(egress) == ['dns', 'ntp', 'mirror']
    assert (egress['dns']['protocols'], egress['dns']['ports'], egress['dns']['v4']) == (['tcp', 'udp'], [53], ['192.0.2.53/32'])
    assert (egress['ntp']['v4'], egress['ntp']['v6'], egress['ntp']['names']) == (['0.0.0.0/0'], ['::/0'], [])
    assert (egress['mirror']['ports'], egress['mirror']['v4'], egress['mirror']['v6']) == ([80, 443], [], [])
    assert result['resolve'] == {}


def test_plan_blocked_ranges_are_collapsed_with_the_extra_ones(host):
    result = plan(caracal_firewall_blocked_extra=['10.0.0.0/8', '169.254.169.0/24', '2001:db8:dead::/48'])
    assert result['blocked']['v4'] == ['10.0.0.0/8', '100.64.0.0/10', '127.0.0.0/8', '169.254.0.0/16', '224.0.0.0/4']
    assert '2001:db8:dead::/48' in result['blocked']['v6'] and 'fe80::/10' in result['blocked']['v6']
    assert len(result['blocked']['v6']) == 15


def test_plan_ports_given_as_strings_are_numbers_sorted_once(host):
    result = plan(caracal_firewall_ssh_port='2222', caracal_firewall_web_ports=[443, '443', ' 80 ', 8443])
    ingress = groups(result, 'ingress')
    assert (ingress['ssh']['ports'], ingress['web']['ports']) == ([2222], [80, 443, 8443])


def test_plan_without_ssh_restriction_or_web_sources(host):
    result = plan(caracal_firewall_ssh_restrict=False, caracal_firewall_admin_sources=[], caracal_firewall_web_sources=[])
    ingress = groups(result, 'ingress')
    assert result['errors'] == []
    assert (ingress['ssh']['v4'], ingress['ssh']['v6']) == (['0.0.0.0/0'], ['::/0'])
    assert (ingress['web']['ports'], ingress['web']['v4'], ingress['web']['v6']) == ([80, 443], [], [])


def test_plan_extra_rules_get_prefixed_keys_defaults_and_collapsed_networks(host):
    host.names['repo.example.org'] = ['192.0.2.40']
    result = plan(
        caracal_firewall_ingress_extra=[{'name': 'metrics', 'protocol': 'udp', 'ports': [9100],
                                         'sources': ['10.1.0.0/25', '10.1.0.128/25', '2001:db8::/64', '10.1.0.7']}],
        caracal_firewall_egress_extra=[{'name': 'repo', 'ports': [8080], 'comment': 'the repo (port 8080)',
                                        'destinations': ['repo.example.org', '198.51.100.0/24']}])
    assert result['errors'] == []
    metrics = groups(result, 'ingress')['in_metrics']
    assert metrics == {'name': 'metrics', 'key': 'in_metrics', 'comment': 'caracal_firewall_ingress_extra[metrics]',
                       'protocols': ['udp'], 'ports': [9100], 'v4': ['10.1.0.0/24'], 'v6': ['2001:db8::/64']}
    repo = groups(result, 'egress')['out_repo']
    assert (repo['protocols'], repo['comment'], repo['v4'], repo['names'], repo['dns_v4'], repo['dns_v6']) == \
        (['tcp'], 'the repo (port 8080)', ['198.51.100.0/24'], ['repo.example.org'], ['192.0.2.40'], [])
    assert result['resolve'] == {'out_repo': ['repo.example.org']}


# --------------------------------------------------------------------------- plan: host names

def test_plan_resolves_names_on_the_host_into_dns_sets(host):
    host.names.update({'API.example.com.': ['192.0.2.10', '2001:db8::10'], 'api.example.com': ['192.0.2.2', '192.0.2.10'],
                       'mirror.example.net': ['2001:db8::20']})
    result = plan(caracal_firewall_package_mirrors=['mirror.example.net', '203.0.113.0/24', '2001:db8:1::/48'],
                  caracal_upstream_allowlist=['API.example.com.', 'api.example.com', 'api.example.com', '192.0.2.99'])
    assert result['errors'] == [] and result['warnings'] == []
    egress = groups(result, 'egress')
    upstream = egress['upstream']
    assert (upstream['names'], upstream['dns_v4'], upstream['dns_v6']) == \
        (['api.example.com'], ['192.0.2.2', '192.0.2.10'], ['2001:db8::10'])
    assert (upstream['v4'], upstream['ports'], upstream['comment']) == \
        (['192.0.2.99/32'], [443], 'gateway upstreams (UPSTREAM_HOST_ALLOWLIST)')
    mirror = egress['mirror']
    assert (mirror['names'], mirror['v4'], mirror['v6'], mirror['dns_v4'], mirror['dns_v6']) == \
        (['mirror.example.net'], ['203.0.113.0/24'], ['2001:db8:1::/48'], [], ['2001:db8::20'])
    assert result['resolve'] == {'mirror': ['mirror.example.net'], 'upstream': ['api.example.com']}
    assert set(host.lookups) == {(n, None, 0, socket.SOCK_STREAM) for n in ('API.example.com.', 'api.example.com', 'mirror.example.net')}


def test_plan_upstream_allowlist_as_the_gateway_writes_it(host):
    """host, host:port, [v6]:port, as a list or a comma-separated string: one rule per explicit port."""
    host.names.update({'api.example.com': ['192.0.2.1'], 'cdn.example.net': ['192.0.2.2', '2001:db8::2']})
    allowlist = ' api.example.com , cdn.example.net:8443,[2001:db8::5]:8443, 192.0.2.10:443 ,2001:db8::7,,'
    result = plan(caracal_upstream_allowlist=allowlist)
    assert result['errors'] == []
    egress = groups(result, 'egress')
    assert [k for k in egress if k.startswith('upstream')] == ['upstream', 'upstream_443', 'upstream_8443']
    assert (egress['upstream']['names'], egress['upstream']['v6'], egress['upstream']['ports']) == \
        (['api.example.com'], ['2001:db8::7/128'], [443])
    assert (egress['upstream_443']['v4'], egress['upstream_443']['names'], egress['upstream_443']['ports']) == (['192.0.2.10/32'], [], [443])
    port_rule = egress['upstream_8443']
    assert (port_rule['ports'], port_rule['names'], port_rule['v6'], port_rule['dns_v4'], port_rule['dns_v6']) == \
        ([8443], ['cdn.example.net'], ['2001:db8::5/128'], ['192.0.2.2'], ['2001:db8::2'])
    assert port_rule['comment'] == 'gateway upstreams (UPSTREAM_HOST_ALLOWLIST), port 8443'
    assert result['resolve'] == {'upstream': ['api.example.com'], 'upstream_8443': ['cdn.example.net']}


def test_plan_upstream_with_explicit_ports_only_has_no_plain_rule(host):
    result = plan(caracal_upstream_allowlist=['192.0.2.1:8443'])
    assert [k for k in groups(result, 'egress') if k.startswith('upstream')] == ['upstream_8443']


def test_plan_host_port_in_an_extra_rule(host):
    result = plan(caracal_firewall_egress_extra=[{'name': 'smtp', 'ports': [25], 'host_port': True,
                                                  'destinations': ['192.0.2.25', '192.0.2.26:587']}])
    egress = groups(result, 'egress')
    assert (egress['out_smtp']['ports'], egress['out_smtp']['v4']) == ([25], ['192.0.2.25/32'])
    assert (egress['out_smtp_587']['ports'], egress['out_smtp_587']['v4']) == ([587], ['192.0.2.26/32'])
    assert egress['out_smtp_587']['comment'] == 'caracal_firewall_egress_extra[smtp], port 587'


def test_plan_private_ranges_are_not_blocked(host):
    host.names['db.internal'] = ['10.20.30.40', 'fd12:3456::1']
    result = plan(caracal_upstream_allowlist=['db.internal', '172.16.0.0/12', '192.168.1.0/24'])
    upstream = groups(result, 'egress')['upstream']
    assert result['errors'] == [] and result['warnings'] == []
    assert (upstream['v4'], upstream['dns_v4'], upstream['dns_v6']) == (['172.16.0.0/12', '192.168.1.0/24'], ['10.20.30.40'], ['fd12:3456::1'])


def test_plan_warns_about_destinations_inside_the_blocked_ranges(host):
    host.names['metadata.example'] = ['169.254.169.254', '192.0.2.1']
    result = plan(caracal_upstream_allowlist=['metadata.example', '100.64.0.0/16', '0.0.0.0/0', '::/0', 'fd00:ec2::254'])
    assert result['errors'] == []
    assert result['warnings'] == [
        'caracal_firewall_upstream_hosts: metadata.example resolves to 169.254.169.254 inside the always-blocked range '
        '169.254.0.0/16; traffic to it stays blocked',
        'caracal_firewall_upstream_hosts: 100.64.0.0/16 overlaps the always-blocked range 100.64.0.0/10; that part stays blocked',
        'caracal_firewall_upstream_hosts: fd00:ec2::254/128 overlaps the always-blocked range fd00:ec2::/32; that part stays blocked',
    ]
    assert groups(result, 'egress')['upstream']['dns_v4'] == ['169.254.169.254', '192.0.2.1']


def test_plan_ingress_sources_inside_the_blocked_ranges_give_no_warning(host):
    result = plan(caracal_firewall_admin_sources=['169.254.0.0/16', '127.0.0.1'])
    assert result['warnings'] == [] and result['errors'] == []


# --------------------------------------------------------------------------- plan: errors

NAME_PATTERN = fw.NAME_RE.pattern
NO_NAMES = "%s: '%s' is not an IP address or network (host names are not accepted here)"
NOT_A_NAME = "%s: '%s' is neither an IP address, a network nor a valid host name"
BAD_PORT = "%s: '%s' has an invalid port"
BAD_COMMENT = 'the comment of rule %s may only hold letters, digits, spaces and _ . , : / ( ) [ ] + @ = - (1 to 120 characters)'


@pytest.mark.parametrize('setting, entry, message', [
    ('caracal_firewall_admin_sources', ' ', '%s: empty entry'),
    ('caracal_firewall_admin_sources', '192.0.2.1/24', "%s: '%s' has host bits set (did you mean 192.0.2.0/24?)"),
    ('caracal_firewall_blocked_extra', '10.0.0.1/8', "%s: '%s' has host bits set (did you mean 10.0.0.0/8?)"),
    ('caracal_firewall_blocked_extra', 'internal.example', "%s: '%s' is not an IP address or network"),
    ('caracal_firewall_admin_sources', 'bastion.example.com', NO_NAMES),
    ('caracal_firewall_web_sources', '2001:db8::/129', NO_NAMES),
    ('caracal_firewall_dns_resolvers', 'dns.example.com', NO_NAMES),
    ('caracal_firewall_ntp_servers', '10.0.0.0/33', NOT_A_NAME),
    ('caracal_firewall_package_mirrors', 'bad_host!.example', NOT_A_NAME),
    ('caracal_firewall_package_mirrors', '-lead.example', NOT_A_NAME),
    ('caracal_firewall_package_mirrors', 'a' * 64 + '.example', NOT_A_NAME),
    ('caracal_firewall_upstream_hosts', 'nx.example', "%s: host name '%s' does not resolve on this host (Name or service not known)"),
    ('caracal_firewall_upstream_hosts', 'v4only.example:http', BAD_PORT),
    ('caracal_firewall_upstream_hosts', '192.0.2.1:0', BAD_PORT),
    ('caracal_firewall_upstream_hosts', '192.0.2.1:65536', BAD_PORT),
    ('caracal_firewall_upstream_hosts', '[2001:db8::1]:', BAD_PORT),
])
def test_plan_rejects_an_entry(host, setting, entry, message):
    """Each entry is judged where it is written, and the error names the setting and the entry."""
    host.names['v4only.example'] = ['192.0.2.1']
    overrides = {setting: ['192.0.2.0/24', entry] if setting == 'caracal_firewall_admin_sources' else [entry]}
    assert only_error(plan(**overrides)) == message.replace('%s', setting, 1).replace('%s', entry, 1)


@pytest.mark.parametrize('kind, comment', [
    ('ingress', 'say "hi"; accept'),
    ('egress', 'line\nbreak'),
    ('egress', ''),
    ('egress', 'x' * 121),
    ('ingress', 'caf\xe9'),
])
def test_plan_rejects_a_comment_nft_could_misread(host, kind, comment):
    result = plan(**{'caracal_firewall_%s_extra' % kind: [{'name': 'app', 'ports': [1], 'comment': comment}]})
    assert only_error(result) == BAD_COMMENT % ('in_app' if kind == 'ingress' else 'out_app')


@pytest.mark.parametrize('overrides, error', [
    ({'caracal_firewall_admin_sources': '192.0.2.0/24'},
     "caracal_firewall_admin_sources: expected a list, got '192.0.2.0/24'"),
    ({'caracal_firewall_ingress_extra': 'app'}, 'caracal_firewall_ingress_extra: expected a list'),
    ({'caracal_firewall_egress_extra': {'name': 'app'}}, 'caracal_firewall_egress_extra: expected a list'),
    ({'caracal_firewall_ingress_extra': ['app']}, "caracal_firewall_ingress_extra[0]: expected a dictionary, got 'app'"),
    ({'caracal_firewall_ingress_extra': [{'name': 'App', 'ports': [1]}]},
     "caracal_firewall_ingress_extra[App]: name 'App' must match %s (it becomes an nft set name)" % NAME_PATTERN),
    ({'caracal_firewall_egress_extra': [{'ports': [1]}]},
     "caracal_firewall_egress_extra[0]: name '' must match %s (it becomes an nft set name)" % NAME_PATTERN),
    ({'caracal_firewall_egress_extra': [{'name': 'a' * 25, 'ports': [1]}]},
     "caracal_firewall_egress_extra[%s]: name '%s' must match %s (it becomes an nft set name)" % ('a' * 25, 'a' * 25, NAME_PATTERN)),
    ({'caracal_firewall_ingress_extra': [{'name': 'ssh', 'ports': [2222]}]},
     "caracal_firewall_ingress_extra[ssh]: name 'ssh' is reserved by the role"),
    ({'caracal_firewall_egress_extra': [{'name': 'blocked', 'ports': [1]}]},
     "caracal_firewall_egress_extra[blocked]: name 'blocked' is reserved by the role"),
    ({'caracal_firewall_ingress_extra': [{'name': 'app', 'ports': [1]}, {'name': 'app', 'ports': [2]}]},
     "caracal_firewall_ingress_extra[app]: the name 'app' is used twice"),
    ({'caracal_firewall_ingress_extra': [{'name': 'app', 'ports': [1], 'protocols': ['tcp', 'icmp']}]},
     "caracal_firewall_ingress_extra[app]: protocol 'icmp' is not one of tcp, udp"),
    ({'caracal_firewall_egress_extra': [{'name': 'app', 'ports': [1], 'protocol': 'sctp'}]},
     "caracal_firewall_egress_extra[app]: protocol 'sctp' is not one of tcp, udp"),
    ({'caracal_firewall_upstream_ports': [], 'caracal_upstream_allowlist': ['192.0.2.1', '192.0.2.2:8443']},
     'gateway upstreams (UPSTREAM_HOST_ALLOWLIST): at least one port is required'),
    ({'caracal_firewall_ssh_port': 70000}, 'SSH from the admin sources: port 70000 is not an integer between 1 and 65535'),
    ({'caracal_firewall_ingress_extra': [{'name': 'app', 'sources': ['192.0.2.1']}]},
     'caracal_firewall_ingress_extra[app]: at least one port is required'),
    ({'caracal_firewall_ingress_extra': [{'name': 'app', 'ports': '443'}]}, 'caracal_firewall_ingress_extra[app]: at least one port is required'),
    ({'caracal_firewall_keep_controller_ssh': True, 'caracal_firewall_controller_source': 'laptop.example'},
     "the controller source 'laptop.example' is not an IP address"),
])
def test_plan_error(host, overrides, error):
    assert only_error(plan(**overrides)) == error


@pytest.mark.parametrize('port', [0, 65536, -1, 'http', '22/tcp', True, 22.5, None, [22]])
def test_plan_bad_port(host, port):
    result = plan(caracal_firewall_ingress_extra=[{'name': 'app', 'ports': [80, port]}])
    assert only_error(result) == 'caracal_firewall_ingress_extra[app]: port %r is not an integer between 1 and 65535' % (port,)
    assert 'in_app' not in groups(result, 'ingress')


@pytest.mark.parametrize('failure, reason', [
    (socket.gaierror(socket.EAI_AGAIN, 'Temporary failure in name resolution'), 'Temporary failure in name resolution'),
    (UnicodeError('label too long'), 'label too long'),
])
def test_plan_names_the_setting_and_host_that_do_not_resolve(host, failure, reason):
    host.names.update({'flaky.example': failure, 'good.example': ['192.0.2.7']})
    result = plan(caracal_firewall_package_mirrors=['good.example', 'flaky.example'])
    assert only_error(result) == \
        "caracal_firewall_package_mirrors: host name 'flaky.example' does not resolve on this host (%s)" % reason
    assert groups(result, 'egress')['mirror']['names'] == ['good.example']


def test_plan_name_without_any_ip_address(host, monkeypatch):
    monkeypatch.setattr(fw.socket, 'getaddrinfo', lambda *args: [(getattr(socket, 'AF_UNIX', 1), socket.SOCK_STREAM, 0, '', '')])
    result = plan(caracal_firewall_package_mirrors=['odd.example'])
    assert only_error(result) == "caracal_firewall_package_mirrors: host name 'odd.example' resolves to no IPv4 or IPv6 address"


def test_plan_reports_every_error_at_once(host):
    result = plan(caracal_firewall_admin_sources=['192.0.2.1/24', 'bastion'], caracal_upstream_allowlist=['nx.example'],
                  caracal_firewall_ingress_extra=[{'name': 'x', 'ports': [0]}])
    assert len(result['errors']) == 4
    assert [e.split(':')[0] for e in result['errors']] == [
        'caracal_firewall_admin_sources', 'caracal_firewall_admin_sources', 'caracal_firewall_ingress_extra[x]',
        'caracal_firewall_upstream_hosts']


def test_plan_comment_may_use_every_allowed_character(host):
    comment = 'Az09 _.,:/()[]+@=-' + 'x' * 102
    result = plan(caracal_firewall_ingress_extra=[{'name': 'app', 'ports': [1], 'comment': comment}])
    assert result['errors'] == [] and groups(result, 'ingress')['in_app']['comment'] == comment


def test_networks_and_service_on_their_own():
    checker = fw._Plan({'reserved': ['ssh']})
    nets, resolved, hosts = checker.networks('label', None)
    assert (nets, resolved, hosts) == ([], set(), [])
    assert checker.service('label', {'name': 'ssh', 'ports': ['22']}, True) == {'name': 'ssh', 'protocols': ['tcp'], 'ports': [22]}
    assert checker.service('label', {'name': 'x', 'ports': [1], 'protocols': ['udp', 'udp', 'tcp']}, False)['protocols'] == ['tcp', 'udp']
    assert checker.errors == ['label: expected a list, got None']


# --------------------------------------------------------------------------- plan: DNS from resolv.conf

@pytest.mark.parametrize('resolv_conf, upstream_conf, v4, v6, warning', [
    ('nameserver 192.0.2.53\nnameserver 2001:db8::53\nnameserver 127.0.0.1\n', None, ['192.0.2.53/32'], ['2001:db8::53/128'], None),
    ('nameserver 127.0.0.53\n', 'nameserver 192.0.2.1\n', ['192.0.2.1/32'], [], None),
    ('nameserver 127.0.0.53\n', None, [], [],
     'caracal_firewall_dns_resolvers: the host resolves through a loopback resolver only; its upstream '
     'servers are unknown, so no DNS egress is opened. Set it explicitly.'),
    ('search example.com\n', None, [], [],
     'caracal_firewall_dns_resolvers: /etc/resolv.conf lists no name server; no DNS egress is opened.'),
])
def test_plan_dns_egress_defaults_to_the_hosts_resolvers(host, resolv_conf, upstream_conf, v4, v6, warning):
    host.resolv_conf, host.upstream_conf = resolv_conf, upstream_conf
    result = plan()
    dns = groups(result, 'egress')['dns']
    assert (dns['v4'], dns['v6'], dns['names']) == (v4, v6, [])
    assert result['warnings'] == ([warning] if warning else [])


def test_plan_explicit_dns_resolvers_replace_resolv_conf(host):
    host.resolv_conf = None
    result = plan(caracal_firewall_dns_resolvers=['9.9.9.9', '2620:fe::fe'])
    dns = groups(result, 'egress')['dns']
    assert (dns['v4'], dns['v6'], result['warnings']) == (['9.9.9.9/32'], ['2620:fe::fe/128'], [])


# --------------------------------------------------------------------------- plan: controller and live state

@pytest.mark.parametrize('source, ssh_client, v4, v6, added', [
    ('198.51.100.7', '', ['192.0.2.0/24', '198.51.100.7/32'], [], True),
    ('', '198.51.100.7 50122 22', ['192.0.2.0/24', '198.51.100.7/32'], [], True),
    ('', '192.0.2.9 50122 22', ['192.0.2.0/24'], [], False),
    ('fe80::5%eth0', '', ['192.0.2.0/24'], ['fe80::5/128'], True),
    ('', '', ['192.0.2.0/24'], [], False),
])
def test_plan_keeps_the_controller_admitted(host, source, ssh_client, v4, v6, added):
    env = {'SSH_CLIENT': ssh_client} if ssh_client else {}
    result = plan(caracal_firewall_keep_controller_ssh=True, caracal_firewall_controller_source=source, ansible_facts={'env': env})
    ssh = groups(result, 'ingress')['ssh']
    assert (ssh['v4'], ssh['v6'], result['controller_added']) == (v4, v6, added)
    if added:
        address = v4[-1] if not v6 else v6[0]
        assert result['warnings'] == [
            'the controller connects from %s, which caracal_firewall_admin_sources does not cover: it was added so this run cannot '
            'lock itself out. Add it there, or set caracal_firewall_keep_controller_ssh: false.' % address.split('/')[0]]
    else:
        assert result['warnings'] == []


def test_plan_controller_is_not_added_when_switched_off_or_ssh_is_invalid(host):
    off = plan(caracal_firewall_controller_source='198.51.100.7')
    broken = plan(caracal_firewall_keep_controller_ssh=True, caracal_firewall_controller_source='198.51.100.7',
                  caracal_firewall_ssh_port=0)
    assert groups(off, 'ingress')['ssh']['v4'] == ['192.0.2.0/24'] and off['controller_added'] is False
    assert 'ssh' not in groups(broken, 'ingress') and broken['controller_added'] is False


def test_plan_reports_the_live_state_and_debians_nftables_service(host):
    host.table = 'table inet caracal_filter {\n}\n'
    host.active[TIMER] = 'active'
    host.enabled['nftables.service'] = 'enabled'
    result = plan()
    assert result['live'] == {'nft': True, 'table': True, 'revision': 'unknown', 'rollback_pending': True}
    assert result['warnings'] == [
        "Debian's nftables.service is enabled: restarting or reloading it runs 'flush ruleset' from /etc/nftables.conf, "
        "which also removes Docker's rules (caracal-firewall.service then reloads its own table)."]


def test_plan_uses_the_family_and_table_of_the_spec(host):
    spec = role_spec()
    spec.update(family='ip', table='other')
    plan(spec)
    assert 'nft -s list table ip other' in host.commands()


# --------------------------------------------------------------------------- the rendered ruleset

@pytest.fixture
def representative(host):
    """A plan with every kind of group: sources, destinations, names, explicit ports, an extra rule."""
    host.names.update({'api.example.com': ['192.0.2.80', '2001:db8::80'], 'cdn.example.net': ['192.0.2.81']})
    result = plan(caracal_firewall_admin_sources=['192.0.2.0/24', '2001:db8:ad::/48'],
                  caracal_firewall_dns_resolvers=['192.0.2.53'],
                  caracal_upstream_allowlist='api.example.com, cdn.example.net:8443',
                  caracal_firewall_ingress_extra=[{'name': 'metrics', 'protocols': ['tcp', 'udp'], 'ports': [9100, 9101],
                                                   'sources': ['10.0.0.0/8'], 'comment': 'metrics (scrapers)'}])
    assert result['errors'] == []
    return result


def test_ruleset_replaces_only_its_own_table_with_a_revision(representative):
    body, revision, ruleset = render(representative)
    assert re.match(r'\Arev [0-9a-f]{16}\Z', revision)
    lines = [line for line in ruleset.splitlines() if line and not line.startswith('#')]
    assert lines[:4] == ['table inet caracal_filter', 'delete table inet caracal_filter', 'table inet caracal_filter {',
                         '\tcomment "caracal.hardened firewall %s"' % revision]
    assert lines[-1] == '}' and body.strip() in ruleset
    assert 'flush ruleset' not in ruleset
    assert re.findall(r'^(?:delete )?table (.*)$', ruleset, re.M) == ['inet caracal_filter', 'inet caracal_filter', 'inet caracal_filter {']
    assert fw.live_revision(ruleset) == revision
    assert render(representative) == (body, revision, ruleset)


def test_ruleset_base_chains_drop_by_default(representative):
    _body, _revision, ruleset = render(representative)
    hooks = re.findall(r'^\t\ttype filter hook (\w+) priority ([^;]+); policy (\w+);$', ruleset, re.M)
    assert hooks == [('input', 'filter', 'drop'), ('output', 'filter', 'drop'), ('forward', 'filter - 5', 'drop')]
    for chain, last in (('input', 'input'), ('output', 'output'), ('forward', 'forward'),
                        ('container_egress', 'container-egress'), ('container_ingress', 'container-ingress')):
        rules = chain_block(ruleset, chain)
        assert rules[-1] == 'counter drop comment "%s: default drop"' % last
        assert rules[-2] == 'limit rate 10/minute log prefix "caracal-fw %s drop: " level info' % last
    assert 'jump ingress' in chain_block(ruleset, 'input') and 'jump egress' in chain_block(ruleset, 'output')
    assert chain_block(ruleset, 'container_ingress')[0] == 'ct status dnat jump published'


def test_ruleset_ingress_allow_rules(representative):
    _body, _revision, ruleset = render(representative)
    assert set_block(ruleset, 'ssh_src_v4').split() == ['type', 'ipv4_addr', 'flags', 'interval', 'elements', '=', '{', '192.0.2.0/24', '}']
    assert 'elements = { 2001:db8:ad::/48 }' in set_block(ruleset, 'ssh_src_v6')
    assert 'elements = { 10.0.0.0/8 }' in set_block(ruleset, 'in_metrics_src_v4')
    assert 'set in_metrics_src_v6' not in ruleset
    assert chain_block(ruleset, 'ingress') == [
        'meta l4proto tcp th dport 22 ip saddr @ssh_src_v4 accept comment "SSH from the admin sources"',
        'meta l4proto tcp th dport 22 ip6 saddr @ssh_src_v6 accept comment "SSH from the admin sources"',
        'meta l4proto tcp th dport { 80, 443 } ip saddr @web_src_v4 accept comment "web edge (HTTPS and the redirect to it)"',
        'meta l4proto tcp th dport { 80, 443 } ip6 saddr @web_src_v6 accept comment "web edge (HTTPS and the redirect to it)"',
        'meta l4proto { tcp, udp } th dport { 9100, 9101 } ip saddr @in_metrics_src_v4 accept comment "metrics (scrapers)"',
    ]
    published = chain_block(ruleset, 'published')
    assert len(published) == 2 + 4 + 4
    assert 'meta l4proto udp ct original proto-dst 9101 ip saddr @in_metrics_src_v4 accept comment "metrics (scrapers)"' in published


def test_ruleset_egress_allowlist_sets(representative):
    _body, _revision, ruleset = render(representative)
    assert 'elements = { 100.64.0.0/10, 127.0.0.0/8, 169.254.0.0/16, 224.0.0.0/4 }' in set_block(ruleset, 'blocked_v4')
    assert 'fe80::/10' in set_block(ruleset, 'blocked_v6')
    assert 'elements = { 192.0.2.53 }' not in ruleset and 'elements = { 192.0.2.53/32 }' in set_block(ruleset, 'dns_dst_v4')
    resolved = set_block(ruleset, 'upstream_dns_v4')
    assert 'elements = { 192.0.2.80 }' in resolved and 'interval' not in resolved
    assert 'elements = { 2001:db8::80 }' in set_block(ruleset, 'upstream_dns_v6')
    assert set_block(ruleset, 'upstream_8443_dns_v6').split() == ['type', 'ipv6_addr']
    assert '\t# Resolved from: api.example.com (refreshed by caracal-firewall-refresh.timer)\n' in ruleset
    egress = chain_block(ruleset, 'egress')
    assert egress[:2] == ['ip daddr @blocked_v4 counter drop comment "always blocked"',
                          'ip6 daddr @blocked_v6 counter drop comment "always blocked"']
    assert egress[4:] == [
        'meta l4proto { tcp, udp } th dport 53 ip daddr @dns_dst_v4 accept comment "DNS to the resolvers"',
        'meta l4proto udp th dport 123 ip daddr @ntp_dst_v4 accept comment "NTP"',
        'meta l4proto udp th dport 123 ip6 daddr @ntp_dst_v6 accept comment "NTP"',
        'meta l4proto tcp th dport 443 ip daddr @upstream_dns_v4 accept comment "gateway upstreams (UPSTREAM_HOST_ALLOWLIST) (resolved)"',
        'meta l4proto tcp th dport 443 ip6 daddr @upstream_dns_v6 accept comment "gateway upstreams (UPSTREAM_HOST_ALLOWLIST) (resolved)"',
        'meta l4proto tcp th dport 8443 ip daddr @upstream_8443_dns_v4 accept comment '
        '"gateway upstreams (UPSTREAM_HOST_ALLOWLIST), port 8443 (resolved)"',
        'meta l4proto tcp th dport 8443 ip6 daddr @upstream_8443_dns_v6 accept comment '
        '"gateway upstreams (UPSTREAM_HOST_ALLOWLIST), port 8443 (resolved)"',
    ]


def test_ruleset_declares_every_set_the_refresh_updates(representative):
    _body, _revision, ruleset = render(representative)
    declared = set(re.findall(r'^\tset (\S+) \{$', ruleset, re.M))
    wanted = set('%s_dns_%s' % (key, suffix) for key in representative['resolve'] for suffix in ('v4', 'v6'))
    assert wanted == {'upstream_dns_v4', 'upstream_dns_v6', 'upstream_8443_dns_v4', 'upstream_8443_dns_v6'}
    assert wanted <= declared


def test_ruleset_follows_the_role_switches(representative):
    _body, _revision, ruleset = render(representative, caracal_firewall_log_drops=False, caracal_firewall_allow_ping=False,
                                       caracal_firewall_allow_dhcp=False, caracal_firewall_container_interfaces=['veth*'],
                                       caracal_firewall_input_extra_rules=['tcp dport 8080 counter accept'])
    assert 'log prefix' not in ruleset and 'echo-request' not in ruleset and 'DHCP' not in ruleset
    assert re.findall(r'i?i?[io]fname "([^"]+)"', ruleset) == ['veth*'] * 5
    assert chain_block(ruleset, 'input')[-3:] == ['jump ingress', 'tcp dport 8080 counter accept', 'counter drop comment "input: default drop"']


@pytest.fixture(scope='module')
def nft_checks():
    """A real ``nft -c`` (check only, nothing is loaded), when nft runs here with the privileges it needs."""
    nft = shutil.which('nft') or ('/usr/sbin/nft' if os.access('/usr/sbin/nft', os.X_OK) else None)
    if nft is None:
        pytest.skip('nft is not installed')
    probe = 'table inet caracal_probe {\n\tchain c {\n\t\ttype filter hook input priority filter; policy accept;\n\t}\n}\n'
    proc = subprocess.run([nft, '-c', '-f', '-'], input=probe.encode(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    if proc.returncode != 0:
        pytest.skip('nft -c cannot check here: %s' % proc.stderr.decode(errors='replace').strip())
    return nft


def test_ruleset_passes_nft_check(representative, nft_checks, tmp_path):
    _body, _revision, ruleset = render(representative)
    path = tmp_path / 'candidate.nft'
    path.write_text(ruleset)
    proc = subprocess.run([nft_checks, '-c', '-f', str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors='replace')


# --------------------------------------------------------------------------- apply

def apply_args(host, timeout=90, candidate=None):
    return ['apply', '--timeout', str(timeout), '--state-dir', host.state_dir, '--persisted', host.persisted,
            candidate or host.candidate]


@pytest.fixture
def staged(host, tmp_path):
    """A candidate ruleset staged and a live table that nft can save reloadably."""
    host.candidate = str(tmp_path / 'candidate.nft')
    write(host.candidate, 'candidate ruleset\n')
    host.table = LIVE
    return host


def state(host, name):
    return read(os.path.join(host.state_dir, {'previous': 'previous.nft', 'rolled_back': 'rolled-back'}.get(name, name)))


def test_apply_saves_the_live_table_arms_the_rollback_then_loads(staged, capsys):
    rc, out, err = cli(capsys, *apply_args(staged))
    assert (rc, out) == (0, {'applied': True, 'rollback_at': NOW + 90, 'kept_previous': False})
    assert 'saved the live table for the rollback' in err
    assert state(staged, 'previous') == HEAD + LIVE
    assert stat.S_IMODE(os.stat(os.path.join(staged.state_dir, 'previous.nft')).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(staged.state_dir).st_mode) == 0o700
    assert staged.commands() == [
        'nft -c -f ' + staged.candidate,
        'systemctl is-active ' + TIMER,
        'nft -s list table ' + T,
        'nft -c -f -',
        'systemctl stop ' + TIMER,
        'systemctl reset-failed %s %s.service' % (TIMER, fw.ROLLBACK_UNIT),
        'systemd-run --unit %s --on-active 90s --timer-property AccuracySec=1s --description caracal.hardened firewall: restore '
        'the previous ruleset unless confirmed --property Type=oneshot /usr/bin/python3 %s rollback --state-dir %s --family inet '
        '--table caracal_filter' % (fw.ROLLBACK_UNIT, os.path.abspath(fw.__file__), staged.state_dir),
        'nft -f ' + staged.candidate,
    ]
    assert staged.calls[3][1] == HEAD + LIVE
    assert staged.loaded == ['candidate ruleset\n'] and staged.active == {TIMER: 'active'}


def test_apply_clears_the_marks_of_the_last_cycle(staged, capsys):
    for name in ('confirmed', 'rolled-back'):
        write(os.path.join(staged.state_dir, name), 'old\n')
    assert cli(capsys, *apply_args(staged))[0] == 0
    assert (state(staged, 'confirmed'), state(staged, 'rolled_back')) == (None, None)


def test_apply_without_a_live_table_saves_its_removal(staged, capsys):
    staged.table = None
    rc, _out, err = cli(capsys, *apply_args(staged))
    assert rc == 0 and 'saved no table (the rollback removes it)' in err
    assert state(staged, 'previous') == HEAD


def test_apply_falls_back_to_the_persisted_ruleset_of_the_live_revision(staged, capsys):
    staged.reloadable = False
    persisted = HEAD + LIVE.replace('}', '\tchain input { }\n}')
    write(staged.persisted, persisted)
    rc, _out, err = cli(capsys, *apply_args(staged))
    assert rc == 0 and 'saved %s (the live table lists in a form nft cannot reload: ' % staged.persisted in err
    assert state(staged, 'previous') == persisted


@pytest.mark.parametrize('persisted', [
    None,
    '',
    HEAD + LIVE.replace('00aa11bb22cc33dd', 'ffffffffffffffff'),
])
def test_apply_refuses_without_a_way_back(staged, capsys, persisted):
    staged.reloadable = False
    if persisted is not None:
        write(staged.persisted, persisted)
    rc, out, err = cli(capsys, *apply_args(staged))
    assert (rc, out) == (1, None)
    assert 'the live table cannot be saved in a form nft reloads:\nError: syntax error' in err
    assert 'Refusing to apply without a way back.' in err
    assert state(staged, 'previous') is None and staged.loaded == [] and staged.active == {}
    assert not any(c.startswith('systemd-run') for c in staged.commands())


def test_apply_never_trusts_a_persisted_file_when_the_live_table_has_no_revision(staged, capsys):
    staged.reloadable = False
    staged.table = 'table inet caracal_filter {\n}\n'
    write(staged.persisted, 'table inet caracal_filter {\n}\n')
    assert cli(capsys, *apply_args(staged))[0] == 1
    assert staged.loaded == []


def test_apply_checks_the_candidate_before_anything(staged, capsys):
    staged.check_err = 'candidate.nft:3:1-4: Error: syntax error'
    rc, out, err = cli(capsys, *apply_args(staged))
    assert (rc, out) == (1, None)
    assert 'nft rejected %s, nothing was changed:\ncandidate.nft:3:1-4: Error: syntax error' % staged.candidate in err
    assert staged.commands() == ['nft -c -f ' + staged.candidate]


@pytest.mark.parametrize('timeout', [4, 0, -90])
def test_apply_refuses_a_short_timeout(staged, capsys, timeout):
    rc, _out, err = cli(capsys, *apply_args(staged, timeout=timeout))
    assert rc == 2 and 'the confirmation timeout must be at least 5 seconds' in err
    assert staged.calls == []


def test_apply_stops_when_the_rollback_cannot_be_armed(staged, capsys):
    staged.arm_err = 'Failed to start transient timer unit: Access denied'
    rc, out, err = cli(capsys, *apply_args(staged))
    assert (rc, out) == (1, None)
    assert 'could not arm the rollback timer, refusing to apply:\nFailed to start transient timer unit: Access denied' in err
    assert staged.loaded == []


def test_a_second_apply_that_cannot_arm_restores_the_confirmed_table(staged, capsys):
    # The first apply is unconfirmed; the second stops its timer and then cannot arm its own:
    # the confirmed table goes back at once instead of an unconfirmed one staying with no timer.
    assert cli(capsys, *apply_args(staged))[0] == 0
    staged.arm_err = 'Failed to start transient timer unit: Access denied'
    rc, out, err = cli(capsys, *apply_args(staged))
    assert (rc, out) == (1, None)
    assert 'could not arm the rollback timer' in err and 'unconfirmed ruleset rolled back' in err
    assert staged.loaded[-1] == HEAD + LIVE and state(staged, 'previous') is None
    assert state(staged, 'rolled-back') is not None and staged.active == {}


def test_apply_that_nft_cannot_load_leaves_no_rollback_behind(staged, capsys):
    staged.load_err[staged.candidate] = 'Error: Could not process rule: No such file or directory'
    rc, out, err = cli(capsys, *apply_args(staged))
    assert (rc, out) == (1, None)
    assert 'nft could not load %s (nothing was changed):\nError: Could not process rule' % staged.candidate in err
    assert staged.commands()[-3:] == ['nft -f ' + staged.candidate, 'systemctl stop ' + TIMER,
                                      'systemctl reset-failed %s %s.service' % (TIMER, fw.ROLLBACK_UNIT)]
    assert staged.active == {} and state(staged, 'previous') is None


def test_second_unconfirmed_apply_keeps_the_confirmed_table(staged, capsys):
    assert cli(capsys, *apply_args(staged))[0] == 0
    staged.table = 'the unconfirmed first candidate\n'
    rc, out, err = cli(capsys, *apply_args(staged, timeout=30))
    assert (rc, out) == (0, {'applied': True, 'rollback_at': NOW + 30, 'kept_previous': True})
    assert 'saved' not in err and state(staged, 'previous') == HEAD + LIVE
    assert staged.commands().count('nft -s list table ' + T) == 1
    assert staged.active == {TIMER: 'active'}


def test_second_apply_that_nft_cannot_load_keeps_the_armed_rollback(staged, capsys):
    assert cli(capsys, *apply_args(staged))[0] == 0
    staged.load_err[staged.candidate] = 'Error: boom'
    assert cli(capsys, *apply_args(staged))[0] == 1
    assert state(staged, 'previous') == HEAD + LIVE and staged.active == {TIMER: 'active'}


@pytest.mark.parametrize('saved, timer, pending', [(True, False, False), (False, True, False), (True, True, True)])
def test_apply_keeps_the_saved_table_only_while_its_rollback_is_armed(staged, capsys, saved, timer, pending):
    if saved:
        write(os.path.join(staged.state_dir, 'previous.nft'), 'saved before\n')
    if timer:
        staged.active[TIMER] = 'active'
    rc, out, _err = cli(capsys, *apply_args(staged))
    assert rc == 0 and out['kept_previous'] is pending
    assert state(staged, 'previous') == ('saved before\n' if pending else HEAD + LIVE)


# --------------------------------------------------------------------------- confirm and rollback

def rollback_args(host, fallback=None):
    return ['rollback', '--state-dir', host.state_dir, '--fallback', fallback or host.persisted]


def test_confirm_keeps_the_new_ruleset(staged, capsys):
    assert cli(capsys, *apply_args(staged))[0] == 0
    rc, out, _err = cli(capsys, 'confirm', '--state-dir', staged.state_dir)
    assert (rc, out) == (0, {'confirmed': True})
    assert state(staged, 'confirmed') == '%d\n' % NOW and state(staged, 'previous') is None
    assert staged.active == {}
    rc, out, err = cli(capsys, *rollback_args(staged))
    assert (rc, out) == (0, None) and 'the ruleset was confirmed; nothing to roll back' in err
    assert staged.loaded == ['candidate ruleset\n']


def test_rollback_restores_the_saved_table_and_confirm_is_then_too_late(staged, capsys):
    assert cli(capsys, *apply_args(staged))[0] == 0
    rc, _out, err = cli(capsys, *rollback_args(staged))
    assert rc == 0
    assert 'unconfirmed ruleset rolled back (restored %s/previous.nft)' % staged.state_dir in err
    assert staged.loaded == ['candidate ruleset\n', HEAD + LIVE]
    assert state(staged, 'rolled_back') == '%s from %s/previous.nft\n' % (STAMP, staged.state_dir)
    assert state(staged, 'previous') is None
    rc, out, err = cli(capsys, 'confirm', '--state-dir', staged.state_dir)
    assert (rc, out) == (3, None)
    assert 'too late: the previous ruleset was already restored at %s from %s/previous.nft' % (STAMP, staged.state_dir) in err
    assert state(staged, 'confirmed') is None


def test_rollback_after_two_unconfirmed_applies_goes_back_to_the_confirmed_table(staged, capsys):
    assert cli(capsys, *apply_args(staged))[0] == 0
    write(staged.candidate, 'second candidate\n')
    assert cli(capsys, *apply_args(staged))[0] == 0
    assert cli(capsys, *rollback_args(staged))[0] == 0
    assert staged.loaded == ['candidate ruleset\n', 'second candidate\n', HEAD + LIVE]


def test_rollback_falls_back_to_the_persisted_ruleset(host, capsys):
    previous = os.path.join(host.state_dir, 'previous.nft')
    for path, text in ((previous, 'saved\n'), (host.persisted, 'persisted\n')):
        write(path, text)
    host.load_err[previous] = 'Error: saved table is broken'
    rc, _out, err = cli(capsys, *rollback_args(host))
    assert rc == 0
    assert 'could not restore %s:\nError: saved table is broken' % previous in err
    assert host.loaded == ['persisted\n']
    assert state(host, 'rolled_back') == '%s from %s\n' % (STAMP, host.persisted)
    assert state(host, 'previous') is None


def test_rollback_without_a_saved_table_loads_the_persisted_ruleset(host, capsys):
    write(host.persisted, 'persisted\n')
    assert cli(capsys, *rollback_args(host))[0] == 0
    assert host.commands() == ['nft -f ' + host.persisted]


def test_rollback_that_restores_nothing_fails(host, capsys):
    previous = os.path.join(host.state_dir, 'previous.nft')
    for path in (previous, host.persisted):
        write(path, 'x\n')
        host.load_err[path] = 'Error: no'
    rc, _out, err = cli(capsys, *rollback_args(host))
    assert rc == 1 and err.count('could not restore') == 2
    assert state(host, 'rolled_back') is None and state(host, 'previous') == 'x\n'
    os.unlink(previous)
    os.unlink(host.persisted)
    host.calls[:] = []
    assert cli(capsys, *rollback_args(host))[0] == 1
    assert host.calls == []


@pytest.mark.parametrize('kill_at, armed', [
    (['systemd-run'], False),
    (['nft', '-f'], True),
])
def test_apply_killed_half_way_still_has_a_way_back(staged, capsys, kill_at, armed):
    """Killed after saving the table: the saved table is whole, and a rollback restores it."""
    staged.kill_at = kill_at
    with pytest.raises(Killed):
        fw.main(apply_args(staged))
    staged.kill_at = None
    assert state(staged, 'previous') == HEAD + LIVE and staged.loaded == []
    assert (TIMER in staged.active) is armed
    assert cli(capsys, *rollback_args(staged))[0] == 0
    assert staged.loaded == [HEAD + LIVE]


def test_apply_killed_before_arming_leaves_no_pending_rollback(staged, capsys):
    staged.kill_at = ['systemd-run']
    with pytest.raises(Killed):
        fw.main(apply_args(staged))
    staged.kill_at = None
    staged.table = live = LIVE.replace('00aa11bb22cc33dd', '1111111111111111')
    rc, out, _err = cli(capsys, *apply_args(staged))
    assert rc == 0 and out['kept_previous'] is False
    assert state(staged, 'previous') == HEAD + live


# --------------------------------------------------------------------------- refresh

@pytest.fixture
def refresh(host, tmp_path, capsys):
    """Writes resolve.json as apply.yml does and runs ``refresh`` on it: returns (rc, stdout JSON, stderr)."""
    host.table = LIVE

    def run(groups_, **config):
        path = tmp_path / 'resolve.json'
        path.write_text(json.dumps(dict({'family': 'inet', 'table': 'caracal_filter', 'groups': groups_}, **config), indent=2))
        return cli(capsys, 'refresh', '--config', str(path))
    return run


def updates(host):
    return [stdin for words, stdin in host.calls if words[:3] == ['nft', '-f', '-']]


def test_refresh_without_the_table_does_nothing(host, refresh):
    host.names['api.example.com'] = ['192.0.2.1']
    host.table = None
    rc, out, err = refresh({'upstream': ['api.example.com']})
    assert (rc, out) == (0, None) and 'table inet caracal_filter is not loaded; nothing to refresh' in err
    assert host.commands() == ['nft -s list table ' + T] and host.lookups == []


def test_refresh_leaves_sets_that_are_up_to_date(host, refresh):
    host.names.update({'a.example': ['192.0.2.1', '2001:db8::1'], 'b.example': ['192.0.2.2']})
    host.sets.update({'upstream_dns_v4': ['192.0.2.2', '192.0.2.1'], 'upstream_dns_v6': ['2001:db8::1']})
    rc, out, _err = refresh({'upstream': ['a.example', 'b.example']})
    assert (rc, out) == (0, {'changed': False, 'failed_groups': 0})
    assert updates(host) == []


def test_refresh_replaces_the_members_of_changed_sets_in_one_transaction(host, refresh):
    host.names.update({'api.example.com': ['192.0.2.2', '192.0.2.10'], 'cdn.example.net': ['192.0.2.3']})
    host.sets.update({'upstream_dns_v4': ['192.0.2.9'], 'upstream_dns_v6': [{'elem': {'val': '2001:db8::9', 'timeout': 60}}],
                      'upstream_8443_dns_v4': ['192.0.2.3'], 'upstream_8443_dns_v6': []})
    rc, out, err = refresh({'upstream': ['api.example.com'], 'upstream_8443': ['cdn.example.net']})
    assert (rc, out) == (0, {'changed': True, 'failed_groups': 0})
    assert updates(host) == [
        'flush set inet caracal_filter upstream_dns_v4\n'
        'add element inet caracal_filter upstream_dns_v4 { 192.0.2.2, 192.0.2.10 }\n'
        'flush set inet caracal_filter upstream_dns_v6\n']
    assert 'upstream_dns_v4: 192.0.2.9 -> 192.0.2.2, 192.0.2.10' in err and 'upstream_dns_v6: 2001:db8::9 -> -' in err
    assert 'upstream_8443' not in err


def test_refresh_keeps_a_group_whose_names_do_not_all_resolve(host, refresh):
    host.names.update({'good.example': ['192.0.2.1'], 'other.example': ['192.0.2.5']})
    host.sets.update({'mirror_dns_v4': ['192.0.2.99'], 'mirror_dns_v6': [],
                      'upstream_dns_v4': [], 'upstream_dns_v6': []})
    rc, out, err = refresh({'mirror': ['good.example', 'gone.example'], 'upstream': ['other.example']})
    assert (rc, out) == (1, {'changed': True, 'failed_groups': 1})
    assert 'mirror: gone.example does not resolve ([Errno %d] Name or service not known); keeping the current addresses ' \
           'of this group' % socket.EAI_NONAME in err
    assert updates(host) == ['flush set inet caracal_filter upstream_dns_v4\nadd element inet caracal_filter upstream_dns_v4 { 192.0.2.5 }\n']
    assert not any('mirror_dns' in c for c in host.commands())


def test_refresh_skips_a_set_missing_from_the_live_table(host, refresh):
    host.names['api.example.com'] = ['192.0.2.1', '2001:db8::1']
    host.sets['upstream_dns_v6'] = []
    rc, out, err = refresh({'upstream': ['api.example.com']})
    assert (rc, out) == (0, {'changed': True, 'failed_groups': 0})
    assert 'set upstream_dns_v4 is missing from the live table; skipped' in err
    assert updates(host) == ['flush set inet caracal_filter upstream_dns_v6\nadd element inet caracal_filter upstream_dns_v6 { 2001:db8::1 }\n']


def test_refresh_fails_when_nft_refuses_the_update(host, refresh):
    host.names['api.example.com'] = ['192.0.2.1']
    host.sets.update({'upstream_dns_v4': [], 'upstream_dns_v6': []})
    host.load_err['-'] = 'Error: Could not process rule: No such file or directory'
    rc, out, err = refresh({'upstream': ['api.example.com']})
    assert (rc, out) == (1, None) and 'nft refused the set update:\nError: Could not process rule' in err


def test_refresh_uses_the_family_and_table_of_its_config(host, refresh):
    host.names['api.example.com'] = ['192.0.2.1']
    host.sets.update({'upstream_dns_v4': [], 'upstream_dns_v6': []})
    assert refresh({'upstream': ['api.example.com']}, family='ip', table='other')[0] == 0
    assert host.commands()[:2] == ['nft -s list table ip other', 'nft -j list set ip other upstream_dns_v4']
    assert updates(host) == ['flush set ip other upstream_dns_v4\nadd element ip other upstream_dns_v4 { 192.0.2.1 }\n']


def test_refresh_with_no_groups_changes_nothing(host, refresh):
    assert refresh({}) == (0, {'changed': False, 'failed_groups': 0}, '')
    assert host.commands() == ['nft -s list table ' + T]


def test_refresh_reads_the_config_the_role_writes(host, refresh, representative):
    """apply.yml persists {family, table, groups: plan.resolve}; the sets it names are the template's."""
    host.sets.update(dict(('%s_dns_%s' % (key, suffix), []) for key in representative['resolve'] for suffix in ('v4', 'v6')))
    rc, out, _err = refresh(representative['resolve'])
    assert (rc, out) == (0, {'changed': True, 'failed_groups': 0})
    assert sorted(re.findall(r'add element inet caracal_filter (\S+) \{ ([^}]*) \}', updates(host)[0])) == [
        ('upstream_8443_dns_v4', '192.0.2.81'), ('upstream_dns_v4', '192.0.2.80'), ('upstream_dns_v6', '2001:db8::80')]


def test_live_set_reads_plain_and_annotated_members(host):
    host.sets['s'] = ['192.0.2.1', {'elem': {'val': '192.0.2.2', 'expires': 10}}, {'prefix': {'addr': '10.0.0.0', 'len': 8}}]
    assert sorted(str(a) for a in fw._live_set('inet', 'caracal_filter', 's')) == ['192.0.2.1', '192.0.2.2']
    host.sets['empty'] = []
    assert fw._live_set('inet', 'caracal_filter', 'empty') == set()
    assert fw._live_set('inet', 'caracal_filter', 'absent') is None


# --------------------------------------------------------------------------- regressions

def test_empty_web_ports_close_the_edge(host):
    """argument_specs: an empty caracal_firewall_web_ports closes the edge (it used to fail the plan)."""
    result = plan(caracal_firewall_web_ports=[])
    assert result['errors'] == []
    web = groups(result, 'ingress')['web']
    assert (web['v4'], web['v6']) == ([], [])
    _body, _revision, ruleset = render(result)
    assert 'web_src' not in ruleset and 'web edge' not in ruleset
    assert [rule for rule in chain_block(ruleset, 'ingress') if 'dport 22 ' not in rule] == []


@pytest.mark.parametrize('extra, error', [
    ({'name': 'app', 'ports': ['\u00b2']}, "caracal_firewall_egress_extra[app]: port '\u00b2' is not an integer between 1 and 65535"),
    ({'name': 'app', 'ports': [1], 'host_port': True, 'destinations': ['192.0.2.1:\u00b2']},
     "caracal_firewall_egress_extra[app]: '192.0.2.1:\u00b2' has an invalid port"),
    ({'ports': [1], 'host_port': True, 'destinations': ['192.0.2.1:25']},
     "caracal_firewall_egress_extra[0]: name '_25' must match %s (it becomes an nft set name)" % NAME_PATTERN),
])
def test_malformed_rules_are_plan_errors_not_tracebacks(host, extra, error):
    """A digit int() cannot read (superscript two) and a host_port rule without a name used to raise."""
    assert only_error(plan(caracal_firewall_egress_extra=[extra])) == error
