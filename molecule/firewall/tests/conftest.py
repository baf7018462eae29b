# -*- coding: utf-8 -*-
"""Fixtures of the firewall scenario's verifier."""

import json
import os
import subprocess
import sys
import tempfile
import time

import pytest
import testinfra
import testinfra.utils.ansible_runner
import yaml

SCENARIO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(SCENARIO, '..', '_shared'))

import caracal_molecule  # noqa: E402  pylint: disable=wrong-import-position

ROLE = 'caracal.hardened.firewall'
TABLE = 'inet caracal_filter'
STATE_PATHS = ('/etc/caracal/firewall', '/etc/systemd/system/caracal-firewall.service',
               '/etc/systemd/system/caracal-firewall-refresh.service',
               '/etc/systemd/system/caracal-firewall-refresh.timer',
               '/usr/local/lib/caracal-firewall', '/usr/local/sbin/caracal-firewall')


def scenario_vars():
    with open(os.path.join(SCENARIO, 'vars', 'firewall.yml')) as handle:
        return yaml.safe_load(handle)


def host_names():
    runner = testinfra.utils.ansible_runner.AnsibleRunner(caracal_molecule.inventory())
    return runner.get_hosts('all')


def get_host(name):
    return testinfra.get_host('ansible://%s?ansible_inventory=%s' % (name, caracal_molecule.inventory()))


def live_state(host):
    """The whole live ruleset (stateless) and the role's files, for before/after checks."""
    ruleset = host.run('nft -s list ruleset')
    assert ruleset.rc == 0, ruleset.stderr
    return ruleset.stdout, caracal_molecule.tree_digest(host, *STATE_PATHS)


def revision(host):
    out = host.check_output('%s status' % '/usr/local/sbin/caracal-firewall')
    return json.loads(out)['revision']


def persisted_revision(host):
    out = host.check_output("sed -n 's/^\\tcomment \"caracal.hardened firewall \\(rev [0-9a-f]*\\)\"$/\\1/p' "
                            "/etc/caracal/firewall/ruleset.nft")
    return out.strip()


def probe(host, *targets, **kwargs):
    """Run the scenario's probe on the test host (or in the fake namespace with netns=True)."""
    prefix = 'ip netns exec fwt ' if kwargs.get('netns') else ''
    source = '--source %s ' % kwargs['source'] if kwargs.get('source') else ''
    out = host.check_output('%spython3 /root/fwtest/probe.py %s%s' % (prefix, source, ' '.join(targets)))
    return json.loads(out)


def run_cases(cases, observe=None, timeout=600):
    """Apply the role once per case, each in a block whose failure is rescued and recorded.

    ``cases`` maps a case name to the role variables it overrides. Returns, per host, a
    map of case name to the failure message, or when the role succeeded to None (or, with
    ``observe``, to the output of that shell command run right after the role).
    """
    fd, result_file = tempfile.mkstemp(prefix='caracal-fw-cases-', suffix='.json')
    os.close(fd)
    tasks = [{'name': 'Start with no results', 'ansible.builtin.set_fact': {'fwtest_results': {}}}]
    for name, overrides in cases.items():
        tasks.append({
            'name': 'Case %s' % name,
            'block': [
                {'name': 'Apply the role (%s)' % name,
                 'ansible.builtin.include_role': {'name': ROLE},
                 'vars': overrides},
                {'name': 'Observe the host right after the role (%s)' % name,
                 'ansible.builtin.command': {'argv': ['sh', '-c', observe or 'true']},
                 'register': 'fwtest_observed', 'changed_when': False},
                {'name': 'Record success (%s)' % name,
                 'ansible.builtin.set_fact': {
                     'fwtest_results': "{{ fwtest_results | combine({'%s': %s}) }}"
                                       % (name, 'fwtest_observed.stdout' if observe else 'None')}},
            ],
            'rescue': [
                {'name': 'Record the failure (%s)' % name,
                 'ansible.builtin.set_fact': {
                     'fwtest_results': "{{ fwtest_results | combine({'%s': ansible_failed_result.msg"
                                       " | default('failed')}) }}" % name}},
            ],
        })
    tasks.append({
        'name': 'Hand the results to the verifier',
        'ansible.builtin.copy': {
            'content': "{{ dict(ansible_play_hosts | zip(ansible_play_hosts"
                       " | map('extract', hostvars, 'fwtest_results'))) | to_json }}",
            'dest': result_file, 'mode': '0600'},
        'delegate_to': 'localhost',
        'run_once': True,
    })
    plays = [{'name': 'Firewall cases', 'hosts': 'all', 'gather_facts': False,
              'vars_files': [os.path.join(SCENARIO, 'vars', 'firewall.yml')], 'tasks': tasks}]
    try:
        rc, output = caracal_molecule.run_playbook(plays, timeout=timeout)
        with open(result_file) as handle:
            text = handle.read()
        assert text, 'the case playbook wrote no result (rc=%d):\n%s' % (rc, output[-4000:])
        return json.loads(text), output
    finally:
        os.unlink(result_file)


@pytest.fixture(scope='session')
def hosts():
    """All test hosts, their resolver pointed at the DNS stand-in inside the namespace.

    After converge the firewall only lets DNS through to 198.51.100.53, so a name missing
    from /etc/hosts now fails at once (NXDOMAIN) instead of timing out.
    """
    found = dict((name, get_host(name)) for name in host_names())
    for host in found.values():
        host.check_output("[ -e /root/fwtest/resolv.conf.orig ] || cp /etc/resolv.conf /root/fwtest/resolv.conf.orig; "
                          "printf 'nameserver 198.51.100.53\\noptions timeout:1 attempts:1\\n' > /etc/resolv.conf")
    return found


@pytest.fixture(scope='session')
def bad_input(hosts):
    """Bad input must fail before anything changes: states before and after each run."""
    before = dict((name, live_state(h)) for name, h in hosts.items())
    results, output = run_cases({
        'plan_errors': {
            'caracal_firewall_admin_sources': ['198.51.100.0/33', '192.0.2.1/24'],
            'caracal_firewall_upstream_hosts': ['missing.caracal.test'],
            'caracal_firewall_egress_extra': [{'name': 'Bad-Name', 'ports': [443],
                                               'destinations': ['198.51.100.10']}],
        },
        'empty_admin_sources': {'caracal_firewall_admin_sources': []},
        'invalid_rule': {'caracal_firewall_output_extra_rules': ['tcp dport 70000 accept']},
    })
    after = dict((name, live_state(h)) for name, h in hosts.items())
    return {'before': before, 'after': after, 'results': results, 'output': output}


@pytest.fixture(scope='session')
def unconfirmed(hosts):
    """Apply a changed ruleset without confirming it, watch it live, then wait for the rollback.

    Everything is observed here, for all hosts at once, so the hosts are back to their
    confirmed ruleset before any other test looks at them.
    """
    timeout = 15
    before = dict((name, (revision(h), h.check_output('nft -s list table %s' % TABLE))) for name, h in hosts.items())
    started = time.time()
    observe = ('printf \'{"status": %s, "probe": %s, "timer": "%s"}\' "$(caracal-firewall status)" '
               '"$(ip netns exec fwt python3 /root/fwtest/probe.py tcp:198.51.100.1:8443)" '
               '"$(systemctl is-active caracal-firewall-rollback.timer)"')
    results, output = run_cases({'unconfirmed': {
        'caracal_firewall_test_skip_confirm': True,
        'caracal_firewall_confirm_timeout': timeout,
        'caracal_firewall_ingress_extra': [{'name': 'probe', 'ports': [8443],
                                            'sources': ['198.51.100.0/24']}],
    }}, observe=observe)
    during, after = {}, {}
    for name in hosts:
        raw = results.get(name, {}).get('unconfirmed')
        during[name] = json.loads(raw) if raw and raw.startswith('{') else {'raw': raw}
    deadline = started + timeout + 60
    for name, h in hosts.items():
        while time.time() < deadline and revision(h) != before[name][0]:
            time.sleep(1)
        after[name] = {
            'revision': revision(h),
            'table': h.check_output('nft -s list table %s' % TABLE),
            'probe': probe(h, 'tcp:198.51.100.1:8443', netns=True),
            'marker': h.file('/run/caracal-firewall/rolled-back').exists,
            'persisted': persisted_revision(h),
            'elapsed': time.time() - started,
        }
    return {'before': before, 'during': during, 'after': after, 'results': results,
            'output': output, 'timeout': timeout}


def docker_restart(name, timeout=90):
    """Power-cycle a test host container (kill, start) and wait until systemd has booted."""
    for action in ('kill', 'start'):
        subprocess.run(['docker', action, name], check=True, timeout=timeout,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + timeout
    state = ''
    while time.time() < deadline:
        proc = subprocess.run(['docker', 'exec', name, 'systemctl', 'is-system-running'], check=False,
                              timeout=30, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        state = proc.stdout.decode().strip()
        if state in ('running', 'degraded'):
            return state
        time.sleep(1)
    raise AssertionError('%s did not finish booting (%s)' % (name, state))
