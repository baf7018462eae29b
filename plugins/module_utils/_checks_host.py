# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The thin, read-only I/O of the verification modules.

Everything here only reads: ``docker``/``podman`` ``ps`` and ``inspect``, ``systemctl show``,
``ss``, ``nft -j list ruleset``, ``/proc``, the group database, file metadata and small files,
HTTP(S) GETs and TLS handshakes to the host's own endpoints, logins to Postgres and Redis
(``_datastores``), and Redis read commands (``RespClient``). The ``_checks_*`` files judge
what this returns, and ``_checks_groups`` only hands one to the other: no other ``_checks_*``
file runs a command, opens a socket or reads the host. Secret values read from the store stay
in memory and are never returned.

This is a private module_utils (leading underscore): its API may change between minor
releases of the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import grp
import http.client
import json
import os
import socket
import ssl
import stat
import warnings

from ansible.module_utils.common.text.converters import to_native, to_text

from ansible_collections.caracal.hardened.plugins.module_utils import _layout
from ansible_collections.caracal.hardened.plugins.module_utils._checks import judged
from ansible_collections.caracal.hardened.plugins.module_utils._checks_audit import Reader, RespError, encode, xinfo_dict
from ansible_collections.caracal.hardened.plugins.module_utils._checks_health import credentials_to_try
from ansible_collections.caracal.hardened.plugins.module_utils._checks_network import parse_proc_net_tcp, parse_ss
from ansible_collections.caracal.hardened.plugins.module_utils._checks_runtime import (
    metrics_targets,
    normalize_container,
    parse_proc_status,
    project_containers,
    ready_targets,
    service_targets,
)
from ansible_collections.caracal.hardened.plugins.module_utils._checks_tls import (
    certificate_facts_crypto,
    certificate_facts_openssl,
    offers,
    parse_client_hello,
)
from ansible_collections.caracal.hardened.plugins.module_utils._datastores import pg_login, redis_auth
from ansible_collections.caracal.hardened.plugins.module_utils._secrets import trim

ENGINES = ('docker', 'podman')
MAX_SMALL_FILE = 4096
MAX_BACKUP_FILES = 2000
MAX_PROC_READ = 1 << 20
# Retired metrics bearers tried against each endpoint (the newest archived values).
RETIRED_BEARERS = 3
# What a /ready answer's body may add to a finding; the largest JWKS document read.
READY_BODY_LIMIT = 2048
JWKS_BODY_LIMIT = 65536

_TLS_VERSIONS = {
    'TLSv1': 'TLSv1',
    'TLSv1.1': 'TLSv1_1',
    'TLSv1.2': 'TLSv1_2',
    'TLSv1.3': 'TLSv1_3',
}


# ---------------------------------------------------------------- files

def file_fact(path):
    """Type, owner and mode of ``path`` without following a symbolic link."""
    try:
        st = os.lstat(path)
    except OSError:
        return {'path': path, 'exists': False, 'type': None, 'uid': None, 'gid': None, 'mode': None}
    if stat.S_ISLNK(st.st_mode):
        kind = 'link'
    elif stat.S_ISDIR(st.st_mode):
        kind = 'dir'
    elif stat.S_ISREG(st.st_mode):
        kind = 'file'
    else:
        kind = 'other'
    return {'path': path, 'exists': True, 'type': kind, 'uid': st.st_uid, 'gid': st.st_gid,
            'mode': stat.S_IMODE(st.st_mode)}


def read_small(path, limit=MAX_SMALL_FILE):
    """The text of a regular file of at most ``limit`` bytes (``None`` otherwise); never follows a link."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NOFOLLOW', 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        data = b''
        while True:
            chunk = os.read(fd, limit + 1 - len(data))
            if not chunk:
                break
            data += chunk
            if len(data) > limit:
                return None
        return data.decode('utf-8', 'replace')
    finally:
        os.close(fd)


def _listdir(path):
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def secrets_snapshot(profile, store_path, views_path, archive_path, evidence_path, services, names):
    """What ``_checks_secrets`` judges: facts of every path, values in memory, state, evidence lines."""
    store = {'path': store_path, 'fact': file_fact(store_path), 'files': {}, 'extra': []}
    for name in names:
        path = os.path.join(store_path, name)
        fact = file_fact(path)
        store['files'][name] = {'fact': fact, 'value': read_small(path) if fact['type'] == 'file' else None}
    for entry in _listdir(store_path):
        if entry not in store['files']:
            store['extra'].append(file_fact(os.path.join(store_path, entry)))
    views = {'path': views_path, 'fact': file_fact(views_path), 'services': {}, 'unknown': []}
    for svc in services:
        reads = profile['services'][svc]['secrets']
        directory = os.path.join(views_path, svc)
        view = {'fact': file_fact(directory), 'files': {}, 'extra': []}
        for name in reads:
            path = os.path.join(directory, name)
            fact = file_fact(path)
            view['files'][name] = {'fact': fact, 'value': read_small(path) if fact['type'] == 'file' else None}
        for entry in _listdir(directory):
            if entry not in reads:
                view['extra'].append(file_fact(os.path.join(directory, entry)))
        views['services'][svc] = view
    for entry in _listdir(views_path):
        if entry not in services:
            views['unknown'].append(entry)
    archive = {'path': archive_path, 'fact': file_fact(archive_path), 'entries': [], 'state': None, 'state_error': ''}
    for root, dirs, files in os.walk(archive_path):
        dirs.sort()
        for entry in sorted(dirs) + sorted(files):
            archive['entries'].append(file_fact(os.path.join(root, entry)))
    state = _layout.state_path(archive_path)
    text = read_small(state, limit=1 << 22)
    if text is None:
        archive['state_error'] = 'missing or unreadable: %s' % state
    else:
        try:
            archive['state'] = json.loads(text)
        except ValueError as exc:
            archive['state_error'] = 'not JSON: %s' % exc
    # The open rotation journal: absent when no rotation owes work.
    journal = _layout.journal_path(archive_path)
    archive.update({'journal_path': journal, 'journal': None, 'journal_error': ''})
    if os.path.lexists(journal):
        text = read_small(journal, limit=1 << 22)
        try:
            archive['journal'] = json.loads(text) if text is not None else None
            if archive['journal'] is None:
                archive['journal_error'] = 'unreadable'
        except ValueError as exc:
            archive['journal_error'] = 'not JSON: %s' % exc
    evidence = {'path': evidence_path, 'fact': file_fact(evidence_path), 'lines': []}
    text = read_small(evidence_path, limit=1 << 26)
    if text is not None:
        evidence['lines'] = text.splitlines()
    return {'store': store, 'views': views, 'archive': archive, 'evidence': evidence}


def backup_files(path):
    """``[{'fact', 'value'}]`` under a KEK backup path (a file or a directory tree)."""
    out = []
    fact = file_fact(path)
    if not fact['exists']:
        return out
    if fact['type'] != 'dir':
        return [{'fact': fact, 'value': read_small(path, 256) if fact['type'] == 'file' else None}]
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            item = file_fact(full)
            out.append({'fact': item, 'value': read_small(full, 256) if item['type'] == 'file' else None})
            if len(out) >= MAX_BACKUP_FILES:
                return out
    return out


def runtime_profiles(paths):
    out = []
    for path in paths:
        files = [file_fact(os.path.join(path, 'caracal.toml')), file_fact(os.path.join(path, 'client_secret'))]
        for entry in _listdir(path):
            if entry not in ('caracal.toml', 'client_secret'):
                files.append(file_fact(os.path.join(path, entry)))
        out.append({'path': path, 'fact': file_fact(path), 'files': files})
    return out


def read_value(path):
    """The trimmed text of a small file of the store (``''`` when absent or empty), in memory only."""
    text = read_small(path)
    return trim(text) if text else ''


def store_values(store_path):
    """The values of the store of 8 characters or more, longest first (in memory only: what an
    answer of a service must not show); ``[]`` without a store."""
    if not store_path or not os.path.isdir(store_path):
        return []
    values = [read_value(os.path.join(store_path, name)) for name in sorted(os.listdir(store_path))]
    return sorted((v for v in values if len(v) >= 8), key=len, reverse=True)


def metrics_bearers(store_path, archive_path):
    """``(current, [retired])`` metricsBearer values (in memory only); ``(None, [])`` without a store."""
    if not store_path:
        return None, []
    current = read_value(os.path.join(store_path, 'metricsBearer')) or None
    retired = []
    directory = os.path.join(archive_path, 'metricsBearer') if archive_path else None
    if directory and os.path.isdir(directory):
        for entry in sorted(os.listdir(directory), reverse=True):
            value = read_value(os.path.join(directory, entry))
            if value and value != current and value not in retired:
                retired.append(value)
            if len(retired) >= RETIRED_BEARERS:
                break
    return current, retired


def paths_present(paths):
    """``{path: whether it exists}``, a symbolic link counting as present (not followed)."""
    return dict((path, os.path.lexists(path)) for path in paths)


def resolve_group(group, default_gid):
    """The gid of ``group`` (a name or a number; ``default_gid`` when ``None``) in the host's group database."""
    if group is None:
        return default_gid
    if str(group).isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ValueError('group %s does not exist on this host' % group) from None


# ---------------------------------------------------------------- /proc

def proc_status(pid):
    text = read_small('/proc/%d/status' % int(pid), limit=1 << 16) if pid else None
    return parse_proc_status(text) if text else {}


def _read_proc(path):
    try:
        with open(path, 'rb') as handle:
            return handle.read(MAX_PROC_READ)
    except (IOError, OSError):
        return None


def scan_processes():
    """``([{'pid', 'comm', 'environ', 'cmdline'}], unreadable)`` for every process of the host."""
    procs = []
    unreadable = 0
    own = os.getpid()
    for entry in _listdir('/proc'):
        if not entry.isdigit() or int(entry) == own:
            continue
        environ = _read_proc('/proc/%s/environ' % entry)
        cmdline = _read_proc('/proc/%s/cmdline' % entry)
        if environ is None and cmdline is None:
            unreadable += 1
            continue
        comm = _read_proc('/proc/%s/comm' % entry) or b''
        procs.append({
            'pid': int(entry),
            'comm': to_text(comm.strip(), errors='replace'),
            'environ': [to_text(e, errors='replace') for e in (environ or b'').split(b'\0') if e],
            'cmdline': to_text((cmdline or b'').replace(b'\0', b' '), errors='replace'),
        })
    return procs, unreadable


# ---------------------------------------------------------------- container engines

def gather_containers(module, engine='auto', project='caracal', with_proc=True, known=None):
    """Find the engines and the containers of ``project``.

    Returns ``{'engines': [answering engines], 'errors': [str], 'containers': [normalized],
    'raw': {name: inspect element}}``. An engine binary that is installed but does not
    answer is an error, never a silent "nothing here". ``known`` (service names) limits
    the containers matched by name alone (see ``project_containers``).
    """
    wanted = ENGINES if engine == 'auto' else (engine,)
    result = {'engines': [], 'errors': [], 'containers': [], 'raw': {}}
    for name in wanted:
        binary = module.get_bin_path(name)
        if not binary:
            if engine != 'auto':
                result['errors'].append('%s is not installed' % name)
            continue
        rc, out, err = module.run_command([binary, 'ps', '--all', '--quiet', '--no-trunc'])
        if rc != 0:
            lines = (err or out or '').strip().splitlines()
            result['errors'].append('%s is installed but its engine does not answer: %s'
                                    % (name, lines[-1] if lines else 'exit status %d' % rc))
            continue
        result['engines'].append(name)
        ids = [line.strip() for line in out.splitlines() if line.strip()]
        if not ids:
            continue
        rc, out, err = module.run_command([binary, 'inspect', '--type', 'container'] + ids
                                          if name == 'docker' else [binary, 'container', 'inspect'] + ids)
        if rc != 0:
            # a container removed between ps and inspect: inspect what is still there
            data = []
            for cid in ids:
                rc1, out1, dummy = module.run_command([binary, 'inspect', cid])
                if rc1 == 0:
                    data.extend(json.loads(out1))
        else:
            data = json.loads(out)
        normalized = []
        for item in data:
            ctr = normalize_container(item, engine=name)
            normalized.append((ctr, item))
        mine = project_containers([c for c, _i in normalized], project, known)
        names = set(c['name'] for c in mine)
        result['containers'].extend(mine)
        for ctr, item in normalized:
            if ctr['name'] in names:
                result['raw'][ctr['name']] = item
    if with_proc:
        add_proc_status(result['containers'])
    return result


def add_proc_status(containers):
    """Add what ``/proc/<pid>/status`` says about the first process of each running container."""
    for ctr in containers:
        if ctr['running'] and ctr['pid']:
            ctr['proc'].update(proc_status(ctr['pid']))
    return containers


def engine_errors(check_id, gathered):
    """A failing record when no engine answered although one is installed (``None`` otherwise)."""
    if gathered['containers'] or not gathered['errors']:
        return None
    return judged(check_id, gathered['errors'], {'engines': gathered['engines']})


def job_units(module, profile, project, containers):
    """``systemctl show`` of the unit of each one-shot job that has no container (Podman's
    Quadlet units remove a job's container once it completed)."""
    present = set(c['service'] for c in containers)
    wanted = [n for n in profile['start_order'] if profile['services'][n]['kind'] == 'job' and n not in present]
    systemctl = module.get_bin_path('systemctl') if wanted else None
    units = {}
    for name in wanted if systemctl else []:
        rc, out, dummy = module.run_command([systemctl, 'show', '--property=Id,LoadState,ActiveState,Result',
                                             '%s-%s.service' % (project, name)])
        if rc == 0:
            units[name] = dict(line.split('=', 1) for line in out.splitlines() if '=' in line)
    return units


# ---------------------------------------------------------------- listeners and the firewall

def listeners(module):
    """``(listeners, source, error)``: ``ss -Hltnp``, else ``/proc/net/tcp{,6}`` (no processes then)."""
    ss = module.get_bin_path('ss')
    if ss:
        rc, out, err = module.run_command([ss, '-H', '-l', '-t', '-n', '-p'])
        if rc == 0:
            return parse_ss(out), 'ss -Hltnp', None
    found = []
    error = None
    for path in ('/proc/net/tcp', '/proc/net/tcp6'):
        text = read_small(path, limit=1 << 24)
        if text is None:
            error = 'cannot read %s' % path
            continue
        found.extend(parse_proc_net_tcp(text))
    return found, '/proc/net/tcp{,6}', None if found or not error else error


def ruleset(module):
    """``(nft JSON, error)`` of ``nft -j list ruleset``."""
    nft = module.get_bin_path('nft')
    if not nft:
        return None, 'nft (nftables) is not installed'
    rc, out, err = module.run_command([nft, '-j', 'list', 'ruleset'])
    if rc != 0:
        return None, 'nft -j list ruleset failed: %s' % (err or out).strip()
    try:
        return json.loads(out or '{"nftables": []}'), None
    except ValueError as exc:
        return None, 'nft printed no JSON: %s' % exc


# ---------------------------------------------------------------- network

def http_get(host, port, path='/', headers=None, timeout=5.0, context=None, server_name=None, body_limit=0):
    """``{'status', 'headers': [(k, v)], 'location'}`` or ``{'error', 'refused'}``; the body is
    discarded, or its first ``body_limit`` bytes returned as ``body`` (text)."""
    sock = None
    try:
        sock = socket.create_connection((host, int(port)), timeout=timeout)
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname=server_name or host)
        conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
        conn.sock = sock
        conn.request('GET', path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read(65536)
        items = list(resp.getheaders())
        conn.close()
        answer = {'status': resp.status, 'headers': items, 'location': resp.getheader('Location')}
        if body_limit:
            answer['body'] = to_text(body[:body_limit], errors='surrogate_or_replace')
        return answer
    except ConnectionRefusedError as exc:
        return {'error': 'connection refused (%s)' % exc, 'refused': True}
    except (OSError, ssl.SSLError, http.client.HTTPException, ValueError) as exc:
        return {'error': to_native(exc) or type(exc).__name__, 'refused': False}
    finally:
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass


def tls_context(protocol=None):
    """A client context that does not verify (the checks judge the certificate themselves)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if protocol:
        with warnings.catch_warnings():
            # Pinning TLS 1.0/1.1 is deprecated on purpose: the probe proves the edge refuses them.
            warnings.simplefilter('ignore', DeprecationWarning)
            version = getattr(ssl.TLSVersion, _TLS_VERSIONS[protocol])
            ctx.minimum_version = version
            ctx.maximum_version = version
        if protocol in ('TLSv1', 'TLSv1.1'):
            # OpenSSL 3 refuses the old protocols' SHA-1 based handshakes above level 0.
            try:
                ctx.set_ciphers('ALL:@SECLEVEL=0')
            except ssl.SSLError:
                pass
    return ctx


def what_client_offers(protocol, server_name):
    """``(offered, error)``: whether the local TLS library puts ``protocol`` in its ClientHello.

    Measured with an in-memory handshake: the first flight is parsed, nothing is sent.
    """
    try:
        ctx = tls_context(protocol)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
        try:
            obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        data = outgoing.read()
        if not data:
            return False, 'no ClientHello was produced'
        return offers(parse_client_hello(data), protocol), ''
    except (ssl.SSLError, ValueError, AttributeError) as exc:
        return False, getattr(exc, 'reason', None) or to_native(exc)


def probe_protocol(address, port, server_name, protocol, timeout=5.0):
    """One handshake limited to ``protocol``: what was offered, accepted and negotiated."""
    offered, offer_error = what_client_offers(protocol, server_name)
    probe = {'offered': offered, 'offer_error': offer_error}
    if not offered:
        return probe, None
    sock = None
    try:
        sock = socket.create_connection((address, int(port)), timeout=timeout)
        tls = tls_context(protocol).wrap_socket(sock, server_hostname=server_name)
        sock = tls
        probe.update({'accepted': True, 'negotiated': tls.version(), 'cipher': (tls.cipher() or [None])[0]})
        return probe, tls.getpeercert(binary_form=True)
    except ConnectionRefusedError:
        probe.update({'accepted': False, 'error': 'connection refused', 'refused': True})
    except ssl.SSLError as exc:
        probe.update({'accepted': False, 'error': exc.reason or to_native(exc)})
    except (OSError, ValueError) as exc:
        probe.update({'accepted': False, 'error': to_native(exc) or type(exc).__name__})
    finally:
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
    return probe, None


def verify_chain(address, port, server_name, ca_path, timeout=5.0):
    """A handshake that verifies the chain and the name against ``ca_path``."""
    sock = None
    try:
        ctx = ssl.create_default_context(cafile=ca_path)
        sock = socket.create_connection((address, int(port)), timeout=timeout)
        sock = ctx.wrap_socket(sock, server_hostname=server_name)
        return {'verified': True, 'error': '', 'ca_path': ca_path}
    except (ssl.SSLError, ssl.CertificateError, OSError, ValueError) as exc:
        return {'verified': False, 'error': getattr(exc, 'verify_message', None) or to_native(exc), 'ca_path': ca_path}
    finally:
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass


def certificate_facts(module, der):
    """Certificate facts through ``cryptography`` when importable, else ``openssl x509``."""
    try:
        from cryptography import x509  # pylint: disable=import-outside-toplevel
    except ImportError:
        x509 = None
    if x509 is not None:
        return certificate_facts_crypto(x509.load_der_x509_certificate(der))
    openssl = module.get_bin_path('openssl')
    if not openssl:
        raise RuntimeError('neither the python cryptography library nor the openssl command is available')
    rc, out, err = module.run_command([openssl, 'x509', '-noout', '-subject', '-issuer', '-startdate', '-enddate',
                                       '-serial', '-ext', 'subjectAltName', '-nameopt', 'RFC2253'],
                                      data=ssl.DER_cert_to_PEM_cert(der))
    if rc != 0:
        raise RuntimeError('openssl x509 failed: %s' % err.strip())
    return certificate_facts_openssl(out)


# ---------------------------------------------------------------- the services' endpoints

def _answer(answer):
    return {'status': answer['status']} if 'status' in answer else {'error': answer['error']}


def _bearer(value):
    return {'Authorization': 'Bearer %s' % value}


def metrics_probes(profile, containers, params):
    """What ``check_metrics`` judges: each endpoint asked without a bearer, and with the current
    and the retired bearers when the store is given."""
    current, retired = metrics_bearers(params.get('store_path'), params.get('archive_path'))
    probes = {}
    for ctr, host, port, _how in metrics_targets(profile, containers):
        if host is None:
            continue
        probe = _answer(http_get(host, port, '/metrics', timeout=params['timeout']))
        if current:
            probe['current'] = _answer(http_get(host, port, '/metrics', headers=_bearer(current),
                                                timeout=params['timeout']))
        if retired:
            probe['retired'] = [_answer(http_get(host, port, '/metrics', headers=_bearer(value),
                                                 timeout=params['timeout'])) for value in retired]
        probes[ctr['name']] = probe
    return probes


def _reason(body, known):
    """The reason a /ready body gives (JSON ``reason``, ``error`` or ``dependency``; the web tier's
    ``status``; else the text), with every value of the store replaced."""
    text = (body or '').strip()
    try:
        data = json.loads(text)
        if isinstance(data, dict):
            text = (', '.join(str(data[k]) for k in ('reason', 'error', 'dependency') if data.get(k))
                    or str(data.get('status') or '') or text)
    except ValueError:
        pass
    for value in known:
        text = text.replace(value, '<redacted>')
    return text


def ready_probes(profile, containers, params):
    """``/ready`` of every running application container (``None``: no address to reach it)."""
    known = store_values(params.get('store_path'))
    probes = {}
    for ctr, host, port, _how in ready_targets(profile, containers):
        if host is None:
            probes[ctr['name']] = None
            continue
        answer = http_get(host, port, profile['healthcheck']['path'], timeout=params['timeout'],
                          body_limit=READY_BODY_LIMIT)
        probe = _answer(answer)
        if 'status' in answer and answer['status'] != 200:
            probe['reason'] = _reason(answer.get('body'), known)
        probes[ctr['name']] = probe
    return probes


def jwks_answers(profile, containers, params):
    """The JWKS document of every running issuer (``None``: no address to reach it)."""
    answers = {}
    for ctr, host, port, _how in service_targets(profile, containers, lambda svc: bool(svc.get('jwks_path'))):
        if host is None:
            answers[ctr['name']] = None
            continue
        path = profile['services'][ctr['service']]['jwks_path']
        answer = http_get(host, port, path, timeout=params['timeout'], body_limit=JWKS_BODY_LIMIT)
        found = _answer(answer)
        if answer.get('status') == 200:
            try:
                found['document'] = json.loads(answer.get('body') or '')
            except ValueError:
                found['document'] = None
        answers[ctr['name']] = found
    return answers


# ---------------------------------------------------------------- datastores

def credential_logins(profile, snapshot, containers, timeout):
    """``(attempts, servers)``, what ``check_credentials`` judges: a login to Postgres or Redis
    with every credential of the views.

    The servers are reached at their publish or their container address (storage is not
    published by default); identical credentials are tried once."""
    servers = {}
    for ctr, host, port, _how in service_targets(profile, containers, lambda svc: svc['kind'] == 'storage'):
        if ctr['service'] in ('postgres', 'redis') and host:
            servers.setdefault(ctr['service'], (host, int(port)))
    tried = {}
    attempts = []
    for svc, secret, server, user, password, database in credentials_to_try(profile, snapshot):
        where = servers.get(server)
        key = (server, user, password, database)
        if where and key not in tried:
            if server == 'postgres':
                tried[key] = pg_login(where[0], where[1], user, password, database or user, timeout=timeout)
            else:
                tried[key] = redis_auth(where[0], where[1], password, timeout=timeout)
        accepted, detail = tried.get(key, (False, 'not tried'))
        attempts.append({'service': svc, 'secret': secret, 'server': server, 'user': user, 'accepted': accepted,
                         'detail': detail})
    shown = dict((name, '%s:%d' % servers[name] if name in servers else None) for name in ('postgres', 'redis'))
    return attempts, shown


class RespClient(object):
    """One connection to Redis, with a timeout on every operation (RESP2: ``_checks_audit``)."""

    def __init__(self, host, port, timeout=5.0):
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.reader = Reader(self.sock.recv)

    def call(self, *args):
        self.sock.sendall(encode(*args))
        return self.reader.read()

    def auth(self, password):
        try:
            return self.call('AUTH', password)
        except RespError as exc:
            # Redis never echoes the password, but make sure of it.
            raise RespError(str(exc).replace(password, '<redacted>'))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def read_streams(client, profile):
    """Ask an authenticated ``client`` about both streams (types, lengths, consumer groups)."""
    facts = {'types': {}, 'lengths': {}, 'groups': {}}
    for name in (profile['audit_stream'], profile['audit_dlq']):
        kind = client.call('TYPE', name)
        facts['types'][name] = kind
        if kind == 'stream':
            facts['lengths'][name] = client.call('XLEN', name)
            groups = client.call('XINFO', 'GROUPS', name) or []
            facts['groups'][name] = [
                {'name': g.get('name'), 'pending': g.get('pending'), 'consumers': g.get('consumers')}
                for g in (xinfo_dict(item) for item in groups)]
    return facts


def audit_streams(host, port, password, profile, timeout):
    """The facts of both audit streams, or ``{'error': ...}``; the password never reaches a message."""
    client = None
    try:
        client = RespClient(host, port, timeout)
        client.auth(password)
        return read_streams(client, profile)
    except (RespError, OSError, ValueError) as exc:
        return {'error': to_native(exc).replace(password, '<redacted>') or type(exc).__name__}
    finally:
        if client is not None:
            client.close()
