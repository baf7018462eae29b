# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks on the running containers: mode, containers, access, metrics, replay state.

Pure logic on parsed inputs: ``normalize_container`` turns one element of ``docker
inspect`` / ``podman inspect`` JSON (plus, optionally, what ``/proc/<pid>/status`` says
about its first process) into a plain dictionary; the ``check_*`` functions turn a list
of those into records (``_checks.record``). Environment values stay in memory: records
carry variable names, never values.

This is a private module_utils (leading underscore): its API may change between minor
releases of the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.caracal.hardened.plugins.module_utils._contract import fail_open_hits
from ansible_collections.caracal.hardened.plugins.module_utils._checks import (
    classify_address,
    judged,
    not_applicable,
)

# The one-shot job the deployment backends add to prepare the replay state (see
# _stack.py, REPLAY_INIT): it runs as root with CHOWN and FOWNER only, without network,
# and exits. It is the one container of a project that is allowed to be root.
REPLAY_INIT = 'replayInit'
REPLAY_INIT_CAPS = frozenset(['CHOWN', 'FOWNER'])

# Linux capability numbers (include/uapi/linux/capability.h), for /proc/<pid>/status.
CAPABILITIES = [
    'CHOWN', 'DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER', 'FSETID', 'KILL', 'SETGID', 'SETUID',
    'SETPCAP', 'LINUX_IMMUTABLE', 'NET_BIND_SERVICE', 'NET_BROADCAST', 'NET_ADMIN', 'NET_RAW',
    'IPC_LOCK', 'IPC_OWNER', 'SYS_MODULE', 'SYS_RAWIO', 'SYS_CHROOT', 'SYS_PTRACE', 'SYS_PACCT',
    'SYS_ADMIN', 'SYS_BOOT', 'SYS_NICE', 'SYS_RESOURCE', 'SYS_TIME', 'SYS_TTY_CONFIG', 'MKNOD',
    'LEASE', 'AUDIT_WRITE', 'AUDIT_CONTROL', 'SETFCAP', 'MAC_OVERRIDE', 'MAC_ADMIN', 'SYSLOG',
    'WAKE_ALARM', 'BLOCK_SUSPEND', 'AUDIT_READ', 'PERFMON', 'BPF', 'CHECKPOINT_RESTORE',
]

_ROOT_USERS = ('', 'root', '0')


# ---------------------------------------------------------------- parsing

def cap_name(cap):
    """``cap_net_admin`` / ``CAP_NET_ADMIN`` / ``NET_ADMIN`` -> ``NET_ADMIN``."""
    text = str(cap).strip().upper()
    return text[4:] if text.startswith('CAP_') else text


def caps_from_mask(mask):
    """Capability names of a ``CapBnd``/``CapEff`` hex mask."""
    value = int(mask, 16)
    names = set()
    for bit in range(value.bit_length()):
        if value >> bit & 1:
            names.add(CAPABILITIES[bit] if bit < len(CAPABILITIES) else 'CAP_%d' % bit)
    return names


def parse_proc_status(text):
    """The facts of ``/proc/<pid>/status`` a check needs: uids, capability sets, NoNewPrivs."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(':')
        if sep:
            fields[key.strip()] = value.strip()
    facts = {}
    if 'Uid' in fields:
        uids = [int(u) for u in fields['Uid'].split()]
        facts['uid'] = uids[0]
        facts['euid'] = uids[1] if len(uids) > 1 else uids[0]
    if 'Gid' in fields:
        facts['gid'] = int(fields['Gid'].split()[0])
    for key, name in (('CapEff', 'cap_eff'), ('CapBnd', 'cap_bnd'), ('CapPrm', 'cap_prm')):
        if key in fields:
            facts[name] = sorted(caps_from_mask(fields[key]))
    if 'NoNewPrivs' in fields:
        facts['no_new_privs'] = fields['NoNewPrivs'] == '1'
    if 'Name' in fields:
        facts['comm'] = fields['Name']
    return facts


def _env_pairs(env):
    pairs = []
    for entry in env or []:
        name, sep, value = str(entry).partition('=')
        pairs.append((name, value if sep else None))
    return pairs


def _publishes(net, host):
    ports = net.get('Ports')
    source = 'runtime'
    if not ports:
        ports = host.get('PortBindings') or {}
        source = 'config'
    out = []
    for key, bindings in sorted(ports.items()):
        port, _sep, proto = str(key).partition('/')
        for binding in bindings or []:
            try:
                host_port = int(binding.get('HostPort') or 0)
            except (TypeError, ValueError):
                host_port = 0
            out.append({'container_port': int(port), 'protocol': proto or 'tcp',
                        'host_ip': binding.get('HostIp') or '', 'host_port': host_port, 'source': source})
    return out


def normalize_container(data, engine='docker', proc=None):
    """One inspect element as a plain dictionary (``proc``: ``parse_proc_status`` facts)."""
    cfg = data.get('Config') or {}
    host = data.get('HostConfig') or {}
    state = data.get('State') or {}
    net = data.get('NetworkSettings') or {}
    labels = cfg.get('Labels') or {}
    name = str(data.get('Name') or '').lstrip('/')
    status = state.get('Status') or ('running' if state.get('Running') else 'unknown')
    security_opt = [str(o) for o in host.get('SecurityOpt') or []]
    nnp = any(re.match(r'^no-new-privileges(?:[:=](?:true|1|yes))?$', o.strip(), re.I) for o in security_opt)
    # podman reports the capability sets it applied
    eff = data.get('EffectiveCaps')
    bnd = data.get('BoundingCaps')
    proc = dict(proc or {})
    if bnd is not None and 'cap_bnd' not in proc:
        proc['cap_bnd'] = sorted(cap_name(c) for c in bnd)
    if eff is not None and 'cap_eff' not in proc:
        proc['cap_eff'] = sorted(cap_name(c) for c in eff)
    networks = {}
    for net_name, info in sorted((net.get('Networks') or {}).items()):
        networks[net_name] = (info or {}).get('IPAddress') or ''
    mounts = []
    for mount in data.get('Mounts') or []:
        mounts.append({'type': mount.get('Type') or '', 'source': mount.get('Source') or '',
                       'name': mount.get('Name') or '', 'destination': mount.get('Destination') or '',
                       'rw': bool(mount.get('RW'))})
    for target in sorted(host.get('Tmpfs') or {}):
        mounts.append({'type': 'tmpfs', 'source': '', 'name': '', 'destination': target, 'rw': True})
    try:
        cpu_quota = int(host.get('CpuQuota') or 0)
    except (TypeError, ValueError):
        cpu_quota = 0
    return {
        'id': str(data.get('Id') or '')[:12],
        'name': name,
        'engine': engine,
        'labels': dict(labels),
        'project': (labels.get('com.docker.compose.project') or labels.get('org.caracal.hardened.project')
                    or labels.get('io.podman.compose.project') or ''),
        'service': labels.get('com.docker.compose.service') or labels.get('org.caracal.hardened.service') or '',
        'kind_label': labels.get('org.caracal.hardened.kind') or '',
        'image': cfg.get('Image') or '',
        'running': bool(state.get('Running')) or status == 'running',
        'status': status,
        'exit_code': state.get('ExitCode'),
        # the engine's healthcheck verdict (healthy, unhealthy, starting), '' without a healthcheck
        'health': str(((state.get('Health') or state.get('Healthcheck') or {}).get('Status')) or ''),
        'pid': state.get('Pid') or 0,
        'user': str(cfg.get('User') or ''),
        'env': _env_pairs(cfg.get('Env')),
        'cap_add': sorted(set(cap_name(c) for c in host.get('CapAdd') or [])),
        'cap_drop': sorted(set(cap_name(c) for c in host.get('CapDrop') or [])),
        'privileged': bool(host.get('Privileged')),
        'security_opt': security_opt,
        'no_new_privileges': nnp,
        'read_only': bool(host.get('ReadonlyRootfs')),
        'memory': int(host.get('Memory') or 0),
        'nano_cpus': int(host.get('NanoCpus') or 0),
        'cpu_quota': cpu_quota,
        'pids_limit': int(host.get('PidsLimit') or 0),
        'publishes': _publishes(net, host),
        'networks': networks,
        'mounts': mounts,
        'proc': proc,
    }


def project_containers(containers, project, known=None):
    """The containers of Compose/Quadlet project ``project``, each with its ``service`` set.

    A container belongs to the project by its Compose project label (whatever its service),
    or, without that label, by its name: ``<project>-<service>[-N]``, ``<project>_<service>_N``
    or ``systemd-<project>-<service>`` where ``<service>`` is one of ``known`` (when given).
    """
    pattern = re.compile(r'^(?:systemd-)?%s[-_](?P<svc>[A-Za-z0-9.]+?)(?:[-_][0-9]+)?$' % re.escape(project))
    found = []
    for ctr in containers:
        if ctr['project']:
            if ctr['project'] != project:
                continue
        else:
            match = pattern.match(ctr['name'])
            if not match or (known is not None and match.group('svc') not in known):
                continue
            if not ctr['service']:
                ctr = dict(ctr, service=match.group('svc'))
        if not ctr['service']:
            ctr = dict(ctr, service=ctr['name'])
        found.append(ctr)
    return sorted(found, key=lambda c: (c['service'], c['name']))


def known_services(profile):
    """The service names a container of the deployment may run: the contract's and the replay init job."""
    return list(profile['services']) + [REPLAY_INIT]


def env_dict(ctr):
    return dict((k, v) for k, v in ctr['env'] if v is not None)


def _label(ctr):
    return ctr['service'] if ctr['service'] == ctr['name'] else '%s (%s)' % (ctr['service'], ctr['name'])


def role_of(profile, ctr):
    """``(kind, runtime)`` the contract gives a container: app, storage, job, init or unknown."""
    svc = profile['services'].get(ctr['service'])
    if svc is not None:
        return svc['kind'], svc.get('runtime') or {}
    if ctr['service'] == REPLAY_INIT:
        return 'init', {'cap_drop': ['ALL'], 'cap_add': sorted(REPLAY_INIT_CAPS), 'read_only': True,
                        'no_new_privileges': True, 'user': '0:0'}
    return 'unknown', {'cap_drop': ['ALL'], 'cap_add': [], 'read_only': True, 'no_new_privileges': True}


def _no_project(check_id, project, engines):
    if not engines:
        reason = 'no container engine (docker, podman) on this host'
    else:
        reason = 'no container of the Caracal project %r in %s on this host' % (project, ' or '.join(engines))
    return not_applicable(check_id, reason, {'engines': engines, 'project': project})


# ---------------------------------------------------------------- mode

def check_mode(profile, containers, project='caracal', engines=None):
    """``mode.caracal_mode``: every application container runs in a published mode."""
    if not containers:
        return _no_project('mode.caracal_mode', project, engines or [])
    default = profile['default_mode']
    findings = []
    modes = {}
    for ctr in containers:
        kind = role_of(profile, ctr)[0]
        env = env_dict(ctr)
        if kind != 'app' and 'CARACAL_MODE' not in env:
            continue
        value = env.get('CARACAL_MODE')
        effective = value if value else default
        modes[ctr['name']] = effective if value else '%s (unset: the default)' % default
        if effective not in profile['modes']:
            findings.append('%s: CARACAL_MODE=%s is not a Caracal mode (%s); the service refuses to start'
                            % (_label(ctr), value, ', '.join(profile['modes'])))
        elif effective not in profile['published_modes']:
            findings.append('%s: CARACAL_MODE=%s (only %s are acceptable outside a laptop)'
                            % (_label(ctr), value, ' or '.join(profile['published_modes'])))
    if not modes:
        return not_applicable('mode.caracal_mode', 'no application container of the project runs on this host',
                              {'containers': [c['name'] for c in containers]})
    return judged('mode.caracal_mode', findings, {'modes': modes})


def check_fail_open(profile, containers, project='caracal', engines=None):
    """``mode.fail_open``: no container turns a fail-open switch on."""
    if not containers:
        return _no_project('mode.fail_open', project, engines or [])
    findings = []
    for ctr in containers:
        for name, shown in fail_open_hits(profile, env_dict(ctr)):
            findings.append('%s: %s %s is a fail-open setting' % (_label(ctr), name, shown))
    return judged('mode.fail_open', findings, {
        'settings': sorted(profile.get('fail_open_settings') or {}),
        'containers': [c['name'] for c in containers]})


# ---------------------------------------------------------------- containers

def _is_root_user(user):
    return user.split(':', 1)[0].strip() in _ROOT_USERS


def check_non_root(profile, containers, project='caracal', engines=None):
    """``containers.non_root``: no container process runs as uid 0 (replayInit excepted)."""
    if not containers:
        return _no_project('containers.non_root', project, engines or [])
    findings = []
    users = {}
    for ctr in containers:
        kind = role_of(profile, ctr)[0]
        proc = ctr['proc']
        measured = ctr['running'] and 'euid' in proc
        users[ctr['name']] = {'configured': ctr['user'] or '(image default)',
                              'process_uid': proc.get('euid') if measured else None}
        if kind == 'init':
            users[ctr['name']]['note'] = 'one-shot replay-state job: root with CHOWN and FOWNER only, by design'
            continue
        if measured:
            if proc['euid'] == 0 or proc.get('uid') == 0:
                findings.append('%s: its process runs as uid 0 (root)' % _label(ctr))
        elif _is_root_user(ctr['user']):
            findings.append('%s: configured to run as %s and its process could not be measured'
                            % (_label(ctr), ctr['user'] or 'the image default user (root unless the image says otherwise)'))
    return judged('containers.non_root', findings, {'users': users})


def check_capabilities(profile, containers, project='caracal', engines=None):
    """``containers.capabilities``: CapDrop ALL, CapAdd within the contract, not privileged."""
    if not containers:
        return _no_project('containers.capabilities', project, engines or [])
    findings = []
    facts = {}
    for ctr in containers:
        kind, runtime = role_of(profile, ctr)
        allowed = set(cap_name(c) for c in runtime.get('cap_add') or [])
        bounding = ctr['proc'].get('cap_bnd')
        facts[ctr['name']] = {'cap_drop': ctr['cap_drop'], 'cap_add': ctr['cap_add'], 'allowed': sorted(allowed),
                              'bounding': bounding}
        if ctr['privileged']:
            findings.append('%s: runs privileged (every capability and device)' % _label(ctr))
        extra = sorted(set(ctr['cap_add']) - allowed)
        if extra:
            findings.append('%s: adds %s beyond the contract (allowed: %s)'
                            % (_label(ctr), ', '.join(extra), ', '.join(sorted(allowed)) or 'none'))
        if bounding is not None:
            held = sorted(set(bounding) - allowed - set(extra))
            if held:
                findings.append('%s: its process can still hold %s (not dropped)' % (_label(ctr), ', '.join(held)))
        elif 'ALL' not in ctr['cap_drop']:
            findings.append('%s: does not drop ALL capabilities (CapDrop: %s)'
                            % (_label(ctr), ', '.join(ctr['cap_drop']) or 'none'))
    return judged('containers.capabilities', findings, {'containers': facts})


def check_no_new_privileges(profile, containers, project='caracal', engines=None):
    """``containers.no_new_privileges``: measured from the process when it runs, else the config."""
    if not containers:
        return _no_project('containers.no_new_privileges', project, engines or [])
    findings = []
    facts = {}
    for ctr in containers:
        measured = ctr['proc'].get('no_new_privs') if ctr['running'] else None
        facts[ctr['name']] = {'configured': ctr['no_new_privileges'], 'process': measured}
        if measured is False or (measured is None and not ctr['no_new_privileges']):
            findings.append('%s: no-new-privileges is not set' % _label(ctr))
    return judged('containers.no_new_privileges', findings, {'containers': facts})


def check_read_only(profile, containers, project='caracal', engines=None):
    """``containers.read_only``: where the contract asks for it (apps, jobs) and for unknown containers."""
    if not containers:
        return _no_project('containers.read_only', project, engines or [])
    findings = []
    facts = {}
    for ctr in containers:
        kind, runtime = role_of(profile, ctr)
        required = bool(runtime.get('read_only'))
        facts[ctr['name']] = {'read_only': ctr['read_only'], 'required': required}
        if not required:
            facts[ctr['name']]['note'] = 'storage writes its data directory: read-only root not required by the contract'
        if required and not ctr['read_only']:
            findings.append('%s: the root filesystem is writable' % _label(ctr))
    return judged('containers.read_only', findings, {'containers': facts})


def check_limits(profile, containers, project='caracal', engines=None):
    """``containers.limits``: memory, CPU and pids limits on every container."""
    if not containers:
        return _no_project('containers.limits', project, engines or [])
    findings = []
    facts = {}
    for ctr in containers:
        cpus = ctr['nano_cpus'] / 1e9 if ctr['nano_cpus'] else (ctr['cpu_quota'] / 1e5 if ctr['cpu_quota'] > 0 else 0)
        facts[ctr['name']] = {'memory_bytes': ctr['memory'], 'cpus': cpus, 'pids': ctr['pids_limit']}
        missing = []
        if ctr['memory'] <= 0:
            missing.append('memory')
        if cpus <= 0:
            missing.append('cpu')
        if ctr['pids_limit'] <= 0:
            missing.append('pids')
        if missing:
            findings.append('%s: no %s limit' % (_label(ctr), ', '.join(missing)))
    return judged('containers.limits', findings, {'containers': facts})


def check_replay_state(profile, containers, project='caracal', engines=None):
    """``containers.replay_state``: sts and gateway keep replay state on a persistent mount."""
    replay = profile.get('replay_state') or {}
    wanted = replay.get('services') or []
    mine = [c for c in containers if c['service'] in wanted]
    if not containers:
        return _no_project('containers.replay_state', project, engines or [])
    if not mine:
        return not_applicable('containers.replay_state', 'neither %s runs on this host' % ' nor '.join(wanted),
                              {'containers': [c['name'] for c in containers]})
    path = replay['path']
    findings = []
    facts = {}
    for ctr in mine:
        holder = None
        for mount in ctr['mounts']:
            dest = mount['destination'].rstrip('/') or '/'
            if path == dest or path.startswith(dest + '/'):
                if holder is None or len(dest) > len(holder['destination']):
                    holder = mount
        if holder is None:
            findings.append('%s: nothing is mounted at %s: replay state lives in the container layer and is lost '
                            'on every rollout' % (_label(ctr), path))
            facts[ctr['name']] = None
            continue
        facts[ctr['name']] = {'type': holder['type'], 'destination': holder['destination'],
                              'volume': holder['name'] or holder['source']}
        if holder['type'] not in ('volume', 'bind'):
            findings.append('%s: %s is on a %s mount, which does not survive a rollout'
                            % (_label(ctr), path, holder['type']))
        elif not holder['rw']:
            findings.append('%s: the replay state mount %s is read-only' % (_label(ctr), holder['destination']))
    return judged('containers.replay_state', findings, {'path': path, 'mounts': facts})


# ---------------------------------------------------------------- access

def control_gates(profile, containers):
    """``[(container, mount or None, gate path or None)]`` for the services with a control gate."""
    out = []
    for ctr in containers:
        svc = profile['services'].get(ctr['service'])
        if not svc or not svc.get('control_gate'):
            continue
        mount = None
        for m in ctr['mounts']:
            if m['destination'].rstrip('/') == profile['control_gate_mount']:
                mount = m
        gate = None
        if mount and mount['source']:
            gate = mount['source'].rstrip('/') + '/' + profile['control_gate_file']
        out.append((ctr, mount, gate))
    return out


def check_control(profile, containers, gate_present, enabled=False, project='caracal', engines=None):
    """``access.control``: the gate file is absent unless Control is meant to be on.

    ``gate_present`` maps a gate path (from ``control_gates``) to whether the file exists.
    """
    if not containers:
        return _no_project('access.control', project, engines or [])
    gates = control_gates(profile, containers)
    if not gates:
        return not_applicable('access.control', 'no service with a Control gate (api) runs on this host',
                              {'containers': [c['name'] for c in containers]})
    findings = []
    facts = {}
    for ctr, mount, gate in gates:
        present = bool(gate and gate_present.get(gate))
        facts[ctr['name']] = {'mount': mount['source'] if mount else None, 'gate_file': gate,
                              'gate_present': present, 'expected_enabled': bool(enabled)}
        if mount and mount['rw']:
            findings.append('%s: mounts the control directory read-write (it could open its own gate)' % _label(ctr))
        if present and not enabled:
            findings.append('%s: Control is enabled: the gate file %s exists' % (_label(ctr), gate))
    detail = ''
    if enabled and not any(f['gate_present'] for f in facts.values()):
        detail = 'Control is meant to be on, but no gate file is present: Control answers 503'
    return judged('access.control', findings, {'services': facts}, detail=detail)


def check_sts_admin_token(profile, containers, project='caracal', engines=None):
    """``access.sts_admin_token``: STS_ADMIN_TOKEN empty, no STS_ADMIN_TOKEN_FILE."""
    if not containers:
        return _no_project('access.sts_admin_token', project, engines or [])
    sts = [c for c in containers if c['service'] == 'sts']
    if not sts:
        return not_applicable('access.sts_admin_token', 'sts does not run on this host',
                              {'containers': [c['name'] for c in containers]})
    findings = []
    facts = {}
    for ctr in sts:
        env = env_dict(ctr)
        value = env.get('STS_ADMIN_TOKEN')
        facts[ctr['name']] = {'STS_ADMIN_TOKEN': 'unset' if value is None else ('empty' if not value else 'set'),
                              'STS_ADMIN_TOKEN_FILE': 'set' if env.get('STS_ADMIN_TOKEN_FILE') else 'unset'}
        if value:
            findings.append('%s: STS_ADMIN_TOKEN is set (non-empty): the internal endpoints are open' % _label(ctr))
        if env.get('STS_ADMIN_TOKEN_FILE'):
            findings.append('%s: STS_ADMIN_TOKEN_FILE is set: the internal endpoints may be open' % _label(ctr))
    return judged('access.sts_admin_token', findings, {'sts': facts})


def check_gateway_allowlist(profile, containers, project='caracal', engines=None):
    """``access.gateway_allowlist``: UPSTREAM_HOST_ALLOWLIST pins the gateway's egress."""
    if not containers:
        return _no_project('access.gateway_allowlist', project, engines or [])
    gateways = [c for c in containers if c['service'] == 'gateway']
    if not gateways:
        return not_applicable('access.gateway_allowlist', 'the gateway does not run on this host',
                              {'containers': [c['name'] for c in containers]})
    findings = []
    facts = {}
    for ctr in gateways:
        value = env_dict(ctr).get('UPSTREAM_HOST_ALLOWLIST') or ''
        hosts = [h.strip() for h in value.split(',') if h.strip()]
        facts[ctr['name']] = hosts
        if not hosts:
            findings.append('%s: UPSTREAM_HOST_ALLOWLIST is empty: the gateway may reach any upstream the firewall '
                            'lets through' % _label(ctr))
    return judged('access.gateway_allowlist', findings, {'allowlist': facts})


# ---------------------------------------------------------------- metrics

def metrics_targets(profile, containers):
    """Where to ask each running metrics endpoint, ``[(container, host, port, how)]``."""
    return service_targets(profile, containers, lambda svc: 'metricsBearer' in (svc.get('secrets') or {}))


def ready_targets(profile, containers):
    """Where to ask each running application's ``/ready``, ``[(container, host, port, how)]``."""
    return service_targets(profile, containers, lambda svc: svc['kind'] == 'app')


def service_targets(profile, containers, wanted):
    """Where to reach the contract port of each running container whose service is ``wanted``.

    A loopback or private publish of the contract port first, else the container's
    address on one of its networks.
    """
    targets = []
    for ctr in containers:
        svc = profile['services'].get(ctr['service'])
        if not svc or not wanted(svc) or not ctr['running'] or not svc.get('port'):
            continue
        port = int(svc['port'])
        chosen = None
        for pub in ctr['publishes']:
            if pub['container_port'] == port and pub['host_port']:
                host = pub['host_ip']
                if classify_address(host) == 'wildcard':
                    host = '127.0.0.1' if ':' not in host else '::1'
                chosen = (host, pub['host_port'], 'publish')
                break
        if chosen is None:
            for _net, ip in sorted(ctr['networks'].items()):
                if ip:
                    chosen = (ip, port, 'container network')
                    break
        targets.append((ctr, chosen[0] if chosen else None, chosen[1] if chosen else None,
                        chosen[2] if chosen else 'unreachable'))
    return targets


def check_metrics(profile, containers, probes, project='caracal', engines=None):
    """``metrics.bearer``: ``probes`` maps a container name to ``{'status': int}`` or ``{'error': str}``
    (asked without a bearer, must be 401) and, when the store was read, ``current`` (the answer to
    the current bearer, must be 200) and ``retired`` (the answers to each retired bearer, must be
    401): ``{'status': int}`` or ``{'error': str}`` each."""
    if not containers:
        return _no_project('metrics.bearer', project, engines or [])
    targets = metrics_targets(profile, containers)
    if not targets:
        return not_applicable('metrics.bearer', 'no running service with a metrics endpoint on this host',
                              {'containers': [c['name'] for c in containers]})
    findings = []
    facts = {}
    for ctr, host, port, how in targets:
        probe = probes.get(ctr['name']) or {}
        facts[ctr['name']] = {'address': '%s:%s' % (host, port) if host else None, 'via': how,
                              'status': probe.get('status'), 'error': probe.get('error')}
        if host is None:
            findings.append('%s: no address to reach its metrics endpoint from the host' % _label(ctr))
        elif 'status' not in probe:
            findings.append('%s: /metrics at %s:%s did not answer (%s)'
                            % (_label(ctr), host, port, probe.get('error') or 'not probed'))
        elif probe['status'] != 401:
            findings.append('%s: /metrics answered %s without a bearer token (expected 401)'
                            % (_label(ctr), probe['status']))
        if 'current' in probe:
            answer = probe['current']
            facts[ctr['name']]['current_bearer'] = answer.get('status', answer.get('error'))
            if answer.get('status') != 200:
                findings.append('%s: /metrics answered %s to the current bearer (expected 200): the service holds '
                                'another metricsBearer than the store' % (_label(ctr), answer.get('status') or
                                                                          answer.get('error')))
        retired = probe.get('retired') or []
        if retired:
            facts[ctr['name']]['retired_bearers'] = [a.get('status', a.get('error')) for a in retired]
        accepted = [a for a in retired if a.get('status') == 200]
        if accepted:
            findings.append('%s: /metrics accepts %d retired bearer(s): the service was not restarted after the '
                            'rotation' % (_label(ctr), len(accepted)))
    return judged('metrics.bearer', findings, {'endpoints': facts})
