# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks that the stack works, not only how it is configured.

- ``health.ready``: every long-running service of the contract runs, its container is healthy
  and its ``/ready`` answers 200; every one-shot job completed (exit status 0);
- ``health.credentials``: every Postgres and Redis credential a service's view holds is
  accepted by its server;
- ``keys.journal``: no rotation journal is open (a rotation still owes work);
- ``metrics.bearer`` (in ``_checks_runtime``) also probes with the current bearer and with the
  retired ones when the store is given: ``metrics_probes`` says what each answer must be;
- ``audit.pending``: the audit stream's consumer groups keep up (pending entries bounded).

Every function here judges facts measured elsewhere (``_checks_host`` asks the engines, the
services and the datastores); none reads a value into a finding: credentials are named by
their secret and user, never shown.

This is a private module_utils (leading underscore): its API may change between minor
releases of the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.six.moves.urllib.parse import unquote, urlsplit

from ansible_collections.caracal.hardened.plugins.module_utils._checks import judged, not_applicable
from ansible_collections.caracal.hardened.plugins.module_utils._checks_runtime import REPLAY_INIT, _label
from ansible_collections.caracal.hardened.plugins.module_utils._secrets import trim

# Longest reason of a 503 /ready answer kept in a finding.
REASON_LIMIT = 300


def _by_service(containers):
    found = {}
    for ctr in containers:
        found.setdefault(ctr['service'], []).append(ctr)
    return found


def _job_finding(name, ctrs, unit):
    """Why the one-shot ``name`` has not completed, or ``None``."""
    if ctrs:
        ctr = ctrs[0]
        if ctr['running']:
            return 'one-shot %s is still running (container %s)' % (name, ctr['name'])
        if ctr['status'] != 'exited' or ctr.get('exit_code') not in (0, None):
            return 'one-shot %s did not complete: container %s is %s with exit status %s' % (
                name, ctr['name'], ctr['status'], ctr.get('exit_code'))
        return None
    if unit and unit.get('LoadState') == 'loaded':
        if unit.get('ActiveState') == 'active' and unit.get('Result') in ('success', None, ''):
            return None
        return 'one-shot %s did not complete: unit %s is %s (result %s)' % (
            name, unit.get('Id') or '?', unit.get('ActiveState') or 'unknown', unit.get('Result') or 'unknown')
    return 'one-shot %s has no container and no completed unit: it never ran (or was removed)' % name


def check_ready(profile, containers, probes, units=None, project='caracal', engines=None):
    """``health.ready``.

    ``probes`` maps an app container's name to the answer of its ``/ready``
    (``{'status', 'reason'}`` or ``{'error'}``, ``None`` when it has no address); ``units``
    maps a one-shot service to ``systemctl show`` properties of its unit (for engines that
    remove a completed job's container).
    """
    units = units or {}
    if not containers and not engines:
        return not_applicable('health.ready', 'no container engine (docker, podman) on this host',
                              {'engines': [], 'project': project})
    by_service = _by_service(containers)
    findings = []
    facts = {}
    for name in profile['start_order']:
        svc = profile['services'][name]
        ctrs = by_service.get(name, [])
        if svc['kind'] == 'job':
            finding = _job_finding(name, ctrs, units.get(name))
            facts[name] = 'completed' if finding is None else 'not completed'
            if finding:
                findings.append(finding)
            continue
        running = [c for c in ctrs if c['running']]
        if not running:
            state = ', '.join('%s %s' % (c['name'], c['status']) for c in ctrs) or 'no container'
            findings.append('%s is not running (%s)' % (name, state))
            facts[name] = 'down'
            continue
        for ctr in running:
            health = ctr.get('health') or ''
            if health and health != 'healthy':
                findings.append('%s is %s (container %s)' % (name, health, ctr['name']))
            fact = {'health': health or 'no healthcheck'}
            if svc['kind'] == 'app':
                answer = probes.get(ctr['name'])
                if answer is None:
                    findings.append('%s: no address to reach /ready from the host (container %s)' % (name, ctr['name']))
                elif 'status' not in answer:
                    findings.append('%s: /ready did not answer (%s)' % (name, answer.get('error') or 'not probed'))
                elif answer['status'] != 200:
                    reason = (answer.get('reason') or '').strip()[:REASON_LIMIT]
                    shown = ': %s' % reason if reason else ''
                    findings.append('%s: /ready answered %s%s' % (name, answer['status'], shown))
                fact['ready'] = (answer or {}).get('status')
            facts[name] = fact
    for ctr in by_service.get(REPLAY_INIT, []):
        if not ctr['running'] and ctr.get('exit_code') not in (0, None):
            findings.append('one-shot %s failed: container %s exited with status %s'
                            % (REPLAY_INIT, ctr['name'], ctr['exit_code']))
    return judged('health.ready', findings, {'project': project, 'services': facts})


# ---------------------------------------------------------------- credentials

def credential_kind(profile, name):
    """``postgres``, ``redis`` or ``None``: the server a secret of the contract logs in to."""
    spec = profile['secrets'].get(name) or {}
    template = spec.get('template') or ''
    if template.startswith(('postgres://', 'postgresql://')):
        return 'postgres'
    if template.startswith(('redis://', 'rediss://')):
        return 'redis'
    return None


def credentials_to_try(profile, snapshot):
    """``[(service, secret, server, user, password, database)]`` of every credential in the views.

    Postgres and Redis URLs are parsed; the Redis server's own ``redisPassword`` is tried as it
    is (a Redis that runs with another password than its view holds refuses it)."""
    found = []
    for svc, view in sorted(snapshot['views']['services'].items()):
        for name, item in sorted(view['files'].items()):
            value = trim(item.get('value') or '')
            if not value:
                continue
            kind = credential_kind(profile, name)
            if kind:
                parts = urlsplit(value)
                found.append((svc, name, kind, unquote(parts.username or ''), unquote(parts.password or ''),
                              parts.path.lstrip('/')))
            elif name == 'redisPassword' and svc == 'redis':
                found.append((svc, name, 'redis', '', value, ''))
    return found


def check_credentials(attempts, servers):
    """``health.credentials``: ``attempts`` is ``[{'service', 'secret', 'server', 'user', 'accepted',
    'detail'}]``; ``servers`` maps ``postgres``/``redis`` to where they were reached, or to
    ``None`` when they could not be (their container does not run)."""
    findings = []
    if not attempts:
        findings.append('no service view holds a Postgres or Redis credential: nothing proves the services can log in')
    for server, where in sorted(servers.items()):
        if where is None and any(a['server'] == server for a in attempts):
            findings.append('%s does not run or has no address: its credentials cannot be checked' % server)
    for item in attempts:
        if item['accepted'] or servers.get(item['server']) is None:
            continue
        who = ' as %s' % item['user'] if item['user'] else ''
        findings.append('%s: %s refuses the %s it holds%s (%s)' % (
            item['service'], item['server'], item['secret'], who, item['detail']))
    evidence = {'servers': servers, 'logins': [dict((k, a[k]) for k in ('service', 'secret', 'server', 'user', 'accepted'))
                                               for a in attempts]}
    return judged('health.credentials', findings, evidence)


# ---------------------------------------------------------------- journal

def check_journal(journal, path, error=''):
    """``keys.journal``: ``journal`` is the open rotation journal (``None`` when closed)."""
    if error:
        return judged('keys.journal', ['the rotation journal %s cannot be read: %s' % (path, error)], {'path': path})
    if journal is None:
        return judged('keys.journal', [], {'path': path, 'open': False})
    secrets = sorted((journal.get('secrets') or {}).keys())
    owed = list(journal.get('restart') or [])
    sync = list(journal.get('sync') or [])
    finding = 'rotation journal %s (opened %s, phase %s) is still open: %s%s%s' % (
        journal.get('id', '?'), journal.get('opened', '?'), journal.get('phase', '?'),
        ', '.join(secrets) or 'no secret',
        '; restarts owed: %s' % ', '.join(owed) if owed else '',
        '; credential sync owed: %s' % ', '.join(sync) if sync else '')
    return judged('keys.journal', [finding], {'path': path, 'open': True, 'id': journal.get('id'),
                                              'secrets': secrets, 'restart': owed, 'sync': sync})


# ---------------------------------------------------------------- audit consumers

def check_pending(profile, facts, endpoint, pending_max):
    """``audit.pending``: every consumer group of the audit stream has at most ``pending_max``
    delivered but unacknowledged entries, and the stream has a consumer group at all."""
    stream = profile['audit_stream']
    if facts.get('error'):
        return judged('audit.pending', ['cannot read %s at %s: %s' % (stream, endpoint, facts['error'])],
                      {'endpoint': endpoint})
    groups = (facts.get('groups') or {}).get(stream)
    if facts['types'].get(stream) != 'stream' or groups is None:
        return judged('audit.pending', ['%s does not exist, so its consumers cannot be measured' % stream],
                      {'endpoint': endpoint})
    findings = []
    if not groups:
        findings.append('%s has no consumer group: nothing consumes the audit events' % stream)
    for group in groups:
        pending = group.get('pending') or 0
        if pending > pending_max:
            findings.append('consumer group %s of %s has %d pending entries (bound %d): its consumers are not keeping up'
                            % (group.get('name'), stream, pending, pending_max))
    return judged('audit.pending', findings, {'endpoint': endpoint, 'pending_max': pending_max, 'groups': groups})


# ---------------------------------------------------------------- JWKS

# Members of a JWK that belong to its private or symmetric part: a JWKS must never carry them.
PRIVATE_JWK_MEMBERS = ('d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k')


def _jwks_findings(label, answer):
    if answer is None:
        return ['%s: no address to reach its JWKS from the host' % label]
    if 'status' not in answer:
        return ['%s: the JWKS did not answer (%s)' % (label, answer.get('error') or 'not probed')]
    if answer['status'] != 200:
        return ['%s: the JWKS answered %s (expected 200)' % (label, answer['status'])]
    keys = (answer.get('document') or {}).get('keys') if isinstance(answer.get('document'), dict) else None
    if not isinstance(keys, list) or not keys:
        return ['%s: the JWKS holds no key (clients cannot verify the tokens it issues)' % label]
    findings = []
    for index, key in enumerate(keys):
        if not isinstance(key, dict) or not key.get('kty') or not key.get('kid'):
            findings.append('%s: JWKS key %d has no kty or kid' % (label, index))
            continue
        exposed = sorted(m for m in PRIVATE_JWK_MEMBERS if m in key)
        if exposed:
            findings.append('%s: JWKS key %s publishes private members (%s)' % (label, key['kid'], ', '.join(exposed)))
    return findings


def check_jwks(profile, containers, answers, project='caracal', engines=None):
    """``health.jwks``: every service of the contract with a ``jwks_path`` that runs here serves a
    JWKS of public keys. ``answers`` maps a container's name to ``{'status', 'document'}``,
    ``{'error'}`` or ``None`` (no address)."""
    wanted = [n for n, s in profile['services'].items() if s.get('jwks_path')]
    ctrs = [c for c in containers if c['service'] in wanted]
    if not ctrs:
        reason = ('no container engine (docker, podman) on this host' if not engines else
                  'no container of %s (project %r) on this host' % (' or '.join(wanted) or 'a JWKS issuer', project))
        return not_applicable('health.jwks', reason, {'engines': engines or [], 'project': project})
    findings, facts = [], {}
    for ctr in ctrs:
        label = _label(ctr)
        if not ctr['running']:
            findings.append('%s does not run: its JWKS is not served' % label)
            continue
        answer = answers.get(ctr['name'])
        found = _jwks_findings(label, answer)
        findings.extend(found)
        document = (answer or {}).get('document')
        keys = document.get('keys') if isinstance(document, dict) else None
        kids = [k.get('kid') for k in keys if isinstance(k, dict)] if isinstance(keys, list) else []
        facts[ctr['name']] = {'status': (answer or {}).get('status'), 'keys': kids,
                              'path': profile['services'][ctr['service']]['jwks_path']}
    return judged('health.jwks', findings, {'project': project, 'issuers': facts})
