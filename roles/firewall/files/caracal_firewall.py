# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host helper of the caracal.hardened firewall role.

Installed as /usr/local/lib/caracal-firewall/caracal_firewall.py and called through the
/usr/local/sbin/caracal-firewall wrapper.  The role also runs it straight from the
controller (``ansible.builtin.script``) for the read-only ``plan`` step, so check mode
works on a host where nothing is installed yet.

Sub-commands:

  plan JSON        validate and normalise addresses, resolve host names, read the live
                   state; prints JSON, changes nothing.
  apply FILE       save the live table, arm a transient systemd timer that restores it,
                   then load FILE (one atomic nft transaction).
  confirm          cancel the pending rollback (the new ruleset is kept).
  rollback         (run by the timer) restore the saved table unless confirmed.
  refresh          re-resolve the allowlisted names and update the nft sets in place.
  status           print the live state as JSON.

Only the role's own table is ever read, replaced or restored: the rulesets of Docker,
Podman or anything else are left alone (there is no ``flush ruleset`` anywhere).
"""

from __future__ import absolute_import, division, print_function

import argparse
import errno
import fcntl
import ipaddress
import json
import os
import re
import socket
import subprocess
import sys
import time

NFT = '/usr/sbin/nft'
SYSTEMCTL = '/bin/systemctl'
SYSTEMD_RUN = '/usr/bin/systemd-run'
DEFAULT_TABLE = 'caracal_filter'
DEFAULT_FAMILY = 'inet'
DEFAULT_STATE_DIR = '/run/caracal-firewall'
ROLLBACK_UNIT = 'caracal-firewall-rollback'
# A rule comment is written between double quotes in the ruleset: only these characters, so
# that nothing in it can end the string and be read as a rule.
COMMENT_RE = re.compile(r'\A[A-Za-z0-9 _.,:/()\[\]+@=-]{1,120}\Z')
REVISION_RE = re.compile(r'comment "caracal\.hardened firewall (rev [0-9a-f]+)"')
HOSTNAME_RE = re.compile(r'^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)'
                         r'(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*\.?$')


def _run(argv, stdin=None):
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin is not None else None,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(stdin.encode('utf-8') if stdin is not None else None)
    return proc.returncode, out.decode('utf-8', 'replace'), err.decode('utf-8', 'replace')


def _write(path, text, mode=0o600):
    tmp = '%s.tmp.%d' % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, 'w') as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.rename(tmp, path)


def _remove(path):
    try:
        os.unlink(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise


def _log(msg):
    sys.stderr.write('caracal-firewall: %s\n' % msg)
    sys.stderr.flush()


# --------------------------------------------------------------------------- addresses

def _strip_scope(text):
    return text.split('%', 1)[0]


def parse_network(entry):
    """Return (network, error) for an address or a network written by a user."""
    text = entry.strip()
    try:
        return ipaddress.ip_network(text, strict=True), None
    except ValueError as exc:
        if 'host bits set' in str(exc):
            loose = ipaddress.ip_network(text, strict=False)
            return None, "'%s' has host bits set (did you mean %s?)" % (text, loose)
        return None, None


def resolve(name):
    """Addresses of ``name`` through the host's own resolver (nsswitch: files, dns)."""
    infos = socket.getaddrinfo(name, None, 0, socket.SOCK_STREAM)
    found = set()
    for family, _type, _proto, _canon, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            found.add(ipaddress.ip_address(_strip_scope(sockaddr[0])))
    return found


def _split(addresses):
    v4 = sorted(a for a in addresses if a.version == 4)
    v6 = sorted(a for a in addresses if a.version == 6)
    return [str(a) for a in v4], [str(a) for a in v6]


def _collapse(networks):
    v4 = list(ipaddress.collapse_addresses(n for n in networks if n.version == 4))
    v6 = list(ipaddress.collapse_addresses(n for n in networks if n.version == 6))
    return [str(n) for n in sorted(v4)], [str(n) for n in sorted(v6)]


def _inside(address_or_net, networks):
    for net in networks:
        if address_or_net.version != net.version:
            continue
        if isinstance(address_or_net, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
            if address_or_net.subnet_of(net):
                return net
        elif address_or_net in net:
            return net
    return None


def _overlaps(network, networks):
    for net in networks:
        if network.version == net.version and network.overlaps(net):
            return net
    return None


def resolv_conf_servers():
    """Name servers the host uses, looking behind a local stub resolver when possible."""
    def read(path):
        servers = []
        try:
            with open(path) as handle:
                for line in handle:
                    parts = line.split()
                    if len(parts) >= 2 and parts[0] == 'nameserver':
                        try:
                            servers.append(ipaddress.ip_address(_strip_scope(parts[1])))
                        except ValueError:
                            pass
        except (IOError, OSError):
            pass
        return servers

    servers = read('/etc/resolv.conf')
    if servers and all(s.is_loopback for s in servers):
        upstream = read('/run/systemd/resolve/resolv.conf')
        if upstream:
            servers = upstream
    return servers


# --------------------------------------------------------------------------- nft state

def _nft_available():
    return os.access(NFT, os.X_OK)


def live_table(family, table):
    """Return the stateless listing of the table, or None when it does not exist."""
    if not _nft_available():
        return None
    rc, out, _err = _run([NFT, '-s', 'list', 'table', family, table])
    return out if rc == 0 else None


def live_revision(listing):
    if not listing:
        return None
    match = REVISION_RE.search(listing)
    return match.group(1) if match else 'unknown'


def _unit_active(unit):
    if not os.access(SYSTEMCTL, os.X_OK):
        return False
    rc, out, _err = _run([SYSTEMCTL, 'is-active', unit])
    return rc == 0 and out.strip() in ('active', 'activating', 'reloading')


def _unit_enabled(unit):
    if not os.access(SYSTEMCTL, os.X_OK):
        return False
    rc, out, _err = _run([SYSTEMCTL, 'is-enabled', unit])
    return rc == 0 and out.strip() in ('enabled', 'enabled-runtime', 'static', 'alias')


def status(family, table):
    listing = live_table(family, table)
    return {
        'nft': _nft_available(),
        'table': listing is not None,
        'revision': live_revision(listing),
        'rollback_pending': _unit_active(ROLLBACK_UNIT + '.timer'),
    }


# --------------------------------------------------------------------------- plan

NAME_RE = re.compile(r'^[a-z][a-z0-9_]{0,23}$')
PROTOCOLS = ('tcp', 'udp')


class _Plan(object):
    """Turns the role's variables into the address groups the ruleset template renders."""

    def __init__(self, spec):
        self.spec = spec
        self.errors = []
        self.warnings = []
        self.blocked = []

    def networks(self, label, entries, names=False, destination=False):
        """Parse ``entries``; returns (networks, resolved addresses, host names)."""
        nets, resolved, hosts = [], set(), []
        if not isinstance(entries, list):
            self.errors.append('%s: expected a list, got %r' % (label, entries))
            return nets, resolved, hosts
        for raw in entries:
            entry = str(raw).strip()
            if not entry:
                self.errors.append('%s: empty entry' % label)
                continue
            net, err = parse_network(entry)
            if err:
                self.errors.append('%s: %s' % (label, err))
                continue
            if net is not None:
                nets.append(net)
                # 0.0.0.0/0 and ::/0 mean "any address": no warning for the obvious overlap.
                hit = _overlaps(net, self.blocked) if destination and net.prefixlen else None
                if hit:
                    self.warnings.append('%s: %s overlaps the always-blocked range %s; that part stays blocked'
                                         % (label, net, hit))
                continue
            if not names:
                self.errors.append("%s: '%s' is not an IP address or network (host names are not accepted here)"
                                   % (label, entry))
                continue
            if not HOSTNAME_RE.match(entry):
                self.errors.append("%s: '%s' is neither an IP address, a network nor a valid host name"
                                   % (label, entry))
                continue
            try:
                addresses = resolve(entry)
            except (socket.gaierror, UnicodeError) as exc:
                self.errors.append("%s: host name '%s' does not resolve on this host (%s)"
                                   % (label, entry, getattr(exc, 'strerror', None) or exc))
                continue
            if not addresses:
                self.errors.append("%s: host name '%s' resolves to no IPv4 or IPv6 address" % (label, entry))
                continue
            for address in sorted(addresses, key=lambda a: (a.version, int(a))):
                hit = _inside(address, self.blocked)
                if hit:
                    self.warnings.append('%s: %s resolves to %s inside the always-blocked range %s; '
                                         'traffic to it stays blocked' % (label, entry, address, hit))
            hosts.append(entry.rstrip('.').lower())
            resolved.update(addresses)
        return nets, resolved, sorted(set(hosts))

    def service(self, label, item, builtin):
        """Check the name, protocols and ports of one rule; returns a clean copy or None."""
        ok = True
        if not isinstance(item, dict):
            self.errors.append('%s: expected a dictionary, got %r' % (label, item))
            return None
        name = str(item.get('name', ''))
        if not builtin:
            if not NAME_RE.match(name):
                self.errors.append("%s: name '%s' must match %s (it becomes an nft set name)"
                                   % (label, name, NAME_RE.pattern))
                ok = False
            elif name in self.spec.get('reserved', []):
                self.errors.append("%s: name '%s' is reserved by the role" % (label, name))
                ok = False
        protocols = item.get('protocols') or [item.get('protocol', 'tcp')]
        for proto in protocols:
            if proto not in PROTOCOLS:
                self.errors.append("%s: protocol '%s' is not one of %s" % (label, proto, ', '.join(PROTOCOLS)))
                ok = False
        ports = item.get('ports') or []
        if not isinstance(ports, list) or not ports:
            self.errors.append('%s: at least one port is required' % label)
            ok = False
        else:
            # Inventories often carry ports as strings: accept digits, refuse anything else.
            ports = [int(p) if isinstance(p, str) and p.strip().isdecimal() else p for p in ports]
            for port in ports:
                if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
                    self.errors.append('%s: port %r is not an integer between 1 and 65535' % (label, port))
                    ok = False
        if not ok:
            return None
        return {'name': name, 'protocols': sorted(set(protocols)), 'ports': sorted(set(ports))}

    def build(self):
        spec = self.spec
        for label, entries in (('built-in blocked ranges', spec.get('blocked', [])),
                               ('caracal_firewall_blocked_extra', spec.get('blocked_extra', []))):
            for entry in entries:
                net, err = parse_network(str(entry))
                if net is None:
                    self.errors.append('%s: %s' % (label, err or "'%s' is not an IP address or network" % entry))
                else:
                    self.blocked.append(net)
        blocked = dict(zip(('v4', 'v6'), _collapse(self.blocked)))

        ingress, seen = [], set()
        for label, item, builtin in self._items('ingress'):
            clean = self.service(label, item, builtin)
            if clean is None:
                continue
            key = clean['name'] if builtin else 'in_' + clean['name']
            if key in seen:
                self.errors.append("%s: the name '%s' is used twice" % (label, clean['name']))
                continue
            seen.add(key)
            nets, _resolved, _hosts = self.networks(item.get('label', label + '.sources'), item.get('sources', []))
            clean.update(key=key, comment=item.get('comment', label))
            clean['v4'], clean['v6'] = _collapse(nets)
            ingress.append(clean)

        controller_added = self._controller(ingress)

        egress, seen = [], set()
        for label, item, builtin in self._expand_ports(self._items('egress')):
            clean = self.service(label, item, builtin)
            if clean is None:
                continue
            key = clean['name'] if builtin else 'out_' + clean['name']
            if key in seen:
                self.errors.append("%s: the name '%s' is used twice" % (label, clean['name']))
                continue
            seen.add(key)
            entries = item.get('destinations', [])
            dest_label = item.get('label', label + '.destinations')
            if item.get('resolv_conf_when_empty') and not entries:
                entries = self._resolv_conf(dest_label)
            nets, resolved, hosts = self.networks(dest_label, entries,
                                                  names=item.get('names', True), destination=True)
            clean.update(key=key, comment=item.get('comment', label), names=hosts)
            clean['v4'], clean['v6'] = _collapse(nets)
            clean['dns_v4'], clean['dns_v6'] = _split(resolved)
            egress.append(clean)

        for group in ingress + egress:
            if not COMMENT_RE.match(str(group['comment'])):
                self.errors.append('the comment of rule %s may only hold letters, digits, spaces and '
                                   '_ . , : / ( ) [ ] + @ = - (1 to 120 characters)' % group['key'])
        if _unit_enabled('nftables.service'):
            self.warnings.append("Debian's nftables.service is enabled: restarting or reloading it runs "
                                 "'flush ruleset' from /etc/nftables.conf, which also removes Docker's rules "
                                 "(caracal-firewall.service then reloads its own table).")
        return {
            'blocked': blocked,
            'ingress': ingress,
            'egress': egress,
            'resolve': dict((g['key'], g['names']) for g in egress if g['names']),
            'controller_added': controller_added,
            'errors': self.errors,
            'warnings': self.warnings,
            'live': status(spec.get('family', DEFAULT_FAMILY), spec.get('table', DEFAULT_TABLE)),
        }

    def _items(self, kind):
        for item in self.spec.get(kind, []):
            yield item.get('comment', item.get('name')), item, True
        extra = self.spec.get(kind + '_extra') or []
        if not isinstance(extra, list):
            self.errors.append('caracal_firewall_%s_extra: expected a list' % kind)
            return
        for index, item in enumerate(extra):
            name = item.get('name', index) if isinstance(item, dict) else index
            yield 'caracal_firewall_%s_extra[%s]' % (kind, name), item, False

    def _expand_ports(self, items):
        """Split a ``host:port`` list (the gateway's allowlist syntax) into one rule per port.

        Entries without a port keep the rule's own ports; ``[2001:db8::1]:8443`` is the IPv6
        form. Each explicit port becomes a rule ``<name>_<port>`` of its own.
        """
        for label, item, builtin in items:
            if not (isinstance(item, dict) and item.get('host_port')):
                yield label, item, builtin
                continue
            plain, by_port = [], {}
            for raw in item.get('destinations') or []:
                entry = str(raw).strip()
                host, port = entry, None
                if entry.startswith('[') and ']:' in entry:
                    host, port = entry[1:].split(']:', 1)
                elif entry.count(':') == 1:
                    host, port = entry.split(':', 1)
                if port is None:
                    plain.append(entry)
                elif port.isdecimal() and 1 <= int(port) <= 65535:
                    by_port.setdefault(int(port), []).append(host)
                else:
                    self.errors.append("%s: '%s' has an invalid port" % (item.get('label', label), entry))
            if plain:
                yield label, dict(item, destinations=plain), builtin
            for port in sorted(by_port):
                yield label, dict(item, name='%s_%d' % (item.get('name', ''), port), ports=[port],
                                  destinations=by_port[port],
                                  comment='%s, port %d' % (item.get('comment', label), port)), builtin

    def _resolv_conf(self, label):
        servers = resolv_conf_servers()
        entries = [str(s) for s in servers if not s.is_loopback]
        if servers and not entries:
            self.warnings.append('%s: the host resolves through a loopback resolver only; its upstream '
                                 'servers are unknown, so no DNS egress is opened. Set it explicitly.' % label)
        elif not servers:
            self.warnings.append('%s: /etc/resolv.conf lists no name server; no DNS egress is opened.' % label)
        return entries

    def _controller(self, ingress):
        controller = self.spec.get('controller') or {}
        address = (controller.get('address') or '').strip()
        group = [g for g in ingress if g['key'] == controller.get('group')]
        if not address or not group:
            return False
        try:
            ip = ipaddress.ip_address(_strip_scope(address))
        except ValueError:
            self.errors.append("the controller source '%s' is not an IP address" % address)
            return False
        group = group[0]
        current = [ipaddress.ip_network(n) for n in group['v4'] + group['v6']]
        if _inside(ip, current):
            return False
        group['v4'], group['v6'] = _collapse(current + [ipaddress.ip_network(ip)])
        self.warnings.append('the controller connects from %s, which %s does not cover: it was added so '
                             'this run cannot lock itself out. Add it there, or set '
                             'caracal_firewall_keep_controller_ssh: false.'
                             % (ip, controller.get('label', 'the admin source list')))
        return True


def cmd_plan(args):
    spec = json.loads(args.spec)
    print(json.dumps(_Plan(spec).build(), sort_keys=True))
    return 0


# --------------------------------------------------------------------------- commit-confirm

class _Lock(object):
    def __init__(self, state_dir):
        self.path = os.path.join(state_dir, 'lock')
        self.handle = None

    def __enter__(self):
        self.handle = open(self.path, 'a')
        fcntl.flock(self.handle.fileno(), fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.handle.fileno(), fcntl.LOCK_UN)
        self.handle.close()


def _paths(state_dir):
    return {
        'previous': os.path.join(state_dir, 'previous.nft'),
        'confirmed': os.path.join(state_dir, 'confirmed'),
        'rolled_back': os.path.join(state_dir, 'rolled-back'),
    }


def _state_dir(path):
    if not os.path.isdir(path):
        os.makedirs(path, 0o700)
    os.chmod(path, 0o700)
    return path


def _snapshot(family, table, persisted):
    """Text that puts the table back as it is now (or removes it), checked by nft -c.

    The live listing is preferred (it carries the set members the refresh timer put
    there). Some nft versions list a few expressions in a form they cannot read back; the
    persisted ruleset is then used instead, but only when it is the one that is live.
    Returns (text, source) or (None, reason).
    """
    head = 'table %s %s\ndelete table %s %s\n' % (family, table, family, table)
    listing = live_table(family, table)
    if listing is None:
        return head, 'no table (the rollback removes it)'
    rc, _out, err = _run([NFT, '-c', '-f', '-'], stdin=head + listing)
    if rc == 0:
        return head + listing, 'the live table'
    live_rev = live_revision(listing)
    try:
        with open(persisted) as handle:
            saved = handle.read()
    except (IOError, OSError):
        saved = ''
    if saved and live_rev != 'unknown' and live_revision(saved) == live_rev:
        return saved, '%s (the live table lists in a form nft cannot reload: %s)' % (persisted, err.strip())
    return None, 'the live table cannot be saved in a form nft reloads:\n%s' % err


def _disarm():
    _run([SYSTEMCTL, 'stop', ROLLBACK_UNIT + '.timer'])
    _run([SYSTEMCTL, 'reset-failed', ROLLBACK_UNIT + '.timer', ROLLBACK_UNIT + '.service'])


def cmd_apply(args):
    state_dir = _state_dir(args.state_dir)
    paths = _paths(state_dir)
    if args.timeout < 5:
        _log('the confirmation timeout must be at least 5 seconds')
        return 2
    rc, _out, err = _run([NFT, '-c', '-f', args.candidate])
    if rc != 0:
        _log('nft rejected %s, nothing was changed:\n%s' % (args.candidate, err))
        return 1
    with _Lock(state_dir):
        pending = _unit_active(ROLLBACK_UNIT + '.timer') and os.path.exists(paths['previous'])
        if not pending:
            # Keep the state of the last confirmed ruleset when an earlier apply is still
            # unconfirmed: a rollback must go back to what was confirmed, not to the
            # unconfirmed intermediate.
            snapshot, source = _snapshot(args.family, args.table, args.persisted)
            if snapshot is None:
                _log('%s\nRefusing to apply without a way back.' % source)
                return 1
            _write(paths['previous'], snapshot)
            _log('saved %s for the rollback' % source)
        _disarm()
        _remove(paths['confirmed'])
        _remove(paths['rolled_back'])
        rc, _out, err = _run([
            SYSTEMD_RUN, '--unit', ROLLBACK_UNIT, '--on-active', '%ds' % args.timeout,
            '--timer-property', 'AccuracySec=1s',
            '--description', 'caracal.hardened firewall: restore the previous ruleset unless confirmed',
            '--property', 'Type=oneshot',
            '/usr/bin/python3', os.path.abspath(__file__), 'rollback',
            '--state-dir', state_dir, '--family', args.family, '--table', args.table,
        ])
        if rc != 0:
            _log('could not arm the rollback timer, refusing to apply:\n%s' % err)
            if pending:
                # The earlier apply is still unconfirmed and its timer is now stopped: go back to
                # the confirmed ruleset now rather than leave an unconfirmed one with no way back.
                _restore(paths, [paths['previous']])
            return 1
        deadline = int(time.time()) + args.timeout
        rc, _out, err = _run([NFT, '-f', args.candidate])
        if rc != 0:
            _log('nft could not load %s (nothing was changed):\n%s' % (args.candidate, err))
            if not pending:
                _disarm()
                _remove(paths['previous'])
            return 1
    print(json.dumps({'applied': True, 'rollback_at': deadline, 'kept_previous': pending}))
    return 0


def cmd_confirm(args):
    state_dir = _state_dir(args.state_dir)
    paths = _paths(state_dir)
    with _Lock(state_dir):
        if os.path.exists(paths['rolled_back']):
            with open(paths['rolled_back']) as handle:
                when = handle.read().strip()
            _log('too late: the previous ruleset was already restored at %s' % when)
            return 3
        _write(paths['confirmed'], '%d\n' % time.time())
        _disarm()
        _remove(paths['previous'])
    print(json.dumps({'confirmed': True}))
    return 0


def cmd_rollback(args):
    state_dir = _state_dir(args.state_dir)
    paths = _paths(state_dir)
    with _Lock(state_dir):
        if os.path.exists(paths['confirmed']):
            _log('the ruleset was confirmed; nothing to roll back')
            return 0
        return _restore(paths, [paths['previous'], args.fallback])


def _restore(paths, sources):
    """Load the first of ``sources`` that nft accepts (the caller holds the lock); 0 when one did."""
    for source in sources:
        if source and os.path.exists(source):
            rc, _out, err = _run([NFT, '-f', source])
            if rc == 0:
                _write(paths['rolled_back'], '%s from %s\n' % (time.strftime('%Y-%m-%dT%H:%M:%S%z'), source))
                _remove(paths['previous'])
                _log('unconfirmed ruleset rolled back (restored %s)' % source)
                return 0
            _log('could not restore %s:\n%s' % (source, err))
    return 1


# --------------------------------------------------------------------------- refresh

def _live_set(family, table, name):
    rc, out, _err = _run([NFT, '-j', 'list', 'set', family, table, name])
    if rc != 0:
        return None
    elements = set()
    for item in json.loads(out).get('nftables', []):
        if 'set' in item:
            for elem in item['set'].get('elem', []):
                if isinstance(elem, dict) and 'elem' in elem:
                    elem = elem['elem'].get('val')
                if isinstance(elem, str):
                    elements.add(ipaddress.ip_address(elem))
    return elements


def cmd_refresh(args):
    with open(args.config) as handle:
        config = json.load(handle)
    family = config.get('family', DEFAULT_FAMILY)
    table = config.get('table', DEFAULT_TABLE)
    if live_table(family, table) is None:
        _log('table %s %s is not loaded; nothing to refresh' % (family, table))
        return 0
    failures = 0
    commands = []
    for key, names in sorted(config.get('groups', {}).items()):
        addresses = set()
        failed = False
        for name in names:
            try:
                addresses.update(resolve(name))
            except (socket.gaierror, UnicodeError) as exc:
                _log('%s: %s does not resolve (%s); keeping the current addresses of this group'
                     % (key, name, exc))
                failed = True
        if failed:
            failures += 1
            continue
        for version, suffix in ((4, 'v4'), (6, 'v6')):
            set_name = '%s_dns_%s' % (key, suffix)
            wanted = set(a for a in addresses if a.version == version)
            live = _live_set(family, table, set_name)
            if live is None:
                _log('set %s is missing from the live table; skipped' % set_name)
                continue
            if live == wanted:
                continue
            _log('%s: %s -> %s' % (set_name, ', '.join(str(a) for a in sorted(live)) or '-',
                                   ', '.join(str(a) for a in sorted(wanted)) or '-'))
            commands.append('flush set %s %s %s' % (family, table, set_name))
            if wanted:
                commands.append('add element %s %s %s { %s }' % (
                    family, table, set_name, ', '.join(str(a) for a in sorted(wanted))))
    if commands:
        rc, _out, err = _run([NFT, '-f', '-'], stdin='\n'.join(commands) + '\n')
        if rc != 0:
            _log('nft refused the set update:\n%s' % err)
            return 1
    print(json.dumps({'changed': bool(commands), 'failed_groups': failures}))
    return 1 if failures else 0


def cmd_status(args):
    print(json.dumps(status(args.family, args.table), sort_keys=True))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog='caracal-firewall', description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='command')
    sub.required = True

    def common(p):
        p.add_argument('--family', default=DEFAULT_FAMILY)
        p.add_argument('--table', default=DEFAULT_TABLE)
        p.add_argument('--state-dir', default=DEFAULT_STATE_DIR)
        return p

    p = sub.add_parser('plan')
    p.add_argument('spec', help='JSON document describing the address groups')
    p.set_defaults(func=cmd_plan)
    p = common(sub.add_parser('apply'))
    p.add_argument('--timeout', type=int, required=True, help='seconds before the automatic rollback')
    p.add_argument('--persisted', default='/etc/caracal/firewall/ruleset.nft',
                   help='the confirmed ruleset, used when the live table cannot be listed reloadably')
    p.add_argument('candidate')
    p.set_defaults(func=cmd_apply)
    common(sub.add_parser('confirm')).set_defaults(func=cmd_confirm)
    p = common(sub.add_parser('rollback'))
    p.add_argument('--fallback', default='/etc/caracal/firewall/ruleset.nft',
                   help='loaded when the saved table is missing')
    p.set_defaults(func=cmd_rollback)
    p = sub.add_parser('refresh')
    p.add_argument('--config', default='/etc/caracal/firewall/resolve.json')
    p.set_defaults(func=cmd_refresh)
    common(sub.add_parser('status')).set_defaults(func=cmd_status)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == '__main__':
    sys.exit(main())
