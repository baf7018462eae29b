# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks on the host's network exposure: listening ports and the nftables policy.

Pure logic on parsed inputs: ``parse_ss`` (``ss -Hltnp``), ``parse_proc_net_tcp``
(``/proc/net/tcp`` and ``tcp6``) and the JSON of ``nft -j list ruleset``. Container
publishes come from ``_checks_runtime.normalize_container``: with the engine's userland
proxy off (the compose role's setting) a published port is a DNAT rule and never shows
up as a listening socket, so both sources are needed.

This is a private module_utils (leading underscore): its API may change between minor
releases of the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re
import socket
import struct

from ansible_collections.caracal.hardened.plugins.module_utils._checks import (
    classify_address,
    is_exposed,
    judged,
)

# The ranges Caracal's gateway refuses as upstreams (contract: "the host firewall should
# enforce the same"): cloud metadata / link-local, carrier-grade NAT, multicast.
DEFAULT_BLOCKED_RANGES = ('169.254.0.0/16', '100.64.0.0/10', '224.0.0.0/4')

# ---------------------------------------------------------------- listeners

_USERS = re.compile(r'\("(?P<name>[^"]*)",pid=(?P<pid>[0-9]+)')


def _split_hostport(text):
    host, sep, port = text.rpartition(':')
    if not sep:
        raise ValueError('no port in %r' % text)
    if host.startswith('[') and host.endswith(']'):
        host = host[1:-1]
    return host, int(port) if port != '*' else 0


def parse_ss(text):
    """Listeners from ``ss -Hltn`` (optionally ``-p``): ``[{address, port, processes}]``.

    Handles ``0.0.0.0:443``, ``[::]:443``, ``*:443``, ``127.0.0.53%lo:53`` and
    ``[::ffff:127.0.0.1]:80``; lines with a leading ``State`` column or without it.
    """
    out = []
    for line in text.splitlines():
        cols = line.split()
        if not cols:
            continue
        if cols[0] in ('LISTEN', 'UNCONN'):
            cols = cols[1:]
        if len(cols) < 3 or not cols[0].isdigit():
            continue
        local = cols[2]
        try:
            host, port = _split_hostport(local)
        except ValueError:
            continue
        procs = sorted(set(m.group('name') for m in _USERS.finditer(line)))
        out.append({'address': host.split('%', 1)[0] or '*', 'port': port, 'processes': procs})
    return out


def _hex_address(text):
    raw = bytes.fromhex(text)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, struct.pack('<I', struct.unpack('>I', raw)[0]))
    words = struct.unpack('>4I', raw)
    return socket.inet_ntop(socket.AF_INET6, struct.pack('<4I', *words))


def parse_proc_net_tcp(text):
    """Listeners (state 0A) from ``/proc/net/tcp`` or ``/proc/net/tcp6``."""
    out = []
    for line in text.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 4 or cols[3] != '0A':
            continue
        addr, _sep, port = cols[1].partition(':')
        try:
            out.append({'address': _hex_address(addr), 'port': int(port, 16), 'processes': []})
        except (ValueError, struct.error):
            continue
    return out


def _dedupe(listeners):
    seen = set()
    out = []
    for item in listeners:
        key = (item['address'], item['port'])
        if key in seen:
            continue
        seen.add(key)
        out.append(item)
    return sorted(out, key=lambda i: (i['port'], i['address']))


def _show(item):
    host = item['address']
    return '[%s]:%d' % (host, item['port']) if ':' in host else '%s:%d' % (host, item['port'])


def check_public_ports(listeners, containers, public_ports, admin_ports, source='ss'):
    """``ports.public``: nothing but the edge and the admin port listens beyond private networks."""
    allowed = set(int(p) for p in list(public_ports) + list(admin_ports))
    listeners = _dedupe(listeners)
    findings = []
    exposed = []
    for item in listeners:
        if not is_exposed(item['address']):
            continue
        exposed.append({'listen': _show(item), 'processes': item['processes']})
        if item['port'] not in allowed:
            findings.append('port %d listens on %s (%s)' % (item['port'], _show(item),
                                                            ', '.join(item['processes']) or 'process unknown'))
    published = []
    for ctr in containers:
        for pub in ctr['publishes']:
            if not is_exposed(pub['host_ip']):
                continue
            where = '%s:%d' % (pub['host_ip'] or '0.0.0.0', pub['host_port'])
            published.append({'container': ctr['name'], 'publish': where})
            if pub['host_port'] not in allowed:
                findings.append('container %s publishes port %d on %s (every interface)'
                                % (ctr['name'], pub['container_port'], where)
                                if classify_address(pub['host_ip']) == 'wildcard' else
                                'container %s publishes port %d on %s'
                                % (ctr['name'], pub['container_port'], where))
    return judged('ports.public', findings, {
        'allowed_ports': sorted(allowed), 'exposed_listeners': exposed, 'exposed_publishes': published,
        'listeners_measured_with': source, 'listeners': len(listeners)})


def service_ports(profile):
    """``{port: 'service (what)'}``: the contract's container and publish ports."""
    ports = {}
    for name, svc in profile['services'].items():
        if svc.get('port'):
            ports.setdefault(int(svc['port']), '%s (%s port)' % (name, svc['kind']))
        if svc.get('publish'):
            port = int(str(svc['publish']).rsplit(':', 1)[1])
            ports.setdefault(port, '%s (%s publish)' % (name, svc['kind']))
    return ports


def check_service_ports(profile, listeners, containers, edge_ports=()):
    """``ports.services``: contract service and storage ports are loopback or private only.

    ``edge_ports`` (the public edge's own ports) are left to ``ports.public``.
    """
    ports = service_ports(profile)
    for port in edge_ports:
        ports.pop(int(port), None)
    findings = []
    bound = []
    for item in _dedupe(listeners):
        if item['port'] not in ports:
            continue
        kind = classify_address(item['address'])
        bound.append({'listen': _show(item), 'scope': kind, 'for': ports[item['port']]})
        if kind in ('wildcard', 'public'):
            scope = 'every interface' if kind == 'wildcard' else 'public'
            findings.append('port %d of %s listens on %s (%s)' % (item['port'], ports[item['port']], _show(item), scope))
    publishes = []
    for ctr in containers:
        svc = profile['services'].get(ctr['service'])
        for pub in ctr['publishes']:
            kind = classify_address(pub['host_ip'])
            where = '%s:%d' % (pub['host_ip'] or '0.0.0.0', pub['host_port'])
            publishes.append({'container': ctr['name'], 'service': ctr['service'], 'publish': where,
                              'container_port': pub['container_port'], 'scope': kind})
            if kind in ('wildcard', 'public'):
                what = ('storage ' if svc and svc['kind'] == 'storage' else '') + (ctr['service'] or ctr['name'])
                findings.append('%s publishes container port %d on %s (%s)'
                                % (what, pub['container_port'], where,
                                   'every interface' if kind == 'wildcard' else 'a public address'))
    return judged('ports.services', findings, {'service_ports': dict((str(k), v) for k, v in sorted(ports.items())),
                                               'listeners': bound, 'publishes': publishes})


# ---------------------------------------------------------------- nftables

def nft_objects(data):
    """``(tables, chains, rules, sets)`` of ``nft -j list ruleset`` JSON (dict or list)."""
    items = data.get('nftables', []) if isinstance(data, dict) else list(data or [])
    tables, chains, rules, sets = [], [], [], []
    for item in items:
        if 'table' in item:
            tables.append(item['table'])
        elif 'chain' in item:
            chains.append(item['chain'])
        elif 'rule' in item:
            rules.append(item['rule'])
        elif 'set' in item:
            sets.append(item['set'])
    return tables, chains, rules, sets


class Ruleset(object):
    """One nftables table, ready for questions."""

    def __init__(self, data, family, table):
        tables, chains, rules, sets = nft_objects(data)
        self.family = family
        self.table = table
        self.present = any(t.get('family') == family and t.get('name') == table for t in tables)

        def mine(obj):
            return obj.get('family') == family and obj.get('table') == table
        self.chains = dict((c['name'], c) for c in chains if mine(c))
        self.rules = {}
        for rule in rules:
            if mine(rule):
                self.rules.setdefault(rule['chain'], []).append(rule.get('expr') or [])
        self.sets = dict((s['name'], s) for s in sets if mine(s))
        self.other_tables = ['%s %s' % (t.get('family'), t.get('name')) for t in tables
                             if not (t.get('family') == family and t.get('name') == table)]

    def base_chain(self, hook):
        for chain in self.chains.values():
            if chain.get('hook') == hook and chain.get('type', 'filter') == 'filter':
                return chain
        return None

    def reachable(self, chain_name, seen=None):
        """``chain_name`` and every chain it jumps or goes to, in order of first visit."""
        seen = [] if seen is None else seen
        if chain_name in seen or chain_name not in self.chains:
            return seen
        seen.append(chain_name)
        for expr in self.rules.get(chain_name, []):
            for stmt in expr:
                for verb in ('jump', 'goto'):
                    if verb in stmt and isinstance(stmt[verb], dict):
                        self.reachable(stmt[verb].get('target'), seen)
        return seen

    def set_networks(self, name):
        """The networks of named set ``name`` (``ipaddress`` networks)."""
        out = []
        for elem in (self.sets.get(name) or {}).get('elem') or []:
            out.extend(_networks(elem))
        return out


def _networks(value):
    """``ipaddress`` networks an nft JSON address value covers (prefix, range, address, set)."""
    if isinstance(value, dict):
        if 'elem' in value and isinstance(value['elem'], dict):
            return _networks(value['elem'].get('val'))
        if 'prefix' in value:
            try:
                return [ipaddress.ip_network('%s/%s' % (value['prefix']['addr'], value['prefix']['len']), strict=False)]
            except (KeyError, ValueError):
                return []
        if 'range' in value:
            try:
                first, last = [ipaddress.ip_address(v) for v in value['range']]
                return list(ipaddress.summarize_address_range(first, last))
            except (TypeError, ValueError):
                return []
        if 'set' in value:
            out = []
            for item in value['set']:
                out.extend(_networks(item))
            return out
        return []
    if isinstance(value, list):
        out = []
        for item in value:
            out.extend(_networks(item))
        return out
    try:
        return [ipaddress.ip_network(str(value), strict=False)]
    except ValueError:
        return []


def _verdict(expr):
    for stmt in expr:
        for verb in ('accept', 'drop', 'reject'):
            if verb in stmt:
                return verb
    return None


def _is_unconditional(expr):
    """A rule without a match that narrows it (``counter accept``, ``ip daddr 0.0.0.0/0 accept``)."""
    for stmt in expr:
        if 'match' not in stmt:
            continue
        right = stmt['match'].get('right')
        if isinstance(right, dict) and 'prefix' in right and int(right['prefix'].get('len', 1)) == 0:
            continue
        return False
    return True


def _daddr_networks(ruleset, expr):
    """Destination networks an expression matches on (``ip daddr ...``, ``ip6 daddr @set``)."""
    nets = []
    for stmt in expr:
        match = stmt.get('match')
        if not match or match.get('op', '==') not in ('==', 'in'):
            continue
        left = match.get('left') or {}
        payload = left.get('payload') if isinstance(left, dict) else None
        if not payload or payload.get('field') != 'daddr' or payload.get('protocol') not in ('ip', 'ip6'):
            continue
        right = match.get('right')
        if isinstance(right, str) and right.startswith('@'):
            nets.extend(ruleset.set_networks(right[1:]))
        else:
            nets.extend(_networks(right))
    return nets


def _other_matches(expr):
    """Whether the rule also matches on something other than the destination address."""
    for stmt in expr:
        match = stmt.get('match')
        if not match:
            continue
        left = match.get('left') or {}
        payload = left.get('payload') if isinstance(left, dict) else None
        if payload and payload.get('field') == 'daddr' and payload.get('protocol') in ('ip', 'ip6'):
            continue
        return True
    return False


def _walk(ruleset, chain_name, seen=None):
    """Rules in evaluation order from ``chain_name``, following jumps (goto ends the walk)."""
    seen = set() if seen is None else seen
    if chain_name in seen or chain_name not in ruleset.chains:
        return
    seen.add(chain_name)
    for expr in ruleset.rules.get(chain_name, []):
        target = None
        goto = False
        for stmt in expr:
            if 'jump' in stmt and isinstance(stmt['jump'], dict):
                target = stmt['jump'].get('target')
            if 'goto' in stmt and isinstance(stmt['goto'], dict):
                target = stmt['goto'].get('target')
                goto = True
        yield chain_name, expr
        if target:
            yield from _walk(ruleset, target, seen)
            if goto and _is_unconditional(expr):
                return


def check_firewall(data, family, table, error=None):
    """``network.firewall``: the role's table is loaded with its three base chains."""
    if error:
        return judged('network.firewall', ['cannot read the nftables ruleset: %s' % error], {'table': '%s %s' % (family, table)})
    rs = Ruleset(data, family, table)
    findings = []
    if not rs.present:
        findings.append('table %s %s is not loaded (tables present: %s)'
                        % (family, table, ', '.join(rs.other_tables) or 'none'))
    else:
        for hook in ('input', 'forward', 'output'):
            if rs.base_chain(hook) is None:
                findings.append('table %s %s has no %s base chain' % (family, table, hook))
    return judged('network.firewall', findings, {
        'table': '%s %s' % (family, table), 'present': rs.present,
        'base_chains': dict((hook, (rs.base_chain(hook) or {}).get('name')) for hook in ('input', 'forward', 'output')),
        'rules': sum(len(v) for v in rs.rules.values()), 'other_tables': rs.other_tables})


def _chain_open(ruleset, chain):
    """Why a base chain is not default-deny (``None`` when it is)."""
    policy = chain.get('policy', 'accept')
    for where, expr in _walk(ruleset, chain['name']):
        if _verdict(expr) == 'accept' and _is_unconditional(expr):
            return 'an unconditional accept rule in chain %s' % where
        if _verdict(expr) in ('drop', 'reject') and _is_unconditional(expr) and where == chain['name']:
            return None  # a final drop: the policy is never reached
    if policy != 'drop':
        return 'policy %s without a final drop rule' % policy
    return None


def check_default_deny(data, family, table, error=None):
    """``network.default_deny``: input (ingress), output and forward (egress) drop by default."""
    if error:
        return judged('network.default_deny', ['cannot read the nftables ruleset: %s' % error])
    rs = Ruleset(data, family, table)
    findings = []
    facts = {}
    meaning = {'input': 'ingress', 'output': 'host egress', 'forward': 'container egress and forwarded ingress'}
    for hook in ('input', 'output', 'forward'):
        chain = rs.base_chain(hook)
        if chain is None:
            findings.append('%s is not filtered: no %s base chain in table %s %s' % (meaning[hook], hook, family, table))
            facts[hook] = None
            continue
        facts[hook] = {'chain': chain['name'], 'policy': chain.get('policy', 'accept')}
        why = _chain_open(rs, chain)
        if why:
            findings.append('%s is open: %s' % (meaning[hook], why))
    return judged('network.default_deny', findings, {'table': '%s %s' % (family, table), 'chains': facts})


def check_blocked_ranges(data, family, table, ranges=DEFAULT_BLOCKED_RANGES, error=None):
    """``network.blocked_ranges``: each range is dropped before any accept, for output and forward.

    A range counts as blocked on a path when a drop rule whose destination set covers the
    whole range (and matches nothing else) comes before any accept rule that could let
    traffic to it through.
    """
    if error:
        return judged('network.blocked_ranges', ['cannot read the nftables ruleset: %s' % error])
    rs = Ruleset(data, family, table)
    targets = []
    for text in ranges:
        targets.append(ipaddress.ip_network(text, strict=False))
    findings = []
    facts = {}
    for hook, what in (('output', 'host'), ('forward', 'containers')):
        chain = rs.base_chain(hook)
        facts[hook] = {}
        if chain is None:
            for net in targets:
                findings.append('%s is not blocked for the %s: no %s base chain' % (net, what, hook))
                facts[hook][str(net)] = False
            continue
        for net in targets:
            blocked = False
            for where, expr in _walk(rs, chain['name']):
                verdict = _verdict(expr)
                nets = _daddr_networks(rs, expr)
                covers = [n for n in nets if n.version == net.version and net.subnet_of(n)]
                if verdict in ('drop', 'reject') and covers and not _other_matches(expr):
                    blocked = True
                    break
                if verdict == 'accept':
                    overlaps = [n for n in nets if n.version == net.version and n.overlaps(net)]
                    # an accept that can reach the range: unconditional, or on an overlapping destination
                    if _is_unconditional(expr) or overlaps:
                        break
            facts[hook][str(net)] = blocked
            if not blocked:
                findings.append('%s is not dropped for the %s (%s chain) before traffic is accepted' % (net, what, hook))
    return judged('network.blocked_ranges', findings, {'table': '%s %s' % (family, table), 'ranges': [str(n) for n in targets],
                                                       'blocked': facts})
