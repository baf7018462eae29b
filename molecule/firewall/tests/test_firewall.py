# -*- coding: utf-8 -*-
"""Verifier of the firewall scenario.

Every probe goes to loopback or to the network namespace "fwt" that prepare.yml built
inside the test host (documentation ranges, plus 169.254.169.254, 100.64.0.10 and
fd00:ec2::254 which exist only there). Each probe is one bounded connection attempt.
"""

import json
import os
import re
import time

import caracal_molecule
from conftest import (SCENARIO, TABLE, docker_restart, get_host, host_names, persisted_revision, probe,
                      revision)

testinfra_hosts = ['ansible://%s' % name for name in host_names()]


def _ok(answer):
    return answer is not None and answer != ''


# --- what the role installed ----------------------------------------------------------

def test_table_is_live_and_matches_the_persisted_file(host):
    assert host.run('nft list table %s' % TABLE).rc == 0
    assert revision(host) == persisted_revision(host)
    ruleset = host.file('/etc/caracal/firewall/ruleset.nft')
    assert ruleset.mode == 0o600 and ruleset.user == 'root'
    assert 'flush ruleset' not in ruleset.content_string
    assert host.file('/etc/caracal/firewall').mode == 0o750
    assert host.check_output('nft -c -f /etc/caracal/firewall/ruleset.nft && echo valid') == 'valid'


def test_boot_unit_and_refresh_timer(host):
    unit = host.service('caracal-firewall.service')
    assert unit.is_enabled and unit.is_running
    timer = host.service('caracal-firewall-refresh.timer')
    assert timer.is_enabled and timer.is_running
    # The role leaves Debian's nftables.service (which flushes the whole ruleset) alone.
    assert not host.service('nftables.service').is_enabled
    # Nothing is left armed once a run confirmed its ruleset.
    assert host.run('systemctl is-active caracal-firewall-rollback.timer').stdout.strip() != 'active'


def test_policies_are_default_drop(host):
    for chain, hook in (('input', 'input'), ('output', 'output'), ('forward', 'forward')):
        out = host.check_output('nft list chain %s %s' % (TABLE, chain))
        assert re.search(r'type filter hook %s priority \S+.*policy drop;' % hook, out), out


# --- the engines' rules survive --------------------------------------------------------

def test_docker_rules_are_intact(host):
    now = host.check_output('iptables -S; iptables -t nat -S')
    before = host.file('/root/fwtest/iptables.before').content_string
    assert now.strip() == before.strip()
    for table in ('ip filter', 'ip nat'):
        chains = host.check_output("nft list table %s | sed -n 's/^\\tchain \\(.*\\) {$/\\1/p'" % table).split()
        assert 'DOCKER' in chains, (table, chains)
    tables = host.check_output('nft list tables')
    assert 'table ip filter' in tables and 'table ip nat' in tables and 'table %s' % TABLE in tables


# --- host egress -------------------------------------------------------------------------

def test_host_egress_allowlist(host):
    allowed = ['tcp:198.51.100.10:443',        # upstream.caracal.test (A)
               'tcp:[2001:db8:100::10]:443',   # upstream.caracal.test (AAAA), needs ND through the firewall
               'udp:198.51.100.53:53',          # the configured resolver
               'tcp:198.51.100.53:53',
               'udp:198.51.100.123:123']        # the configured NTP server
    allowed += ['tcp:198.51.100.20:8443']      # allowlisted as host:port
    blocked = ['tcp:198.51.100.20:443',        # allowlisted for 8443 only
               'tcp:198.51.100.10:8443',       # allowlisted host, port not allowed
               'tcp:169.254.169.254:443',      # metadata.caracal.test is allowlisted: still blocked
               'tcp:169.254.169.254:80',
               'tcp:100.64.0.10:443',          # allowlisted literal in carrier-grade NAT: still blocked
               'tcp:[fd00:ec2::254]:443',      # metadata6.caracal.test is allowlisted: still blocked
               'tcp:[2001:db8:100::20]:443',
               'udp:198.51.100.20:53',         # DNS to another resolver
               'udp:198.51.100.53:123']         # NTP to the resolver
    result = probe(host, *(allowed + blocked))
    assert [t for t in allowed if not _ok(result[t])] == [], result
    assert [t for t in blocked if _ok(result[t])] == [], result


def test_loopback_published_container_port(host):
    result = probe(host, 'tcp:127.0.0.1:18080')
    assert '200 OK' in (result['tcp:127.0.0.1:18080'] or ''), result


# --- container egress (forwarded traffic) ---------------------------------------------

def test_container_egress_allowlist(host):
    web_ip = host.check_output(
        "docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' fwtest-web")
    targets = {'198.51.100.10 443': True, '198.51.100.20 443': False, '169.254.169.254 443': False,
               '100.64.0.10 443': False, '198.51.100.10 8443': False, '%s 8080' % web_ip: True}
    script = ' '.join(
        '( r=$(printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 2 %s 2>/dev/null | head -n 1); echo "%s=$r" ) &' % (t, t)
        for t in targets) + ' wait'
    out = host.check_output("docker exec fwtest-probe sh -c '%s'" % script)
    seen = dict(line.split('=', 1) for line in out.splitlines() if '=' in line)
    for target, allowed in targets.items():
        assert bool(seen.get(target)) is allowed, (target, seen)


# --- ingress -------------------------------------------------------------------------------

def test_ingress_from_admin_and_public_sources(host):
    public = probe(host, 'tcp:198.51.100.1:443', 'tcp:198.51.100.1:22', 'tcp:198.51.100.1:8443', netns=True)
    assert _ok(public['tcp:198.51.100.1:443']), public      # web edge open to all
    assert not _ok(public['tcp:198.51.100.1:22']), public   # SSH only from the admin sources
    assert not _ok(public['tcp:198.51.100.1:8443']), public  # nothing else
    admin = probe(host, 'tcp:198.51.100.1:22', netns=True, source='198.51.100.100')
    assert _ok(admin['tcp:198.51.100.1:22']), admin


# --- name resolution refresh -------------------------------------------------------------

def test_refresh_timer_follows_dns_changes(host):
    # /etc/hosts is a bind mount in the test host: rewrite it in place, never by rename.
    extra = '198.51.100.20 upstream.caracal.test'
    try:
        host.check_output("printf '%%s\\n' '%s' >> /etc/hosts" % extra)
        host.check_output('systemctl start caracal-firewall-refresh.service')
        assert '198.51.100.20' in host.check_output('nft list set %s upstream_dns_v4' % TABLE)
        assert _ok(probe(host, 'tcp:198.51.100.20:443')['tcp:198.51.100.20:443'])
    finally:
        host.check_output("grep -vx '%s' /etc/hosts > /root/fwtest/hosts.tmp; cat /root/fwtest/hosts.tmp > /etc/hosts"
                          % extra)
        host.check_output('systemctl start caracal-firewall-refresh.service')
    assert '198.51.100.20' not in host.check_output('nft list set %s upstream_dns_v4' % TABLE)
    assert not _ok(probe(host, 'tcp:198.51.100.20:443')['tcp:198.51.100.20:443'])
    # The refresh changed set members only: the table's revision is what the role wrote.
    assert revision(host) == persisted_revision(host)


def test_plan_keeps_the_controller_source(host):
    spec = {'ingress': [{'name': 'ssh', 'protocols': ['tcp'], 'ports': [22], 'sources': ['192.0.2.0/24']}],
            'controller': {'address': '203.0.113.77', 'group': 'ssh', 'label': 'caracal_firewall_admin_sources'}}
    out = json.loads(host.check_output("caracal-firewall plan '%s'" % json.dumps(spec)))
    assert out['controller_added'] is True
    assert out['ingress'][0]['v4'] == ['192.0.2.0/24', '203.0.113.77/32']
    spec['controller']['address'] = '192.0.2.77'
    out = json.loads(host.check_output("caracal-firewall plan '%s'" % json.dumps(spec)))
    assert out['controller_added'] is False


# --- bad input fails before anything changes ------------------------------------------

def test_bad_input_fails_clearly_and_changes_nothing(host, bad_input):
    name = host.backend.host
    results = bad_input['results'][name]
    msg = results['plan_errors'] or ''
    assert "'198.51.100.0/33' is not an IP address or network" in msg, msg
    assert "'192.0.2.1/24' has host bits set (did you mean 192.0.2.0/24?)" in msg, msg
    assert "host name 'missing.caracal.test' does not resolve" in msg, msg
    assert "name 'Bad-Name' must match" in msg, msg
    assert 'caracal_firewall_admin_sources is empty' in (results['empty_admin_sources'] or ''), results
    assert 'nft rejected the generated ruleset' in (results['invalid_rule'] or ''), results
    assert 'out of range' in results['invalid_rule'], results
    assert bad_input['before'][name] == bad_input['after'][name]


# --- commit-confirm: without confirmation the previous ruleset comes back ------------------

def test_unconfirmed_ruleset_is_rolled_back(host, unconfirmed):
    name = host.backend.host
    old_revision, old_table = unconfirmed['before'][name]
    during, after = unconfirmed['during'][name], unconfirmed['after'][name]
    # Right after the run: the new ruleset is live (port 8443 admitted) and the rollback armed.
    assert 'status' in during, unconfirmed['output'][-3000:]
    assert during['status']['revision'] != old_revision, during
    assert during['status']['rollback_pending'] is True, during
    assert during['timer'] == 'active', during
    assert _ok(during['probe']['tcp:198.51.100.1:8443']), during
    # Then the previous table came back by itself, exactly as it was.
    assert after['revision'] == old_revision, after
    assert after['table'] == old_table
    assert not _ok(after['probe']['tcp:198.51.100.1:8443']), after
    assert after['marker'], after
    assert after['elapsed'] < unconfirmed['timeout'] + 60
    # Nothing unconfirmed was persisted for the next boot.
    assert after['persisted'] == old_revision


# --- a no-op run skips the full run; drift makes it full again ------------------------------

def _apply_role(host):
    plays = [{'name': 'Firewall', 'hosts': 'all', 'gather_facts': False,
              'vars_files': [os.path.join(SCENARIO, 'vars', 'firewall.yml')],
              'roles': ['caracal.hardened.firewall']}]
    rc, out = caracal_molecule.run_playbook(plays, verbosity=1, limit=host.backend.host)
    assert rc == 0, caracal_molecule.failure_excerpt(out)
    return out


def test_an_unchanged_host_skips_the_full_run_and_drift_is_repaired(host):
    _apply_role(host)
    out = _apply_role(host)
    assert caracal_molecule.changed_count(out) == 0
    assert caracal_molecule.full_run_skipped(out, 'caracal.hardened.firewall'), caracal_molecule.stamp_reasons(out)
    # Drift: the persisted ruleset readable by all, the refresh timer stopped.
    host.run_expect([0], 'chmod 0644 /etc/caracal/firewall/ruleset.nft && systemctl stop caracal-firewall-refresh.timer')
    out = _apply_role(host)
    assert not caracal_molecule.full_run_skipped(out, 'caracal.hardened.firewall')
    assert caracal_molecule.changed_count(out) > 0
    assert host.file('/etc/caracal/firewall/ruleset.nft').mode == 0o600
    assert host.service('caracal-firewall-refresh.timer').is_running
    # The stamp watches the live table: a deleted one makes the run full, and it is loaded again.
    host.run_expect([0], 'nft delete table %s' % TABLE)
    out = _apply_role(host)
    assert not caracal_molecule.full_run_skipped(out, 'caracal.hardened.firewall')
    assert revision(host) == persisted_revision(host)
    # A rule added by hand that keeps the revision comment: the run is full and replaces the table.
    applied = host.check_output('nft -s list table %s' % TABLE)
    host.run_expect([0], 'nft insert rule %s input tcp dport 4444 accept comment \\"hand-made\\"' % TABLE)
    assert 'hand-made' in host.check_output('nft -s list table %s' % TABLE)
    out = _apply_role(host)
    assert not caracal_molecule.full_run_skipped(out, 'caracal.hardened.firewall')
    assert 'list table %s changed' % TABLE in caracal_molecule.stamp_reasons(out)
    assert host.check_output('nft -s list table %s' % TABLE) == applied
    out = _apply_role(host)
    assert caracal_molecule.full_run_skipped(out, 'caracal.hardened.firewall'), caracal_molecule.stamp_reasons(out)
    assert caracal_molecule.changed_count(out) == 0


# --- persistence across a reboot of the test host (last: it restarts the container) ---------

def test_zz_ruleset_survives_a_reboot(host):
    name = host.backend.host
    expected = persisted_revision(host)
    docker_restart(name)
    rebooted = get_host(name)
    assert rebooted.service('caracal-firewall.service').is_running
    assert revision(rebooted) == expected
    # Docker starts after the firewall and adds its own tables next to the role's.
    rebooted.run('timeout 60 sh -c "until docker info >/dev/null 2>&1; do sleep 1; done"')
    tables = rebooted.check_output('nft list tables')
    assert 'table ip filter' in tables and 'table ip nat' in tables, tables
    # And the loopback-published port of the restarted web container answers again.
    deadline = time.time() + 45
    answer = None
    while time.time() < deadline and not _ok(answer):
        answer = probe(rebooted, 'tcp:127.0.0.1:18080')['tcp:127.0.0.1:18080']
        if not _ok(answer):
            time.sleep(1)
    assert '200 OK' in (answer or ''), answer
