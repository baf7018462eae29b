# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The five groups of checks behind the verification modules.

Each ``caracal_<group>_info`` module runs one group; ``caracal_verify_info`` runs all five
in one module call. A group (``Group``) is:

- its check ids and its options (the argument spec of its module, without the common
  ``checks``, ``profile``, ``engine`` and ``project``);
- ``prepare(params)``: validates the options before anything is measured (raises
  ``ValueError`` or ``ContractError``) and returns what ``run`` needs;
- ``run(module, params, prepared, gather)``: has ``_checks_host`` measure and the pure
  ``_checks_<group>`` functions judge, and returns the module's result without ``changed``
  and ``summary``. ``gather(with_proc)`` gives the containers of the project
  (``_checks_host.gather_containers``): a single module asks the engines itself
  (``own_containers``), ``caracal_verify_info`` asks them once for every group
  (``SharedContainers``).

Nothing here reads the host itself (no command, socket or file of host state): that is
``_checks_host``, whatever a group needs measured.

This is a private module_utils (leading underscore): its API may change between minor
releases of the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import datetime
import ipaddress
import os
import ssl
import threading

from ansible.module_utils.common.text.converters import to_native

from ansible_collections.caracal.hardened.plugins.module_utils._checks import (
    add_findings,
    judged,
    not_applicable,
    select,
    summary,
)
from ansible_collections.caracal.hardened.plugins.module_utils._checks_health import (
    check_credentials,
    check_jwks,
    check_journal,
    check_pending,
    check_ready,
)
from ansible_collections.caracal.hardened.plugins.module_utils._checks_audit import (
    check_dlq,
    check_streams,
    redis_target,
)
from ansible_collections.caracal.hardened.plugins.module_utils._checks_host import (
    add_proc_status,
    audit_streams,
    backup_files,
    certificate_facts,
    credential_logins,
    engine_errors,
    gather_containers,
    http_get,
    job_units,
    jwks_answers,
    listeners,
    metrics_probes,
    paths_present,
    probe_protocol,
    read_value,
    ready_probes,
    resolve_group,
    ruleset,
    runtime_profiles,
    scan_processes,
    secrets_snapshot,
    tls_context,
    verify_chain,
)
from ansible_collections.caracal.hardened.plugins.module_utils._checks_network import (
    check_blocked_ranges,
    check_default_deny,
    check_firewall,
    check_public_ports,
    check_service_ports,
)
from ansible_collections.caracal.hardened.plugins.module_utils._checks_runtime import (
    check_capabilities,
    check_control,
    check_fail_open,
    check_gateway_allowlist,
    check_limits,
    check_metrics,
    check_mode,
    check_no_new_privileges,
    check_non_root,
    check_read_only,
    check_replay_state,
    check_sts_admin_token,
    control_gates,
    known_services,
)
from ansible_collections.caracal.hardened.plugins.module_utils._checks_secrets import (
    STRENGTH_CHECKS,
    check_evidence,
    check_file_delivery,
    check_kek_backup,
    check_no_inline_values,
    check_permissions,
    check_present,
    check_rotation,
    check_runtime_profiles,
    check_strength,
    check_views,
    scope,
)
from ansible_collections.caracal.hardened.plugins.module_utils._checks_tls import (
    PROTOCOLS,
    check_certificate,
    check_headers,
    check_protocols,
    check_redirect,
)
from ansible_collections.caracal.hardened.plugins.module_utils._contract import DEFAULT_PROFILE, ContractError, get_profile
from ansible_collections.caracal.hardened.plugins.module_utils._secrets import is_derived, trim

# The options of every group that looks at the containers of the deployment.
CONTAINER_OPTIONS = {
    'profile': {'type': 'str', 'default': DEFAULT_PROFILE},
    'engine': {'type': 'str', 'default': 'auto', 'choices': ['auto', 'docker', 'podman']},
    'project': {'type': 'str', 'default': 'caracal'},
}


class Group(object):
    """One group of checks: see the module docstring."""

    def __init__(self, name, check_ids, options, prepare, run, containers=True):
        self.name = name
        self.check_ids = check_ids
        self.options = options
        self.prepare = prepare
        self.run = run
        # Whether the group takes CONTAINER_OPTIONS (every group but tls).
        self.containers = containers

    def argument_spec(self):
        """The argument spec of the group's own module."""
        spec = {'checks': {'type': 'list', 'elements': 'str'}}
        if self.containers:
            spec.update(copy.deepcopy(CONTAINER_OPTIONS))
        spec.update(copy.deepcopy(self.options))
        return spec


def own_containers(module, params, profile):
    """``gather`` of a single module: the engines are asked by the group that needs them."""
    def gather(with_proc=False):
        return gather_containers(module, params['engine'], params['project'], with_proc=with_proc,
                                 known=known_services(profile))
    return gather


class SharedContainers(object):
    """``gather`` of several groups at once: the engines are asked once (``ps`` and one
    ``inspect`` of every container), the first time a group needs them; each group gets its
    own copy, and ``with_proc`` adds ``/proc/<pid>/status`` to that copy only."""

    def __init__(self, module, engine, project, known):
        self._args = (module, engine, project)
        self._known = known
        self._lock = threading.Lock()
        self.gathered = None

    def __call__(self, with_proc=False):
        with self._lock:
            if self.gathered is None:
                self.gathered = gather_containers(*self._args, with_proc=False, known=self._known)
            gathered = copy.deepcopy(self.gathered)
        if with_proc:
            add_proc_status(gathered['containers'])
        return gathered


def _profile_and_selection(params, check_ids):
    return {'profile': get_profile(params['profile']), 'selected': select(params['checks'], check_ids)}


# ---------------------------------------------------------------- runtime

RUNTIME_IDS = [
    'mode.caracal_mode', 'mode.fail_open',
    'containers.non_root', 'containers.capabilities', 'containers.no_new_privileges', 'containers.read_only',
    'containers.limits', 'containers.replay_state',
    'access.control', 'access.sts_admin_token', 'access.gateway_allowlist',
    'metrics.bearer', 'health.ready', 'health.jwks',
]

_RUNTIME_SIMPLE = {
    'mode.caracal_mode': check_mode,
    'mode.fail_open': check_fail_open,
    'containers.non_root': check_non_root,
    'containers.capabilities': check_capabilities,
    'containers.no_new_privileges': check_no_new_privileges,
    'containers.read_only': check_read_only,
    'containers.limits': check_limits,
    'containers.replay_state': check_replay_state,
    'access.sts_admin_token': check_sts_admin_token,
    'access.gateway_allowlist': check_gateway_allowlist,
}


def _runtime_prepare(params):
    return _profile_and_selection(params, RUNTIME_IDS)


def _runtime_run(module, params, prepared, gather):
    profile = prepared['profile']
    gathered = gather(with_proc=True)
    containers = gathered['containers']
    common = {'project': params['project'], 'engines': gathered['engines']}
    records = []
    for check_id in prepared['selected']:
        failed = engine_errors(check_id, gathered)
        if failed:
            records.append(failed)
            continue
        if check_id in _RUNTIME_SIMPLE:
            records.append(_RUNTIME_SIMPLE[check_id](profile, containers, **common))
        elif check_id == 'access.control':
            present = paths_present(gate for _c, _m, gate in control_gates(profile, containers) if gate)
            records.append(check_control(profile, containers, present, enabled=params['control_enabled'], **common))
        elif check_id == 'metrics.bearer':
            records.append(check_metrics(profile, containers, metrics_probes(profile, containers, params), **common))
        elif check_id == 'health.jwks':
            records.append(check_jwks(profile, containers, jwks_answers(profile, containers, params), **common))
        elif check_id == 'health.ready':
            records.append(check_ready(profile, containers, ready_probes(profile, containers, params),
                                       job_units(module, profile, params['project'], containers), **common))
    return {
        'checks': records,
        'engines': gathered['engines'],
        'containers': [{'name': c['name'], 'service': c['service'], 'status': c['status']} for c in containers],
    }


RUNTIME = Group('runtime', RUNTIME_IDS, {
    'control_enabled': {'type': 'bool', 'default': False},
    'timeout': {'type': 'float', 'default': 5},
    'store_path': {'type': 'path'},
    'archive_path': {'type': 'path'},
}, _runtime_prepare, _runtime_run)


# ---------------------------------------------------------------- secrets

SECRETS_IDS = [
    'secrets.file_delivery', 'secrets.no_inline_values', 'secrets.permissions', 'secrets.views',
    'secrets.runtime_profiles',
    'keys.present', 'keys.hmac', 'keys.kek', 'keys.tokens', 'keys.rotation', 'keys.evidence', 'keys.kek_backup',
    'keys.journal', 'health.credentials',
]

# The view files may grant owner read/write and group read, nothing else (as secret_files).
VIEW_MODE_ALLOWED = 0o640


def parse_mode(mode):
    try:
        value = mode if isinstance(mode, int) and not isinstance(mode, bool) else int(str(mode), 8)
    except ValueError:
        raise ValueError('mode %r is not an octal mode' % (mode,)) from None
    if value & ~VIEW_MODE_ALLOWED:
        raise ValueError('mode %04o grants more than owner read/write and group read' % value)
    return value


def _secrets_prepare(params):
    prepared = _profile_and_selection(params, SECRETS_IDS)
    profile = prepared['profile']
    prepared['services'], prepared['names'] = scope(profile, params['services'])
    prepared['gid'] = resolve_group(params['group'], profile['gid'])
    prepared['view_mode'] = parse_mode(params['mode'])
    for name, entry in (params['policies'] or {}).items():
        if name not in profile['secrets']:
            raise ValueError('policies: unknown secret %s' % name)
        if not isinstance(entry, dict):
            raise ValueError('policies: %s must be a dictionary' % name)
    prepared['now'] = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    return prepared


def _secrets_run(module, params, prepared, gather):
    p = params
    profile, services, names = prepared['profile'], prepared['services'], prepared['names']
    # The containers are needed by every check: a layout that is absent is only "not
    # applicable" when no Caracal container runs either.
    gathered = gather(with_proc=False)
    containers = gathered['containers']
    snapshot = secrets_snapshot(profile, p['store_path'], p['views_path'], p['archive_path'], p['evidence_path'],
                                services, names)
    records = []
    for check_id in prepared['selected']:
        if check_id == 'secrets.file_delivery':
            failed = engine_errors(check_id, gathered)
            records.append(failed or check_file_delivery(profile, containers, p['views_path'], project=p['project'],
                                                         engines=gathered['engines']))
        elif check_id == 'secrets.no_inline_values':
            values = {}
            for name, item in snapshot['store']['files'].items():
                if item.get('value') and not is_derived(profile['secrets'][name]):
                    values[name] = trim(item['value'])
            processes, unreadable = scan_processes() if p['scan_processes'] else ([], 0)
            record = check_no_inline_values(profile, values, containers, gathered['raw'], processes, unreadable,
                                            snapshot=snapshot)
            if not containers:
                add_findings(record, ['cannot search the containers: %s' % e for e in gathered['errors']],
                             'Start the container engine and verify again.')
            records.append(record)
        elif check_id == 'secrets.permissions':
            records.append(check_permissions(snapshot, prepared['gid'], prepared['view_mode'], containers))
        elif check_id == 'secrets.views':
            records.append(check_views(profile, snapshot, services, containers))
        elif check_id == 'secrets.runtime_profiles':
            records.append(check_runtime_profiles(runtime_profiles(p['runtime_profiles'])))
        elif check_id == 'keys.present':
            records.append(check_present(profile, snapshot, services, names, containers))
        elif check_id in STRENGTH_CHECKS:
            records.append(check_strength(check_id, profile, snapshot, names, containers))
        elif check_id == 'keys.rotation':
            records.append(check_rotation(profile, snapshot, names, p['policies'] or {}, p['default_max_age_days'],
                                          prepared['now'], containers))
        elif check_id == 'keys.evidence':
            records.append(check_evidence(snapshot, names, containers))
        elif check_id == 'keys.journal':
            archive = snapshot['archive']
            records.append(check_journal(archive['journal'], archive['journal_path'], archive['journal_error']))
        elif check_id == 'health.credentials':
            records.append(check_credentials(*credential_logins(profile, snapshot, containers, p['timeout'])))
        elif check_id == 'keys.kek_backup':
            files = backup_files(p['kek_backup_path']) if p['kek_backup_path'] else []
            records.append(check_kek_backup(profile, snapshot, names, p['kek_backup_path'], files, containers))
    return {'checks': records, 'engines': gathered['engines']}


SECRETS = Group('secrets', SECRETS_IDS, {
    'store_path': {'type': 'path', 'required': True},
    'views_path': {'type': 'path', 'required': True},
    'archive_path': {'type': 'path', 'required': True},
    'evidence_path': {'type': 'path', 'required': True},
    'services': {'type': 'list', 'elements': 'str'},
    'group': {'type': 'str'},
    'mode': {'type': 'raw', 'default': '0440'},
    'policies': {'type': 'dict'},
    'default_max_age_days': {'type': 'int', 'default': 90},
    'kek_backup_path': {'type': 'path'},
    'runtime_profiles': {'type': 'list', 'elements': 'path', 'default': []},
    'scan_processes': {'type': 'bool', 'default': True},
    'timeout': {'type': 'float', 'default': 5},
}, _secrets_prepare, _secrets_run)


# ---------------------------------------------------------------- network

NETWORK_IDS = ['ports.public', 'ports.services', 'network.firewall', 'network.default_deny', 'network.blocked_ranges']


def _network_prepare(params):
    prepared = _profile_and_selection(params, NETWORK_IDS)
    for item in params['blocked_ranges']:
        ipaddress.ip_network(item, strict=False)
    return prepared


def _network_run(module, params, prepared, gather):
    p = params
    selected = prepared['selected']
    records = []
    gathered = {'engines': [], 'containers': [], 'errors': []}
    if any(c.startswith('ports.') for c in selected):
        gathered = gather(with_proc=False)
        found, source, error = listeners(module)
        if 'ports.public' in selected:
            rec = check_public_ports(found, gathered['containers'], p['public_ports'], p['admin_ports'], source)
            records.append(rec)
        if 'ports.services' in selected:
            records.append(check_service_ports(prepared['profile'], found, gathered['containers'],
                                               edge_ports=p['public_ports']))
        extra = ([error] if error else []) + (gathered['errors'] if not gathered['containers'] else [])
        for rec in records:
            add_findings(rec, ['cannot measure: %s' % e for e in extra],
                         'Make the measurement possible (run as root, start the container engine) and verify again.')
    if any(c.startswith('network.') for c in selected):
        data, error = ruleset(module)
        if 'network.firewall' in selected:
            records.append(check_firewall(data, p['family'], p['table'], error=error))
        if 'network.default_deny' in selected:
            records.append(check_default_deny(data, p['family'], p['table'], error=error))
        if 'network.blocked_ranges' in selected:
            records.append(check_blocked_ranges(data, p['family'], p['table'], p['blocked_ranges'], error=error))
    return {'checks': records, 'engines': gathered['engines']}


NETWORK = Group('network', NETWORK_IDS, {
    'public_ports': {'type': 'list', 'elements': 'int', 'default': [443, 80]},
    'admin_ports': {'type': 'list', 'elements': 'int', 'default': [22]},
    'family': {'type': 'str', 'default': 'inet'},
    'table': {'type': 'str', 'default': 'caracal_filter'},
    'blocked_ranges': {'type': 'list', 'elements': 'str',
                       'default': ['169.254.0.0/16', '100.64.0.0/10', '224.0.0.0/4']},
}, _network_prepare, _network_run)


# ---------------------------------------------------------------- tls

TLS_IDS = ['tls.protocols', 'tls.certificate', 'tls.headers', 'tls.redirect']


def _show(address, port):
    return '[%s]:%d' % (address, port) if ':' in address else '%s:%d' % (address, port)


def _tls_prepare(params):
    return {'selected': select(params['checks'], TLS_IDS)}


def _tls_run(module, params, prepared, gather):
    p = params
    selected = prepared['selected']
    result = {'checks': [], 'library': ssl.OPENSSL_VERSION}
    records = result['checks']
    endpoint = _show(p['address'], p['port'])
    name = p['server_name']
    host_header = name if p['port'] == 443 else '%s:%d' % (name, p['port'])

    probes = {}
    der = None
    for protocol in ('TLSv1.2', 'TLSv1.3', 'TLSv1', 'TLSv1.1'):
        probe, cert = probe_protocol(p['address'], p['port'], name, protocol, p['timeout'])
        probes[protocol] = probe
        der = der or cert
    refused = all(pr.get('refused') for pr in probes.values() if pr.get('offered'))
    if refused:
        for check_id in selected:
            if not p['edge_expected']:
                records.append(not_applicable(check_id, 'nothing listens at %s and this host is not meant to serve the '
                                                        'edge (edge_expected=false)' % endpoint, {'endpoint': endpoint}))
            else:
                records.append(judged(check_id, ['no TLS endpoint answers at %s (connection refused)' % endpoint],
                                      {'endpoint': endpoint}))
        return result

    now = datetime.datetime.now(datetime.timezone.utc)
    for check_id in selected:
        if check_id == 'tls.protocols':
            records.append(check_protocols(dict((k, probes[k]) for k in PROTOCOLS), endpoint, ssl.OPENSSL_VERSION))
        elif check_id == 'tls.certificate':
            if der is None:
                records.append(check_certificate(None, name, now, p['min_days'], endpoint))
                continue
            try:
                facts = certificate_facts(module, der)
            except (RuntimeError, ValueError) as exc:
                records.append(judged(check_id, ['the certificate could not be read: %s' % to_native(exc)],
                                      {'endpoint': endpoint}))
                continue
            chain = verify_chain(p['address'], p['port'], name, p['ca_path'], p['timeout']) if p['ca_path'] else None
            records.append(check_certificate(facts, name, now, p['min_days'], endpoint, chain))
        elif check_id == 'tls.headers':
            answer = http_get(p['address'], p['port'], p['path'], headers={'Host': host_header}, timeout=p['timeout'],
                              context=tls_context(), server_name=name)
            records.append(check_headers(answer.get('headers') or [], p['hsts_min_age'], endpoint,
                                         answer.get('status'), answer.get('error')))
        elif check_id == 'tls.redirect':
            if not p['http_port']:
                records.append(not_applicable(check_id, 'http_port is 0: plain HTTP is not checked on this host'))
                continue
            where = _show(p['address'], p['http_port'])
            answer = http_get(p['address'], p['http_port'], '/', headers={'Host': name}, timeout=p['timeout'])
            records.append(check_redirect(answer.get('status'), answer.get('location'), name, where,
                                          error=answer.get('error'), refused=answer.get('refused', False)))
    return result


TLS = Group('tls', TLS_IDS, {
    'server_name': {'type': 'str', 'required': True},
    'address': {'type': 'str', 'default': '127.0.0.1'},
    'port': {'type': 'int', 'default': 443},
    'http_port': {'type': 'int', 'default': 80},
    'path': {'type': 'str', 'default': '/'},
    'min_days': {'type': 'int', 'default': 30},
    'hsts_min_age': {'type': 'int', 'default': 31536000},
    'ca_path': {'type': 'path'},
    'edge_expected': {'type': 'bool', 'default': True},
    'timeout': {'type': 'float', 'default': 5},
}, _tls_prepare, _tls_run, containers=False)


# ---------------------------------------------------------------- audit

AUDIT_IDS = ['audit.streams', 'audit.dlq', 'audit.pending']


def _audit_prepare(params):
    prepared = _profile_and_selection(params, AUDIT_IDS)
    prepared.update({'host': None, 'port': None, 'how': 'address option'})
    if params['address']:
        host, _sep, port = params['address'].rpartition(':')
        prepared['host'], prepared['port'] = host.strip('[]'), int(port)
        if not prepared['host']:
            raise ValueError('address must be host:port, got %r' % params['address'])
    return prepared


def _audit_run(module, params, prepared, gather):
    p = params
    profile, selected = prepared['profile'], prepared['selected']
    host, port, how = prepared['host'], prepared['port'], prepared['how']
    gathered = {'engines': [], 'errors': [], 'containers': []}
    records = []
    problem = None
    if not p['address']:
        gathered = gather(with_proc=False)
        target = redis_target(profile, gathered['containers'])
        if target is None:
            if gathered['errors'] and not gathered['containers']:
                problem = '; '.join(gathered['errors'])
            else:
                reason = ('no container engine (docker, podman) on this host' if not gathered['engines'] else
                          'Redis (service redis of project %r) does not run on this host' % p['project'])
                records = [not_applicable(c, reason, {'engines': gathered['engines'], 'project': p['project']})
                           for c in selected]
                return {'checks': records, 'engines': gathered['engines']}
        else:
            ctr, host, port, how = target
            if host is None:
                problem = 'container %s has neither a publish nor a network address' % ctr['name']
    endpoint = 'unknown' if problem or host is None else ('[%s]:%s' % (host, port) if ':' in host else '%s:%s' % (host, port))
    facts = None
    if not problem:
        password = read_value(os.path.join(p['store_path'], 'redisPassword'))
        if not password:
            problem = 'redisPassword is missing or empty in %s: cannot authenticate' % p['store_path']
        else:
            facts = audit_streams(host, port, password, profile, p['timeout'])
    if problem or facts is None:
        records = [judged(c, ['cannot reach the audit streams: %s' % problem], {'endpoint': endpoint}) for c in selected]
    else:
        for check_id in selected:
            if check_id == 'audit.streams':
                records.append(check_streams(profile, facts, endpoint))
            elif check_id == 'audit.dlq':
                records.append(check_dlq(profile, facts, endpoint, p['dlq_max_length'], p['dlq_previous_length']))
            elif check_id == 'audit.pending':
                records.append(check_pending(profile, facts, endpoint, p['pending_max']))
    for rec in records:
        rec['evidence']['reached_through'] = how
    return {'checks': records, 'engines': gathered['engines']}


AUDIT = Group('audit', AUDIT_IDS, {
    'store_path': {'type': 'path', 'required': True},
    'address': {'type': 'str'},
    'dlq_max_length': {'type': 'int', 'default': 0},
    'pending_max': {'type': 'int', 'default': 1000},
    'dlq_previous_length': {'type': 'int'},
    'timeout': {'type': 'float', 'default': 5},
}, _audit_prepare, _audit_run)


# ---------------------------------------------------------------- running

# In the order their records are reported.
GROUPS = (RUNTIME, SECRETS, NETWORK, TLS, AUDIT)


def run_group(module, group):
    """The whole of a single ``caracal_<group>_info`` module after its AnsibleModule is made."""
    try:
        prepared = group.prepare(module.params)
    except (ContractError, ValueError) as exc:
        module.fail_json(msg=to_native(exc))
    result = group.run(module, module.params, prepared, own_containers(module, module.params, prepared.get('profile')))
    module.exit_json(changed=False, summary=summary(result['checks']), **result)
