# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks on secret delivery and keys: layout, views, formats, rotation, evidence, backups.

Pure logic on a *snapshot* of the secrets layout that ``_checks_host.secrets_snapshot``
reads (owners, modes, the values kept in memory only, ``state.json``, the evidence lines)
and on normalized containers (``_checks_runtime``). Formats and weak-key rules come from
``_secrets.validate`` and the release contract; nothing here restates them. Records carry
names and fingerprints, never a value.

The layout is the one ``caracal.hardened.secret_files`` writes: the store ``0700`` root with
files ``0600``; views ``<views>/<service>/`` ``0750`` root:<gid> with files ``0440``; the
archive ``0700`` with ``state.json``; the evidence log ``0600``.

This is a private module_utils (leading underscore): its API may change between minor
releases of the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import posixpath

from ansible_collections.caracal.hardened.plugins.module_utils._checks import judged, not_applicable
from ansible_collections.caracal.hardened.plugins.module_utils._contract import secret_variables
from ansible_collections.caracal.hardened.plugins.module_utils._checks_runtime import env_dict
from ansible_collections.caracal.hardened.plugins.module_utils._layout import ROOT, STATE_FILE
from ansible_collections.caracal.hardened.plugins.module_utils._secrets import (
    EVIDENCE_FIELDS,
    SecretValidationError,
    age_days,
    derive,
    fingerprint,
    is_derived,
    is_due,
    parse_ts,
    policy,
    trim,
    validate,
)


def fmt_mode(mode):
    return '%04o' % mode


def scope(profile, services=None):
    """``(services, names)``: the host's services and every secret they need, contract order.

    A service needs the secrets it reads and the passwords those are derived from.
    """
    order = [s for s in profile['start_order'] if services is None or s in services]
    unknown = sorted(set(services or []) - set(profile['services']))
    if unknown:
        raise ValueError('unknown services %s (profile %s has: %s)'
                         % (', '.join(unknown), profile['name'], ', '.join(profile['start_order'])))
    needed = set()
    for svc in order:
        for name in profile['services'][svc]['secrets']:
            needed.add(name)
            needed.update(profile['secrets'][name].get('derived_from') or [])
    names = [n for n in profile['secrets'] if n in needed]
    return order, names


def _describe(fact):
    return '%s %d:%d' % (fmt_mode(fact['mode']), fact['uid'], fact['gid'])


def _judge_path(fact, kind, owner, group, forbidden, expected, what, findings):
    """Append findings for one path: type, owner, group and forbidden mode bits."""
    path = fact['path']
    if not fact['exists']:
        return
    if fact['type'] == 'link':
        findings.append('%s: is a symbolic link (%s expected)' % (path, what))
        return
    if fact['type'] != kind:
        findings.append('%s: is a %s, a %s is expected' % (path, fact['type'], 'directory' if kind == 'dir' else 'file'))
        return
    problems = []
    mode = fact['mode']
    if mode & 0o004:
        problems.append('world-readable')
    if mode & 0o002:
        problems.append('world-writable')
    if mode & 0o001 and kind == 'dir':
        problems.append('world-searchable')
    if mode & forbidden & 0o070:
        problems.append('group %s' % '/'.join(b for bit, b in ((0o040, 'read'), (0o020, 'write'), (0o010, 'execute'))
                                              if mode & forbidden & bit))
    if mode & forbidden & 0o700:
        problems.append('owner %s' % '/'.join(b for bit, b in ((0o400, 'read'), (0o200, 'write'), (0o100, 'execute'))
                                              if mode & forbidden & bit))
    if mode & 0o7000:
        problems.append('setuid/setgid/sticky bits')
    if owner is not None and fact['uid'] != owner:
        problems.append('owner uid %d' % fact['uid'])
    if group is not None and fact['gid'] != group:
        problems.append('group gid %d' % fact['gid'])
    if problems:
        findings.append('%s: %s (mode %s, expected %s)' % (path, ', '.join(problems), _describe(fact), expected))


def layout_absent(snapshot):
    return not snapshot['store']['fact']['exists'] and not snapshot['views']['fact']['exists']


def _not_deployed(check_id, snapshot, containers):
    if layout_absent(snapshot) and not containers:
        return not_applicable(check_id, 'no secret store at %s and no Caracal container on this host: the secrets '
                                        'role has not deployed anything here' % snapshot['store']['path'],
                              {'store': snapshot['store']['path'], 'views': snapshot['views']['path']})
    return None


def check_permissions(snapshot, gid, view_mode=0o440, containers=()):
    """``secrets.permissions``: owner and mode of every path of the layout."""
    na = _not_deployed('secrets.permissions', snapshot, containers)
    if na:
        return na
    findings = []
    store, views, archive, evidence = snapshot['store'], snapshot['views'], snapshot['archive'], snapshot['evidence']
    checked = 0
    for fact, kind, owner, group, forbidden, expected, what in (
            [(store['fact'], 'dir', ROOT, None, 0o077, '0700 root', 'the store')]
            + [(f['fact'], 'file', ROOT, None, 0o177, '0600 root', 'a store file') for f in store['files'].values()]
            + [(f, 'file', ROOT, None, 0o177, '0600 root', 'a store file') for f in store['extra']]
            + [(views['fact'], 'dir', ROOT, gid, 0o027, '0750 root:%d' % gid, 'the views directory')]
            + [(s['fact'], 'dir', ROOT, gid, 0o027, '0750 root:%d' % gid, 'a view directory') for s in views['services'].values()]
            + [(f['fact'], 'file', ROOT, gid, 0o777 & ~view_mode, '%s root:%d' % (fmt_mode(view_mode), gid), 'a view file')
               for s in views['services'].values() for f in s['files'].values()]
            + [(f, 'file', ROOT, gid, 0o777 & ~view_mode, '%s root:%d' % (fmt_mode(view_mode), gid), 'a view file')
               for s in views['services'].values() for f in s['extra']]
            + [(archive['fact'], 'dir', ROOT, None, 0o077, '0700 root', 'the archive')]
            + [(f, f['type'] if f['type'] in ('dir', 'file') else 'file', ROOT, None, 0o077 if f['type'] == 'dir' else 0o177,
                '0700 root' if f['type'] == 'dir' else '0600 root', 'an archive entry') for f in archive['entries']]
            + [(evidence['fact'], 'file', ROOT, None, 0o177, '0600 root', 'the evidence log')]):
        if fact['exists']:
            checked += 1
        _judge_path(fact, kind, owner, group, forbidden, expected, what, findings)
    for fact, what in ((store['fact'], 'store'), (views['fact'], 'views directory'), (archive['fact'], 'archive')):
        if not fact['exists']:
            findings.append('%s: the %s is missing' % (fact['path'], what))
    return judged('secrets.permissions', findings, {
        'paths_checked': checked, 'store': store['path'], 'views': views['path'], 'archive': archive['path'],
        'evidence_log': evidence['path'], 'view_group': gid, 'view_mode': fmt_mode(view_mode)})


def check_views(profile, snapshot, services, containers=()):
    """``secrets.views``: each view holds exactly what its service reads, nothing more."""
    na = _not_deployed('secrets.views', snapshot, containers)
    if na:
        return na
    views = snapshot['views']
    findings = []
    facts = {}
    if not views['fact']['exists']:
        return judged('secrets.views', ['%s: the views directory is missing' % views['path']])
    for svc in services:
        reads = set(profile['services'][svc]['secrets'])
        view = views['services'].get(svc)
        if not reads:
            continue
        if view is None or not view['fact']['exists']:
            findings.append('%s: no view directory for %s' % (posixpath.join(views['path'], svc), svc))
            continue
        present = set(n for n, f in view['files'].items() if f['fact']['exists'])
        extra = sorted(set(f['path'].rsplit('/', 1)[-1] for f in view['extra']))
        facts[svc] = {'files': sorted(present), 'extra': extra}
        for name in extra:
            findings.append('%s: holds %s, which %s does not read' % (view['fact']['path'], name, svc))
    for name in sorted(views['unknown']):
        findings.append('%s: %s is not a view of a service deployed on this host' % (views['path'], name))
    return judged('secrets.views', findings, {'views': facts})


def _store_values(snapshot):
    out = {}
    for name, item in snapshot['store']['files'].items():
        if item.get('value') is not None:
            out[name] = trim(item['value'])
    return out


def check_present(profile, snapshot, services, names, containers=()):
    """``keys.present``: in the store, not empty, identical in every view and in state.json."""
    na = _not_deployed('keys.present', snapshot, containers)
    if na:
        return na
    findings = []
    facts = {}
    values = _store_values(snapshot)
    state = (snapshot['archive'].get('state') or {}).get('secrets') or {}
    for name in names:
        item = snapshot['store']['files'].get(name) or {'fact': {'exists': False}}
        value = values.get(name)
        if not item['fact']['exists']:
            findings.append('%s is missing from the store' % name)
            facts[name] = None
            continue
        if not value:
            findings.append('%s is empty in the store (the services refuse to start)' % name)
            facts[name] = {'fingerprint': None}
            continue
        fp = fingerprint(value)
        facts[name] = {'fingerprint': fp, 'views': {}}
        recorded = (state.get(name) or {}).get('fingerprint')
        if snapshot['archive'].get('state') is not None and recorded != fp:
            findings.append('%s: the store holds fingerprint %s but state.json records %s (changed outside the '
                            'secrets module)' % (name, fp, recorded or 'nothing'))
        for svc in services:
            if name not in profile['services'][svc]['secrets']:
                continue
            view = (snapshot['views']['services'].get(svc) or {}).get('files', {}).get(name)
            if view is None or not view['fact']['exists']:
                findings.append('%s: missing from the view of %s' % (name, svc))
                continue
            vfp = fingerprint(trim(view.get('value') or ''))
            facts[name]['views'][svc] = vfp
            if vfp != fp:
                findings.append('%s: the view of %s holds fingerprint %s, the store %s' % (name, svc, vfp, fp))
    return judged('keys.present', findings, {'secrets': facts})


# Which secret kinds each strength check covers.
STRENGTH_CHECKS = {
    'keys.hmac': ('hmac',),
    'keys.kek': ('kek',),
    'keys.tokens': ('token', 'password', 'url'),
}


def check_strength(check_id, profile, snapshot, names, containers=()):
    """``keys.hmac``, ``keys.kek``, ``keys.tokens``: each value as Caracal validates it.

    Derived secrets (URLs) must also equal what their passwords give.
    """
    na = _not_deployed(check_id, snapshot, containers)
    if na:
        return na
    kinds = STRENGTH_CHECKS[check_id]
    mine = [n for n in names if profile['secrets'][n]['kind'] in kinds]
    if not mine:
        return not_applicable(check_id, 'no service on this host reads a %s secret' % ' or '.join(kinds))
    values = _store_values(snapshot)
    findings = []
    facts = {}
    for name in mine:
        spec = profile['secrets'][name]
        value = values.get(name)
        if value is None:
            findings.append('%s: missing from the store, cannot be validated' % name)
            continue
        entry = {'fingerprint': fingerprint(value) if value else None}
        if not is_derived(spec):
            entry['bytes'] = len(value) // 2
        facts[name] = entry
        try:
            validate(name, value, spec)
        except SecretValidationError as exc:
            entry['rule'] = exc.rule
            findings.append('%s: breaks rule %s: %s' % (name, exc.rule, exc.detail))
            continue
        if is_derived(spec):
            try:
                if derive(spec, values) != value:
                    findings.append('%s: does not embed the current %s' % (name, ', '.join(spec['derived_from'])))
            except SecretValidationError as exc:
                findings.append('%s: cannot be rebuilt: %s' % (name, exc.detail))
    return judged(check_id, findings, {'secrets': facts})


def check_rotation(profile, snapshot, names, policies, default_max_age_days, now, containers=()):
    """``keys.rotation``: each value's age (state.json ``created``) against its policy."""
    na = _not_deployed('keys.rotation', snapshot, containers)
    if na:
        return na
    state = snapshot['archive'].get('state')
    if state is None:
        return judged('keys.rotation', ['%s has no readable %s (%s): the age of the secrets is unknown'
                                        % (snapshot['archive']['path'], STATE_FILE,
                                           snapshot['archive'].get('state_error') or 'missing')])
    findings = []
    facts = {}
    records = state.get('secrets') or {}
    for name in names:
        spec = dict(profile['secrets'][name], name=name)
        if is_derived(spec):
            continue
        max_age, _rollback = policy(spec, policies or {}, default_max_age_days, 0)
        rec = records.get(name)
        if not rec:
            findings.append('%s: no record in %s: its age is unknown' % (name, STATE_FILE))
            continue
        try:
            created = parse_ts(rec['created'])
        except (KeyError, TypeError, ValueError):
            findings.append('%s: unreadable creation time in %s' % (name, STATE_FILE))
            continue
        age = age_days(created, now)
        facts[name] = {'created': rec['created'], 'age_days': age, 'max_age_days': max_age,
                       'source': rec.get('source')}
        if is_due(created, max_age, now):
            findings.append('%s: %d days old, beyond its %d-day rotation policy' % (name, age, max_age))
    return judged('keys.rotation', findings, {'secrets': facts, 'default_max_age_days': default_max_age_days})


def check_evidence(snapshot, names, containers=()):
    """``keys.evidence``: the log exists, is private, parses, and records every current value."""
    na = _not_deployed('keys.evidence', snapshot, containers)
    if na:
        return na
    evidence = snapshot['evidence']
    fact = evidence['fact']
    findings = []
    if not fact['exists']:
        return judged('keys.evidence', ['%s: the evidence log is missing' % evidence['path']],
                      {'evidence_log': evidence['path']})
    _judge_path(fact, 'file', ROOT, None, 0o177, '0600 root', 'the evidence log', findings)
    records = []
    bad = 0
    for number, line in enumerate(evidence.get('lines') or [], 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            missing = [f for f in EVIDENCE_FIELDS if f not in rec]
            if missing:
                raise ValueError('missing %s' % ', '.join(missing))
            records.append(rec)
        except ValueError as exc:
            bad += 1
            if bad <= 5:
                findings.append('%s line %d is not an evidence record (%s)' % (evidence['path'], number, exc))
    if bad > 5:
        findings.append('%s: %d more lines are not evidence records' % (evidence['path'], bad - 5))
    values = _store_values(snapshot)
    recorded = {}
    for name in names:
        value = values.get(name)
        if not value:
            continue
        fp = fingerprint(value)
        hits = [r for r in records if r.get('secret') == name and r.get('new_fingerprint') == fp]
        recorded[name] = {'fingerprint': fp, 'record': hits[-1]['ts'] if hits else None,
                          'action': hits[-1]['action'] if hits else None}
        if not hits:
            findings.append('%s: no evidence record for its current value (fingerprint %s)' % (name, fp))
    return judged('keys.evidence', findings, {'evidence_log': evidence['path'], 'records': len(records),
                                              'current_values': recorded})


def kek_names(profile, names):
    return [n for n in names if profile['secrets'][n]['kind'] == 'kek']


def check_kek_backup(profile, snapshot, names, backup_path, backup_files, containers=()):
    """``keys.kek_backup``: a file under ``backup_path`` is the current KEK, or is named by its fingerprint.

    ``backup_files`` is ``[{'fact': fact, 'value': str or None}]`` (values of small files
    only). A plain copy must be private (root, no group/other bits).
    """
    keks = kek_names(profile, names)
    if not keks:
        return not_applicable('keys.kek_backup', 'no service on this host reads the KEK')
    if not backup_path:
        return not_applicable('keys.kek_backup', 'no KEK backup path is configured (kek_backup_path): the backup '
                                                 'of the KEK with the database is not measured on this host',
                              {'kek': keks})
    values = _store_values(snapshot)
    findings = []
    facts = {}
    for name in keks:
        value = values.get(name)
        if not value:
            findings.append('%s: missing from the store, its backup cannot be compared' % name)
            continue
        fp = fingerprint(value)
        plain = [f for f in backup_files if f.get('value') is not None and trim(f['value']) == value]
        named = [f for f in backup_files if fp in f['fact']['path'].rsplit('/', 1)[-1]]
        facts[name] = {'fingerprint': fp, 'plain_copies': [f['fact']['path'] for f in plain],
                       'named_by_fingerprint': [f['fact']['path'] for f in named],
                       'files_compared': len(backup_files)}
        for item in plain + named:
            _judge_path(item['fact'], 'file', ROOT, None, 0o077, '0600 or 0400 root', 'a KEK backup', findings)
        if not plain and not named:
            findings.append('%s: no backup of the current value (fingerprint %s) under %s (%d files compared)'
                            % (name, fp, backup_path, len(backup_files)))
    return judged('keys.kek_backup', findings, {'backup_path': backup_path, 'kek': facts})


def check_runtime_profiles(profiles):
    """``secrets.runtime_profiles``: ``profiles`` is ``[{'path', 'fact', 'files': [fact]}]``."""
    if not profiles:
        return not_applicable('secrets.runtime_profiles', 'no runtime profile is configured for this host '
                                                          '(runtime_profiles is empty)')
    findings = []
    facts = {}
    for prof in profiles:
        fact = prof['fact']
        if not fact['exists']:
            findings.append('%s: the runtime profile directory is missing' % prof['path'])
            continue
        _judge_path(fact, 'dir', fact['uid'], None, 0o077, '0700 owner-only', 'a profile directory', findings)
        facts[prof['path']] = {}
        for item in prof['files']:
            name = item['path'].rsplit('/', 1)[-1]
            facts[prof['path']][name] = fmt_mode(item['mode']) if item['exists'] else None
            if not item['exists']:
                if name == 'caracal.toml':
                    findings.append('%s: missing' % item['path'])
                continue
            _judge_path(item, 'file', fact['uid'], None, 0o177, '0600 owner-only', 'a profile file', findings)
    return judged('secrets.runtime_profiles', findings, {'profiles': facts})


# ---------------------------------------------------------------- delivery into containers

def check_file_delivery(profile, containers, views_path, project='caracal', engines=None):
    """``secrets.file_delivery``: ``NAME_FILE=/run/secrets/<file>`` from the read-only view mount."""
    if not containers:
        reason = ('no container engine (docker, podman) on this host' if not engines else
                  'no container of the Caracal project %r on this host' % project)
        return not_applicable('secrets.file_delivery', reason, {'engines': engines or [], 'project': project})
    forbidden = secret_variables(profile)
    mount_point = profile['secrets_mount']
    findings = []
    facts = {}
    for ctr in containers:
        env = env_dict(ctr)
        label = ctr['service'] if ctr['service'] == ctr['name'] else '%s (%s)' % (ctr['service'], ctr['name'])
        for name in sorted(set(env) & forbidden):
            findings.append('%s: sets %s directly (a value in the environment overrides %s_FILE)' % (label, name, name))
        svc = profile['services'].get(ctr['service'])
        if svc is None or not svc['secrets']:
            continue
        delivered = {}
        for sname, variables in svc['secrets'].items():
            want = posixpath.join(mount_point, sname)
            for var in variables:
                got = env.get('%s_FILE' % var)
                delivered['%s_FILE' % var] = got
                if got is None:
                    findings.append('%s: %s_FILE is not set (it reads %s)' % (label, var, sname))
                elif got != want:
                    findings.append('%s: %s_FILE is %s, expected %s' % (label, var, got, want))
        mounts = [m for m in ctr['mounts'] if m['destination'].rstrip('/') == mount_point]
        expected_source = posixpath.join(views_path, ctr['service'])
        facts[ctr['name']] = {'variables': delivered,
                              'mount': ({'source': mounts[0]['source'], 'read_only': not mounts[0]['rw']}
                                        if mounts else None)}
        if not mounts:
            findings.append('%s: nothing is mounted at %s' % (label, mount_point))
        else:
            mount = mounts[0]
            if mount['rw']:
                findings.append('%s: %s is mounted read-write' % (label, mount_point))
            if mount['type'] == 'bind' and mount['source'].rstrip('/') != expected_source:
                findings.append('%s: %s comes from %s, not from its own view %s'
                                % (label, mount_point, mount['source'], expected_source))
    return judged('secrets.file_delivery', findings, {'views': views_path, 'containers': facts})


def _inspect_without_env(raw):
    data = dict(raw)
    cfg = dict(data.get('Config') or {})
    cfg.pop('Env', None)
    data['Config'] = cfg
    return json.dumps(data, sort_keys=True)


def check_no_inline_values(profile, values, containers, raw_inspect, processes, unreadable=0, snapshot=None):
    """``secrets.no_inline_values``: no stored value appears in an environment, inspect output or command line.

    ``values`` maps secret names to store values (derived URLs left out: their passwords
    are searched); ``raw_inspect`` maps a container name to its inspect element;
    ``processes`` is ``[{'pid', 'comm', 'environ': [str], 'cmdline': str}]``.
    """
    if not values:
        if snapshot is not None and layout_absent(snapshot) and not containers:
            return not_applicable('secrets.no_inline_values', 'no secret store and no Caracal container on this host')
        return judged('secrets.no_inline_values', ['no secret value could be read from the store to search for'])
    needles = [(n, v) for n, v in sorted(values.items())
               if v and not is_derived(profile['secrets'].get(n, {})) and len(v) >= 16]
    findings = []

    def _hit(text):
        return [(n, v) for n, v in needles if v in text]

    for ctr in containers:
        for var, value in ctr['env']:
            for name, value_ in _hit(value or ''):
                findings.append('container %s: variable %s holds the value of %s (fingerprint %s)'
                                % (ctr['name'], var, name, fingerprint(value_)))
        raw = raw_inspect.get(ctr['name'])
        if raw is not None:
            for name, value_ in _hit(_inspect_without_env(raw)):
                findings.append('container %s: its inspect output (labels, command or health check) holds the value '
                                'of %s (fingerprint %s)' % (ctr['name'], name, fingerprint(value_)))
    for proc in processes:
        for entry in proc.get('environ') or []:
            var = entry.split('=', 1)[0]
            for name, value_ in _hit(entry[len(var) + 1:]):
                findings.append('process %s (%s): variable %s holds the value of %s (fingerprint %s)'
                                % (proc['pid'], proc.get('comm') or '?', var, name, fingerprint(value_)))
        for name, value_ in _hit(proc.get('cmdline') or ''):
            findings.append('process %s (%s): its command line holds the value of %s (fingerprint %s)'
                            % (proc['pid'], proc.get('comm') or '?', name, fingerprint(value_)))
    return judged('secrets.no_inline_values', findings, {
        'secrets_searched': [n for n, _v in needles], 'containers_searched': len(containers),
        'processes_searched': len(processes), 'processes_unreadable': unreadable})
