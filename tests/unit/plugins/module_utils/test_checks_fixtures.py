# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures of the verification tests: a compliant deployment as its tools print it.

``inspect(service)`` is one element of ``docker inspect`` for a container of the stack as
the compose backend runs it (the contract's runtime, *_FILE variables, loopback publishes,
limits); tests change one field to seed a defect. ``ruleset()`` is ``nft -j list ruleset``
of the firewall role's table (captured from nft 1.0.6 for the same rules), ``SS`` an
``ss -Hltnp`` listing of a deployed host. ``layout(tmp)`` writes the secrets layout of
``secret_files`` (as root: real owners) and returns its paths and values.

Also collected by pytest: the sanity test at the bottom keeps the fixtures compliant.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import datetime
import json
import os
import posixpath

from ansible_collections.caracal.hardened.plugins.module_utils._contract import get_profile
from ansible_collections.caracal.hardened.plugins.module_utils._secrets import (
    derive,
    evidence_record,
    fingerprint,
    format_ts,
    generate,
    is_derived,
)

PROFILE = get_profile()
PROJECT = 'caracal'
VIEWS = '/opt/caracal/secrets/services'
CONTROL = '/opt/caracal/control'
NOW = datetime.datetime(2026, 7, 10, 12, 0, 0, tzinfo=datetime.timezone.utc)

_CAPS_DEFAULT = ['CHOWN', 'DAC_OVERRIDE', 'FSETID', 'FOWNER', 'MKNOD', 'NET_RAW', 'SETGID', 'SETUID', 'SETFCAP',
                 'SETPCAP', 'NET_BIND_SERVICE', 'SYS_CHROOT', 'KILL', 'AUDIT_WRITE']


def _env(service):
    svc = PROFILE['services'][service]
    env = {}
    for sname, variables in svc['secrets'].items():
        for var in variables:
            env['%s_FILE' % var] = posixpath.join(PROFILE['secrets_mount'], sname)
    if svc['kind'] == 'app':
        env['CARACAL_MODE'] = 'stable'
    for key, value in (svc.get('env') or {}).items():
        env[key] = value.format(issuer_url='https://sts.caracal.test', web_url='https://caracal.test',
                                upstream_allowlist='api.upstream.test')
    env['PATH'] = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
    return ['%s=%s' % kv for kv in sorted(env.items())]


def inspect(service, index=1, running=True, views=VIEWS):
    """``docker inspect`` of one compliant container of ``service`` (secrets from ``views``)."""
    svc = PROFILE['services'][service]
    rt = svc['runtime']
    name = '%s-%s-%d' % (PROJECT, service, index)
    mounts = []
    if svc['secrets']:
        mounts.append({'Type': 'bind', 'Source': posixpath.join(views, service), 'Destination': '/run/secrets',
                       'Mode': '', 'RW': False, 'Propagation': 'rprivate'})
    for vol, path in (svc.get('volumes') or {}).items():
        mounts.append({'Type': 'volume', 'Name': '%s_%s' % (PROJECT, vol),
                       'Source': '/var/lib/docker/volumes/%s_%s/_data' % (PROJECT, vol),
                       'Destination': path, 'Driver': 'local', 'Mode': 'z', 'RW': True, 'Propagation': ''})
    if svc.get('control_gate'):
        mounts.append({'Type': 'bind', 'Source': CONTROL, 'Destination': PROFILE['control_gate_mount'],
                       'Mode': '', 'RW': False, 'Propagation': 'rprivate'})
    ports = {}
    bindings = {}
    if svc.get('port'):
        key = '%d/tcp' % svc['port']
        ports[key] = None
        if svc.get('publish') and svc['kind'] != 'storage':
            host, port = svc['publish'].rsplit(':', 1)
            ports[key] = [{'HostIp': host, 'HostPort': port}]
            bindings[key] = [{'HostIp': host, 'HostPort': port}]
    tmpfs = dict(rt.get('tmpfs') or {})
    user = rt.get('user') or ''
    return {
        'Id': ('%064x' % (abs(hash(name)) % (1 << 200)))[:64],
        'Name': '/' + name,
        'State': dict({'Status': 'running' if running else 'exited', 'Running': running, 'Pid': 0,
                       'ExitCode': 0}, **({'Health': {'Status': 'healthy'}} if running else {})),
        'Config': {
            'User': user,
            'Env': _env(service),
            'Image': 'registry.caracal.test/%s:v2026.07.03-rc.1' % svc['image'],
            'Cmd': svc.get('command'),
            'Labels': {'com.docker.compose.project': PROJECT, 'com.docker.compose.service': service,
                       'com.docker.compose.container-number': str(index),
                       'org.caracal.hardened.kind': svc['kind']},
        },
        'HostConfig': {
            'CapAdd': ['CAP_%s' % c for c in rt.get('cap_add') or []] or None,
            'CapDrop': ['ALL'],
            'Privileged': False,
            'SecurityOpt': ['no-new-privileges:true'],
            'ReadonlyRootfs': bool(rt.get('read_only')),
            'Memory': 536870912,
            'NanoCpus': 1000000000,
            'CpuQuota': 0,
            'PidsLimit': 256,
            'PortBindings': bindings,
            'Tmpfs': tmpfs or None,
            'Init': bool(rt.get('init')),
        },
        'NetworkSettings': {
            'Ports': ports,
            'Networks': {'%s_app' % PROJECT: {'IPAddress': '172.18.0.%d' % (10 + list(PROFILE['services']).index(service))}},
        },
        'Mounts': mounts,
    }


def replay_init():
    """The exited one-shot job that prepares the replay state (root, CHOWN and FOWNER)."""
    data = inspect('dbMigrate', running=False)
    data['Name'] = '/%s-replayInit-1' % PROJECT
    data['Config']['Labels']['com.docker.compose.service'] = 'replayInit'
    data['Config']['Labels']['org.caracal.hardened.kind'] = 'init'
    data['Config']['User'] = '0:0'
    data['Config']['Env'] = ['PATH=/usr/bin:/bin']
    data['HostConfig']['CapAdd'] = ['CAP_CHOWN', 'CAP_FOWNER']
    data['Mounts'] = []
    data['NetworkSettings'] = {'Ports': {}, 'Networks': {}}
    return data


def stack(views=VIEWS):
    """Every container of a compliant single-host deployment."""
    out = [replay_init()]
    for service in PROFILE['start_order']:
        out.append(inspect(service, running=PROFILE['services'][service]['kind'] != 'job', views=views))
    return out


# uids the test images' processes run as (postgres drops to 991, redis is 990).
PROCESS_UIDS = {'postgres': 991, 'redis': 990}


def proc_facts(data):
    """What /proc/<pid>/status says about a compliant running container's first process."""
    service = data['Config']['Labels']['com.docker.compose.service']
    svc = PROFILE['services'].get(service) or {'runtime': {}}
    uid = PROCESS_UIDS.get(service, PROFILE['uid'])
    caps = sorted(c for c in svc['runtime'].get('cap_add') or [])
    return {'uid': uid, 'euid': uid, 'gid': uid, 'cap_bnd': caps, 'cap_eff': [], 'no_new_privs': True,
            'comm': service}


def fake_processes(monkeypatch, items):
    """Give each running container of ``items`` a pid whose ``/proc/<pid>/status`` says ``proc_facts``."""
    from ansible_collections.caracal.hardened.plugins.module_utils import _checks_host
    facts = {}
    for number, item in enumerate(items, 100):
        if item['State']['Running']:
            item['State']['Pid'] = number
            facts[number] = proc_facts(item)
    monkeypatch.setattr(_checks_host, 'proc_status', lambda pid: dict(facts.get(pid, {})))
    return items


def containers(items=None, proc=True):
    """Normalized containers of ``items`` (default: the compliant stack), with process facts."""
    from ansible_collections.caracal.hardened.plugins.module_utils._checks_runtime import (
        normalize_container,
        project_containers,
    )
    items = stack() if items is None else items
    out = []
    for item in items:
        facts = proc_facts(item) if proc and item['State']['Running'] else None
        out.append(normalize_container(copy.deepcopy(item), proc=facts))
    return project_containers(out, PROJECT)


def by_service(items, service):
    """The inspect element of ``service`` in ``items`` (to seed a defect in place)."""
    for item in items:
        if item['Config']['Labels'].get('com.docker.compose.service') == service:
            return item
    raise KeyError(service)


# ss -Hltnp of a deployed host: sshd and the nginx edge on every interface, systemd-resolved
# and the (userland-proxy-free) publishes do not show up; a redis-cli tunnel on loopback.
SS = """LISTEN 0      511          0.0.0.0:443        0.0.0.0:*    users:(("nginx",pid=812,fd=6),("nginx",pid=811,fd=6))
LISTEN 0      511          0.0.0.0:80         0.0.0.0:*    users:(("nginx",pid=812,fd=5),("nginx",pid=811,fd=5))
LISTEN 0      128          0.0.0.0:22         0.0.0.0:*    users:(("sshd",pid=402,fd=3))
LISTEN 0      4096   127.0.0.53%lo:53         0.0.0.0:*    users:(("systemd-resolve",pid=311,fd=14))
LISTEN 0      511             [::]:443           [::]:*    users:(("nginx",pid=812,fd=8))
LISTEN 0      511             [::]:80            [::]:*    users:(("nginx",pid=812,fd=7))
LISTEN 0      128             [::]:22            [::]:*    users:(("sshd",pid=402,fd=4))
LISTEN 0      4096       127.0.0.1:6380       0.0.0.0:*    users:(("socat",pid=900,fd=5))
"""


def _rule(chain, *expr):
    return {'rule': {'family': 'inet', 'table': 'caracal_filter', 'chain': chain, 'handle': 0, 'expr': list(expr)}}


def _m(protocol, field, right, op='=='):
    return {'match': {'op': op, 'left': {'payload': {'protocol': protocol, 'field': field}}, 'right': right}}


def _meta(key, right):
    return {'match': {'op': '==', 'left': {'meta': {'key': key}}, 'right': right}}


_CT = {'match': {'op': '==', 'left': {'ct': {'key': 'state'}}, 'right': {'set': ['established', 'related']}}}
_COUNTER = {'counter': {'packets': 0, 'bytes': 0}}


def _prefix(addr, length):
    return {'prefix': {'addr': addr, 'len': length}}


def ruleset():
    """``nft -j list ruleset`` with the firewall role's table next to Docker's."""
    def chain(name, **hook):
        return {'chain': dict({'family': 'inet', 'table': 'caracal_filter', 'name': name, 'handle': 1}, **hook)}
    return {'nftables': [
        {'metainfo': {'version': '1.0.6', 'json_schema_version': 1}},
        {'table': {'family': 'ip', 'name': 'filter', 'handle': 1}},
        {'table': {'family': 'inet', 'name': 'caracal_filter', 'handle': 2}},
        {'set': {'family': 'inet', 'name': 'blocked_v4', 'table': 'caracal_filter', 'type': 'ipv4_addr',
                 'flags': ['interval'], 'elem': [_prefix('100.64.0.0', 10), _prefix('127.0.0.0', 8),
                                                 _prefix('169.254.0.0', 16), _prefix('224.0.0.0', 4)]}},
        {'set': {'family': 'inet', 'name': 'blocked_v6', 'table': 'caracal_filter', 'type': 'ipv6_addr',
                 'flags': ['interval'], 'elem': [_prefix('fe80::', 10), _prefix('ff00::', 8)]}},
        {'set': {'family': 'inet', 'name': 'upstream_dst_v4', 'table': 'caracal_filter', 'type': 'ipv4_addr',
                 'flags': ['interval'], 'elem': ['192.0.2.10']}},
        {'set': {'family': 'inet', 'name': 'web_src_v4', 'table': 'caracal_filter', 'type': 'ipv4_addr',
                 'flags': ['interval'], 'elem': [_prefix('0.0.0.0', 0)]}},
        chain('ingress'), chain('egress'), chain('container_egress'),
        chain('input', type='filter', hook='input', prio=0, policy='drop'),
        chain('output', type='filter', hook='output', prio=0, policy='drop'),
        chain('forward', type='filter', hook='forward', prio=-5, policy='drop'),
        _rule('ingress', _m('tcp', 'dport', {'set': [80, 443]}), _m('ip', 'saddr', '@web_src_v4'), {'accept': None}),
        _rule('egress', _m('ip', 'daddr', '@blocked_v4'), _COUNTER, {'drop': None}),
        _rule('egress', _m('ip6', 'daddr', '@blocked_v6'), _COUNTER, {'drop': None}),
        _rule('egress', _m('udp', 'dport', 53), _m('ip', 'daddr', '10.0.0.2'), {'accept': None}),
        _rule('egress', _m('tcp', 'dport', 443), _m('ip', 'daddr', '@upstream_dst_v4'), {'accept': None}),
        _rule('container_egress', {'jump': {'target': 'egress'}}),
        _rule('container_egress', _COUNTER, {'drop': None}),
        _rule('input', _CT, {'accept': None}),
        _rule('input', _meta('iif', 'lo'), {'accept': None}),
        _rule('input', {'jump': {'target': 'ingress'}}),
        _rule('input', {'limit': {'rate': 10, 'burst': 5, 'per': 'minute'}},
              {'log': {'prefix': 'caracal-fw input drop: ', 'level': 'info'}}),
        _rule('input', _COUNTER, {'drop': None}),
        _rule('output', _CT, {'accept': None}),
        _rule('output', _meta('oif', 'lo'), {'accept': None}),
        _rule('output', _meta('oifname', 'br-*'), {'accept': None}),
        _rule('output', _m('udp', 'sport', 68), _m('udp', 'dport', 67), {'accept': None}),
        _rule('output', {'jump': {'target': 'egress'}}),
        _rule('output', _COUNTER, {'drop': None}),
        _rule('forward', _CT, {'accept': None}),
        _rule('forward', _meta('iifname', 'br-*'), {'jump': {'target': 'container_egress'}}),
        _rule('forward', _COUNTER, {'drop': None}),
        {'rule': {'family': 'ip', 'table': 'filter', 'chain': 'FORWARD', 'handle': 9, 'expr': [{'accept': None}]}},
    ]}


# ---------------------------------------------------------------- the secrets layout

GID = PROFILE['gid']


def _write(path, data, mode, uid=0, gid=0):
    with open(path, 'w') as handle:
        handle.write(data)
    os.chmod(path, mode)
    if os.geteuid() == 0:
        os.chown(path, uid, gid)


def _mkdir(path, mode, uid=0, gid=0):
    os.makedirs(path, exist_ok=True)
    os.chmod(path, mode)
    if os.geteuid() == 0:
        os.chown(path, uid, gid)


def layout(tmp, created=None, values=None):
    """Write a compliant layout under ``tmp``; returns ``{'paths': {...}, 'values': {...}}``.

    Values are ``created`` (default: ten days before the real now, so that modules, which
    use the real clock, find them within their policy).
    """
    created = created or (datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) - datetime.timedelta(days=10))
    base = str(tmp)
    paths = {
        'store_path': os.path.join(base, 'secrets', 'store'),
        'views_path': os.path.join(base, 'secrets', 'services'),
        'archive_path': os.path.join(base, 'secrets', 'archive'),
        'evidence_path': os.path.join(base, 'evidence', 'secrets.jsonl'),
    }
    vals = {}
    for name, spec in PROFILE['secrets'].items():
        if not is_derived(spec):
            vals[name] = (values or {}).get(name) or generate(dict(spec, name=name))
    for name, spec in PROFILE['secrets'].items():
        if is_derived(spec):
            vals[name] = derive(spec, vals)
    _mkdir(os.path.join(base, 'secrets'), 0o711)
    _mkdir(paths['store_path'], 0o700)
    _mkdir(paths['archive_path'], 0o700)
    _mkdir(paths['views_path'], 0o750, 0, GID)
    _mkdir(os.path.dirname(paths['evidence_path']), 0o755)
    state = {'version': 1, 'secrets': {}, 'archive': {}}
    records = []
    for name, value in vals.items():
        _write(os.path.join(paths['store_path'], name), value, 0o600)
        state['secrets'][name] = {'created': format_ts(created), 'fingerprint': fingerprint(value),
                                  'source': 'derived' if is_derived(PROFILE['secrets'][name]) else 'generated'}
        records.append(evidence_record(created, 'pytest', 'derived' if is_derived(PROFILE['secrets'][name]) else 'generated',
                                       'initial', name, PROFILE['name'], os.path.join(paths['store_path'], name),
                                       new_fingerprint=fingerprint(value)))
    for service, svc in PROFILE['services'].items():
        directory = os.path.join(paths['views_path'], service)
        _mkdir(directory, 0o750, 0, GID)
        for name in svc['secrets']:
            _write(os.path.join(directory, name), vals[name], 0o440, 0, GID)
    _write(os.path.join(paths['archive_path'], 'state.json'), json.dumps(state, indent=2, sort_keys=True) + '\n', 0o600)
    _write(paths['evidence_path'], ''.join(json.dumps(r, sort_keys=True) + '\n' for r in records), 0o600)
    return {'paths': paths, 'values': vals}


def test_fixtures_follow_the_contract():
    """The stack fixture has one container per service plus the replay init job."""
    names = [c['service'] for c in containers()]
    assert sorted(names) == sorted(list(PROFILE['services']) + ['replayInit'])
    assert json.dumps(ruleset())


# ---------------------------------------------------------------- running a module

class Exited(Exception):
    pass


class Failed(Exception):
    pass


class FakeHost(object):
    """Answers a module's ``get_bin_path`` and ``run_command`` like a deployed host.

    ``binaries`` maps a tool to its path (missing: not installed); ``commands`` maps the
    tool and first argument (``('docker', 'ps')``) to ``(rc, stdout, stderr)`` or to a
    callable of the argv.
    """

    def __init__(self, binaries=None, commands=None):
        self.binaries = dict(binaries or {})
        self.commands = dict(commands or {})
        self.calls = []

    @classmethod
    def with_stack(cls, items=None, **more):
        items = stack() if items is None else items
        host = cls(binaries={'docker': '/usr/bin/docker'})
        host.engine('docker', items)
        host.binaries.update(more.pop('binaries', {}))
        host.commands.update(more.pop('commands', {}))
        return host

    def engine(self, name, items):
        ids = [i['Id'] for i in items]
        self.commands[(name, 'ps')] = (0, ''.join(i + '\n' for i in ids), '')

        def inspect(argv):
            wanted = [a for a in argv[2:] if not a.startswith('--') and a not in ('container', 'inspect')]
            return 0, json.dumps([i for i in items if i['Id'] in wanted]), ''
        self.commands[(name, 'inspect')] = inspect
        self.commands[(name, 'container')] = inspect

    def get_bin_path(self, name, *args, **kwargs):
        return self.binaries.get(name)

    def run_command(self, argv, *args, **kwargs):
        self.calls.append(list(argv))
        tool = os.path.basename(argv[0])
        answer = self.commands.get((tool, argv[1] if len(argv) > 1 else None)) or self.commands.get((tool, None))
        if answer is None:
            return 127, '', '%s: not faked' % tool
        return answer(argv) if callable(answer) else answer


def run_module(monkeypatch, main, args, host=None, check=False):
    """Run a module's ``main()`` with ``args``; returns ``('exit' | 'fail', result)``."""
    from ansible.module_utils import basic
    from ansible.module_utils.testing import patch_module_args

    def _exit(self, **result):
        raise Exited(result)

    def _fail(self, **result):
        raise Failed(result)
    monkeypatch.setattr(basic.AnsibleModule, 'exit_json', _exit)
    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', _fail)
    host = host or FakeHost()
    monkeypatch.setattr(basic.AnsibleModule, 'get_bin_path', lambda self, name, *a, **k: host.get_bin_path(name))
    monkeypatch.setattr(basic.AnsibleModule, 'run_command', lambda self, argv, *a, **k: host.run_command(argv))
    args = dict(args, _ansible_check_mode=check)
    try:
        with patch_module_args(args):
            main()
    except Exited as exc:
        return 'exit', exc.args[0]
    except Failed as exc:
        return 'fail', exc.args[0]
    raise AssertionError('the module neither exited nor failed')


def statuses(result):
    return dict((r['id'], r['status']) for r in result['checks'])


def record_of(result, check_id):
    return [r for r in result['checks'] if r['id'] == check_id][0]


class FakeDatastores(object):
    """Postgres and Redis as the verification reaches them (``pg_login``, ``redis_auth`` of
    ``_checks_host`` replaced): each accepts the password it was given (the store's by
    default); ``down`` makes one refuse connections; ``tried`` records (server, host, user, database)."""

    def __init__(self, monkeypatch, values):
        from ansible_collections.caracal.hardened.plugins.module_utils import _checks_host
        self.passwords = {'postgres': values.get('postgresPassword'), 'redis': values.get('redisPassword')}
        self.down = set()
        self.tried = []
        monkeypatch.setattr(_checks_host, 'pg_login', self.pg_login)
        monkeypatch.setattr(_checks_host, 'redis_auth', self.redis_auth)

    def _answer(self, server, host, port, user, password, database=''):
        self.tried.append((server, host, user, database))
        if server in self.down:
            return False, 'unreachable: connection refused at %s:%d' % (host, port)
        if password != self.passwords[server]:
            return False, 'refused: password authentication failed for user "%s"' % user
        return True, 'accepted'

    def pg_login(self, host, port, user, password, database, timeout=5.0):
        return self._answer('postgres', host, port, user, password, database)

    def redis_auth(self, host, port, password, timeout=5.0):
        return self._answer('redis', host, port, 'default', password)
