# -*- coding: utf-8 -*-
"""End to end: the collection's playbooks on one Debian 13 host per deployment backend.

Converge ran ``playbooks/deploy.yml`` (secrets, the host's backend, TLS, firewall, verify) and
molecule's idempotence step ran it again with no change. The tests below run the playbooks an
ops team runs, against every host of the group ``caracal`` at once, and check each host:

1. ``playbooks/verify.yml`` passes;
2. ``rotate.yml`` with the HMAC keys and the tokens named: every consumer restarts in the
   contract's roll order and holds the new values, every service is ready, the old admin token
   is refused and the new one accepted, verification passes, the evidence records it;
3. a scheduled run (nothing named) rotates only what is due by its policy, and a scheduled run
   with nothing due changes nothing (changed=0, the same files, no restart);
4. the timer of ``playbooks/controller.yml`` runs that scheduled rotation itself: a sandboxed
   service on the host, connecting back over SSH, from the built collection artifact;
5. a rotation whose consumer refuses the new value (the stand-in's test hook pins the gateway to
   the current fingerprint) fails loudly, rolls the secret back to its old fingerprint, and
   leaves every service ready and verification passing.

Every run's output is searched for every secret value of the hosts (read from the stores before
and after), with ``no_log`` left on. Observations go through the services' loopback publishes
and the stand-in's ``/standin/*`` endpoints, so they hold for any backend. pytest runs the tests
in file order; each starts from the state the previous one left.
"""

import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

from ansible_collections.caracal.hardened.plugins.module_utils._contract import get_profile, roll_order
from caracal_molecule import run_playbook

PROFILE = get_profile('2026.07')
SERVICES = PROFILE['services']
APPS = [s for s in PROFILE['start_order'] if SERVICES[s]['kind'] == 'app']
PUBLISH = dict((s, SERVICES[s]['publish']) for s in APPS)
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
SCENARIO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
PLAYBOOKS = os.path.join(ROOT, 'playbooks')
HOME = '/opt/caracal'
STORE = HOME + '/secrets/store'
ARCHIVE = HOME + '/secrets/archive'
EVIDENCE = HOME + '/evidence/secrets.jsonl'
# What a rotation may change on a host, and what a run with nothing due must leave alone.
STATE_PATHS = [HOME + '/secrets', HOME + '/evidence', HOME + '/control']

ROTATE = ['auditHmacKey', 'streamsHmacKey', 'gatewayStsHmacKey', 'caracalAdminToken', 'caracalCoordinatorToken']
DUE = 'caracalCoordinatorToken'
REFUSED = 'gatewayStsHmacKey'
PIN = 'STANDIN_ACCEPT_ONLY_GATEWAY_STS_HMAC_KEY_FINGERPRINT'
ADMIN_PINGS = {'api': PUBLISH['api'], 'gateway': PUBLISH['gateway']}


# ------------------------------------------------------------------ inventory

def _inventory():
    """(hosts of the group caracal, {host: hostvars}, hosts of caracal_controller) from molecule's inventory."""
    path = os.environ.get('MOLECULE_INVENTORY_FILE')
    if not path:
        return [], {}, []
    proc = subprocess.run(['ansible-inventory', '-i', path, '--list'], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, check=True)
    data = json.loads(proc.stdout.decode())
    return (sorted(data.get('caracal', {}).get('hosts', [])), data.get('_meta', {}).get('hostvars', {}),
            sorted(data.get('caracal_controller', {}).get('hosts', [])))


HOSTS, HOSTVARS, CONTROLLERS = _inventory()


def report_dir(name):
    return os.path.join(os.environ.get('MOLECULE_EPHEMERAL_DIRECTORY', ''), 'reports', name)


# ------------------------------------------------------------------ running things

def on_host(name, script, interpreter='bash', check=True):
    """Run ``script`` on the test host; the script travels on stdin, never on a command line."""
    argv = ['docker', 'exec', '-i', name, interpreter, '-s' if interpreter == 'bash' else '-']
    proc = subprocess.run(argv, input=script.encode(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=600, check=False)
    out, err = proc.stdout.decode('utf-8', 'replace'), proc.stderr.decode('utf-8', 'replace')
    if check:
        assert proc.returncode == 0, (name, proc.returncode, out[-2000:], err[-2000:])
    return out


def playbook(name, extra=None, verbosity=0, diff=False, limit=None):
    """Run playbooks/<name>.yml against the scenario's inventory; (rc, output, recap by host)."""
    for host in HOSTS:
        shutil.rmtree(report_dir(host), ignore_errors=True)
    rc, out = run_playbook([{'ansible.builtin.import_playbook': os.path.join(PLAYBOOKS, name + '.yml')}],
                           extra_vars=extra, verbosity=verbosity, diff=diff, limit=limit, timeout=1800)
    return rc, out, recap(out)


def flat(output):
    """The output with every run of whitespace made one space (YAML output wraps long lines)."""
    return ' '.join(output.split())


def recap(output):
    """{host: {ok, changed, unreachable, failed, ...}} from a play recap."""
    result = {}
    for line in output.splitlines():
        match = re.match(r'^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$', line.strip())
        if match:
            result[match.group(1)] = dict((k, int(v)) for k, v in re.findall(r'(\w+)=(\d+)', match.group(2)))
    return result


def report(name):
    with open(os.path.join(report_dir(name), 'caracal-verify.json')) as handle:
        return json.load(handle)


OBSERVE = r'''
import json, urllib.error, urllib.request
apps = json.loads(%r)
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
def get(url):
    try:
        with opener.open(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except Exception as exc:
        return None, str(exc).encode()
out = {'ready': {}, 'fingerprints': {}, 'started': {}}
for svc, addr in apps.items():
    out['ready'][svc] = get('http://%%s/ready' %% addr)[0]
    status, body = get('http://%%s/standin/fingerprints' %% addr)
    out['fingerprints'][svc] = json.loads(body) if status == 200 else None
    status, body = get('http://%%s/standin/info' %% addr)
    out['started'][svc] = json.loads(body)['started'] if status == 200 else None
with open(%r) as handle:
    out['state'] = dict((n, r['fingerprint']) for n, r in json.load(handle)['secrets'].items())
with open(%r) as handle:
    out['evidence'] = [json.loads(line) for line in handle if line.strip()]
print(json.dumps(out))
''' % (json.dumps(PUBLISH), ARCHIVE + '/state.json', EVIDENCE)


def observe(name):
    """What the host's services hold and say, through their loopback publishes (fingerprints only).

    Asked once, right after a playbook returned: the backend waits until each service it
    restarts is ready, so a service that is not ready here is a failure, not a race.
    """
    return json.loads(on_host(name, OBSERVE, interpreter='python3'))


def store_values(name):
    """{secret: value} of the host's store, kept in the test's memory only."""
    out = on_host(name, 'cd %s && for f in *; do printf "%%s=%%s\\n" "$f" "$(cat "$f")"; done' % STORE)
    return dict(line.split('=', 1) for line in out.splitlines() if '=' in line)


def all_values():
    """Every secret value of every host right now, with its host and name (for the leak search)."""
    return dict(((host, secret), value) for host in HOSTS for secret, value in store_values(host).items())


def every_value_ever(name):
    """{path: value} of the store and the archive: every value the host still holds or keeps for a rollback."""
    out = on_host(name, 'find %s %s -type f ! -name state.json -print0 | while IFS= read -r -d "" f; do '
                        'printf "%%s=%%s\\n" "$f" "$(cat "$f")"; done' % (STORE, ARCHIVE))
    return dict(line.split('=', 1) for line in out.splitlines() if '=' in line)


def leaked(output, *value_sets):
    """The (host, secret) pairs whose value shows in ``output``: names only, never a value."""
    found = set()
    for values in value_sets:
        found.update(key for key, value in values.items() if len(value) >= 16 and value in output)
    return sorted(found)


def state_digest(name):
    """Owner, mode and content hash of every file a rotation can touch."""
    script = ('for p in %s; do [ -e "$p" ] || continue; find "$p" -printf "%%p %%m %%u %%g %%y\\n" | sort; '
              'find "$p" -type f -print0 | sort -z | xargs -0 -r sha256sum; done' % ' '.join(STATE_PATHS))
    return on_host(name, script)


def consumers(secrets):
    return [s for s in APPS if any(n in SERVICES[s]['secrets'] for n in secrets)]


def new_records(before, after):
    return after['evidence'][len(before['evidence']):]


# ------------------------------------------------------------------ 1. deploy, verify passes

def test_the_inventory_has_a_host_per_backend():
    assert HOSTS, 'no host in the group caracal'
    for host in HOSTS:
        assert HOSTVARS[host].get('caracal_backend') in ('compose', 'quadlet'), host


@pytest.fixture(scope='module')
def verify_run():
    return playbook('verify')


@pytest.mark.parametrize('name', HOSTS)
def test_verify_playbook_passes(verify_run, name):
    rc, out, counts = verify_run
    assert rc == 0, out[-4000:]
    assert counts[name]['failed'] == 0 and counts[name]['changed'] == 0, counts
    result = report(name)
    assert result['passed'] is True, [c['id'] for c in result['checks'] if c['status'] == 'fail']
    engine = {'compose': 'docker', 'quadlet': 'podman'}[HOSTVARS[name]['caracal_backend']]
    assert result['engines'] == [engine]


@pytest.mark.parametrize('name', HOSTS)
def test_every_service_of_the_deployment_is_ready(name):
    seen = observe(name)
    assert seen['ready'] == dict((s, 200) for s in APPS), seen['ready']
    for svc in APPS:
        for secret, fp in seen['fingerprints'][svc].items():
            assert fp == seen['state'][secret.split('@')[0]], (svc, secret)


def test_an_unknown_backend_fails_before_anything_changes():
    before = dict((h, state_digest(h)) for h in HOSTS)
    rc, out, counts = playbook('deploy', extra={'caracal_backend': 'kubernetes'})
    assert rc != 0
    assert 'caracal_backend "kubernetes" is not a deployment backend of caracal.hardened' in flat(out)
    assert all(c['changed'] == 0 for c in counts.values()), counts
    assert 'TASK [caracal.hardened.secrets' not in out
    assert dict((h, state_digest(h)) for h in HOSTS) == before


def test_rotate_refuses_a_manual_restore():
    rc, out, counts = playbook('rotate', extra={'caracal_secrets_restore': ['auditHmacKey']})
    assert rc != 0
    assert 'caracal_secrets_restore must be empty: rotate.yml restores by itself' in flat(out)
    assert all(c['changed'] == 0 for c in counts.values()), counts


# ------------------------------------------------------------------ 2. rotation by name

@pytest.fixture(scope='module')
def named_rotation():
    before = dict((h, observe(h)) for h in HOSTS)
    values_before = all_values()
    rc, out, counts = playbook('rotate', extra={'caracal_secrets_rotate': ROTATE,
                                                'caracal_secrets_rotate_reason': 'forced'},
                               verbosity=2, diff=True)
    after = dict((h, observe(h)) for h in HOSTS)
    tokens = {}
    for host in HOSTS:
        script = ADMIN_TOKENS.replace('@OLD_FINGERPRINT@', before[host]['state']['caracalAdminToken'])
        tokens[host] = json.loads(on_host(host, script, interpreter='python3'))
    return {'rc': rc, 'out': out, 'recap': counts, 'before': before, 'after': after, 'tokens': tokens,
            'values': [values_before, all_values()],
            'reports': dict((h, report(h)) for h in HOSTS if rc == 0)}


# Reads the archived (old) and current admin token on the host and asks api and gateway with
# each; prints only the status codes.
ADMIN_TOKENS = r'''
import json, os, urllib.error, urllib.request
old_fp = '@OLD_FINGERPRINT@'
archive = ''' + repr(ARCHIVE) + r'''
entry = [e for e in json.load(open(archive + '/state.json'))['archive']['caracalAdminToken'] if e['fingerprint'] == old_fp][-1]
tokens = {'old': open(os.path.join(archive, 'caracalAdminToken', entry['file'])).read().strip(),
          'new': open(''' + repr(STORE + '/caracalAdminToken') + r''').read().strip()}
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
out = {}
for svc, addr in json.loads(''' + repr(json.dumps(ADMIN_PINGS)) + r''').items():
    for label, token in tokens.items():
        request = urllib.request.Request('http://%s/admin/ping' % addr, headers={'Authorization': 'Bearer ' + token})
        try:
            out['%s.%s' % (svc, label)] = opener.open(request, timeout=5).status
        except urllib.error.HTTPError as exc:
            out['%s.%s' % (svc, label)] = exc.code
print(json.dumps(out))
'''


def test_named_rotation_succeeds_and_verifies(named_rotation):
    assert named_rotation['rc'] == 0, named_rotation['out'][-6000:]
    for host in HOSTS:
        assert named_rotation['recap'][host]['failed'] == 0
        assert named_rotation['recap'][host]['changed'] > 0
        assert named_rotation['reports'][host]['passed'] is True
        assert re.search(r'%s: rotated: .*auditHmacKey \(new fingerprint [0-9a-f]{16}\)' % re.escape(host),
                         flat(named_rotation['out']))


@pytest.mark.parametrize('name', HOSTS)
def test_named_rotation_replaces_exactly_the_named_secrets(named_rotation, name):
    before, after = named_rotation['before'][name], named_rotation['after'][name]
    changed = sorted(n for n in after['state'] if after['state'][n] != before['state'][n])
    assert changed == sorted(ROTATE)
    records = new_records(before, after)
    assert sorted(r['secret'] for r in records) == sorted(ROTATE)
    for record in records:
        assert (record['action'], record['reason'], record['actor']) == ('rotated', 'forced', 'molecule-e2e')
        assert record['old_fingerprint'] == before['state'][record['secret']]
        assert record['new_fingerprint'] == after['state'][record['secret']]


@pytest.mark.parametrize('name', HOSTS)
def test_every_consumer_holds_the_new_values_and_is_ready(named_rotation, name):
    after = named_rotation['after'][name]
    assert after['ready'] == dict((s, 200) for s in APPS)
    for svc in consumers(ROTATE):
        for secret in ROTATE:
            if secret in SERVICES[svc]['secrets']:
                assert after['fingerprints'][svc][secret] == after['state'][secret], (svc, secret)


@pytest.mark.parametrize('name', HOSTS)
def test_consumers_restart_in_the_contracts_roll_order(named_rotation, name):
    before, after = named_rotation['before'][name], named_rotation['after'][name]
    order = [s for s in roll_order(PROFILE, ROTATE) if s in APPS]
    assert order and set(order) == set(consumers(ROTATE))
    for svc in order:
        assert after['started'][svc] > before['started'][svc], svc
    starts = [after['started'][s] for s in order]
    assert starts == sorted(starts), list(zip(order, starts))


@pytest.mark.parametrize('name', HOSTS)
def test_the_old_admin_token_is_refused(named_rotation, name):
    assert named_rotation['tokens'][name] == {'api.old': 401, 'api.new': 200, 'gateway.old': 401, 'gateway.new': 200}


def test_no_secret_value_in_the_rotation_output(named_rotation):
    assert leaked(named_rotation['out'], *named_rotation['values']) == []
    assert len(named_rotation['values'][0]) >= 13 * len(HOSTS)


# ------------------------------------------------------------------ 3. scheduled runs

# Makes one secret look older than its 90-day policy: its creation time in the archive's state.
BACKDATE = r'''
import json, os
path = ''' + repr(ARCHIVE + '/state.json') + r'''
state = json.load(open(path))
state['secrets'][%r]['created'] = '2000-01-01T00:00:00Z'
tmp = path + '.e2e'
with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 'w') as handle:
    json.dump(state, handle, indent=2, sort_keys=True)
    handle.write('\n')
os.replace(tmp, path)
'''


@pytest.fixture(scope='module')
def due_run(named_rotation):
    for host in HOSTS:
        on_host(host, BACKDATE % DUE, interpreter='python3')
    before = dict((h, observe(h)) for h in HOSTS)
    values_before = all_values()
    rc, out, counts = playbook('rotate')
    return {'rc': rc, 'out': out, 'recap': counts, 'before': before,
            'after': dict((h, observe(h)) for h in HOSTS), 'values': [values_before, all_values()],
            'reports': dict((h, report(h)) for h in HOSTS if rc == 0)}


@pytest.mark.parametrize('name', HOSTS)
def test_a_scheduled_run_rotates_only_what_is_due(due_run, name):
    assert due_run['rc'] == 0, due_run['out'][-6000:]
    before, after = due_run['before'][name], due_run['after'][name]
    assert sorted(n for n in after['state'] if after['state'][n] != before['state'][n]) == [DUE]
    records = new_records(before, after)
    assert [(r['secret'], r['action'], r['reason']) for r in records] == [(DUE, 'rotated', 'age')]
    restarted = sorted(s for s in APPS if after['started'][s] != before['started'][s])
    assert restarted == sorted(consumers([DUE]))
    assert after['ready'] == dict((s, 200) for s in APPS)
    for svc in consumers([DUE]):
        assert after['fingerprints'][svc][DUE] == after['state'][DUE]
    assert due_run['reports'][name]['passed'] is True
    assert leaked(due_run['out'], *due_run['values']) == []


@pytest.fixture(scope='module')
def idle_run(due_run):
    before = dict((h, (observe(h), state_digest(h))) for h in HOSTS)
    rc, out, counts = playbook('rotate')
    after = dict((h, (observe(h), state_digest(h))) for h in HOSTS)
    return {'rc': rc, 'out': out, 'recap': counts, 'before': before, 'after': after,
            'reports': dict((h, report(h)) for h in HOSTS if rc == 0)}


@pytest.mark.parametrize('name', HOSTS)
def test_a_scheduled_run_with_nothing_due_changes_nothing(idle_run, name):
    assert idle_run['rc'] == 0, idle_run['out'][-6000:]
    assert idle_run['recap'][name]['changed'] == 0, idle_run['recap']
    assert idle_run['recap'][name]['failed'] == 0
    (seen_before, files_before), (seen_after, files_after) = idle_run['before'][name], idle_run['after'][name]
    assert files_after == files_before
    assert seen_after['started'] == seen_before['started']
    assert seen_after['evidence'] == seen_before['evidence']
    assert '%s: nothing due; verification passed' % name in flat(idle_run['out'])
    assert idle_run['reports'][name]['passed'] is True


# ------------------------------------------------------------------ 4. the controller's timer

VAULT_MARKER = 'e2e_vault_marker'

# The rotation user's SSH key, authorised for root on this host over loopback.
SSH_SETUP = r'''
set -eu
# systemd hands LoadCredential= files over through a mount under /run/credentials. On a host
# systemd makes its mounts shared at boot; in this container it does not, and the test host's
# /run (a tmpfs of the container engine) is private, so the mount would stay invisible to the
# service. Make it shared, as on a real host.
grep -q ' /run .*shared:' /proc/self/mountinfo || mount --make-rshared /run
user=caracal-rotate
home=$(getent passwd "$user" | cut -d: -f6)
install -d -m 0700 -o "$user" -g "$user" "$home/.ssh"
[ -f "$home/.ssh/id_ed25519" ] || runuser -u "$user" -- ssh-keygen -q -t ed25519 -N '' -C "$user@e2e" -f "$home/.ssh/id_ed25519"
install -d -m 0700 /root/.ssh
grep -qxF "$(cat "$home/.ssh/id_ed25519.pub")" /root/.ssh/authorized_keys 2>/dev/null \
    || cat "$home/.ssh/id_ed25519.pub" >> /root/.ssh/authorized_keys
chmod 0600 /root/.ssh/authorized_keys
ssh-keyscan -t ed25519 127.0.0.1 2>/dev/null > "$home/.ssh/known_hosts"
chown "$user:$user" "$home/.ssh/known_hosts"
'''


def put_file(name, path, content, mode='0640', owner='root:caracal-rotate'):
    """Write a file on the host through stdin."""
    proc = subprocess.run(['docker', 'exec', '-i', name, 'sh', '-c',
                           'umask 077; mkdir -p "$(dirname "$1")"; cat > "$1"; chown %s "$1"; chmod %s "$1"'
                           % (owner, mode), 'sh', path],
                          input=content.encode(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    assert proc.returncode == 0, proc.stdout


def controller_inventory(name, vault_text):
    """The inventory the timer's run uses: this host over SSH, with the scenario's variables."""
    inv = '/etc/caracal-rotate/inventory'
    hosts = {'all': {'children': {'caracal': {'hosts': {name: {
        'ansible_host': '127.0.0.1', 'ansible_user': 'root', 'ansible_python_interpreter': '/usr/bin/python3'}}}}}}
    put_file(name, inv + '/hosts.yml', yaml.safe_dump(hosts))
    for sub in ('group_vars/caracal.yml', 'host_vars/%s.yml' % name):
        with open(os.path.join(SCENARIO, 'inventory', sub)) as handle:
            put_file(name, '%s/%s' % (inv, sub), handle.read())
    put_file(name, inv + '/group_vars/caracal_vault.yml', vault_text)
    on_host(name, 'chgrp -R caracal-rotate %s && find %s -type d -exec chmod 0750 {} +' % (inv, inv))


@pytest.fixture(scope='module')
def timer_run(idle_run, tmp_path_factory):
    """Install the collection artifact and the timer on each controller host, then run the service once."""
    if not CONTROLLERS:
        return None
    work = tmp_path_factory.mktemp('controller')
    subprocess.run(['ansible-galaxy', 'collection', 'build', '--force', '--output-path', str(work), ROOT],
                   cwd=ROOT, check=True, stdout=subprocess.PIPE)
    tarball = [p for p in os.listdir(str(work)) if p.endswith('.tar.gz')][0]
    # A vault-encrypted variable the run must decrypt with the password systemd hands it.
    password = os.urandom(24).hex()
    marker = os.urandom(24).hex()
    secret_vars = os.path.join(str(work), 'vault.yml')
    with open(secret_vars, 'w') as handle:
        yaml.safe_dump({VAULT_MARKER: marker}, handle)
    password_file = os.path.join(str(work), 'password')
    with open(password_file, 'w') as handle:
        handle.write(password)
    subprocess.run(['ansible-vault', 'encrypt', '--vault-password-file', password_file, secret_vars], check=True,
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with open(secret_vars) as handle:
        vault_text = handle.read()
    result = {'hosts': {}, 'marker': marker, 'password': password}
    for name in CONTROLLERS:
        # docker cp cannot write into the host's /tmp (a tmpfs): the artifact travels on stdin.
        with open(os.path.join(str(work), tarball), 'rb') as handle:
            subprocess.run(['docker', 'exec', '-i', name, 'sh', '-c', 'cat > /root/%s' % tarball], stdin=handle,
                           check=True)
        on_host(name, 'ansible-galaxy collection install --force --no-deps -p /usr/share/ansible/collections '
                      '/root/%s >/dev/null && rm -f /root/%s' % (tarball, tarball))
    extra = {'caracal_controller_vault_password': password}
    first = run_playbook([{'ansible.builtin.import_playbook': os.path.join(PLAYBOOKS, 'controller.yml')}],
                         extra_vars=extra, limit=','.join(CONTROLLERS))
    second = run_playbook([{'ansible.builtin.import_playbook': os.path.join(PLAYBOOKS, 'controller.yml')}],
                          extra_vars=extra, limit=','.join(CONTROLLERS))
    result['controller'] = (first, second)
    for name in CONTROLLERS:
        on_host(name, SSH_SETUP)
        controller_inventory(name, vault_text)
        before = (observe(name), state_digest(name))
        run = on_host(name, 'rc=0; systemctl start caracal-rotate.service || rc=$?; echo "rc=$rc"; '
                            'id=$(systemctl show -p InvocationID --value caracal-rotate.service); '
                            'journalctl --no-pager -o cat _SYSTEMD_INVOCATION_ID="$id"', check=False)
        result['hosts'][name] = {
            'run': run, 'before': before, 'after': (observe(name), state_digest(name)),
            'timer': on_host(name, 'systemctl is-enabled caracal-rotate.timer; systemctl is-active caracal-rotate.timer; '
                                   'systemctl show -p NextElapseUSecRealtime --value caracal-rotate.timer'),
            'security': on_host(name, 'systemd-analyze security --no-pager caracal-rotate.service | tail -n 1'),
            'files': on_host(name, 'stat -c "%n %a %U %G" /etc/caracal-rotate /etc/caracal-rotate/vault-password '
                                   '/etc/caracal-rotate/rotate-vars.yml /var/lib/caracal-rotate'),
        }
    return result


def test_the_controller_playbook_is_idempotent(timer_run):
    if timer_run is None:
        pytest.skip('no host in the group caracal_controller')
    (rc1, out1), (rc2, out2) = timer_run['controller']
    assert rc1 == 0, out1[-4000:]
    assert rc2 == 0, out2[-4000:]
    assert all(c['changed'] == 0 for c in recap(out2).values()), recap(out2)
    assert timer_run['password'] not in out1 + out2


@pytest.mark.parametrize('name', CONTROLLERS)
def test_the_timer_is_scheduled_and_the_service_is_sandboxed(timer_run, name):
    host = timer_run['hosts'][name]
    enabled, active, next_elapse = host['timer'].splitlines()[:3]
    assert (enabled, active) == ('enabled', 'active')
    assert re.search(r'\d{2}:\d{2}:\d{2}', next_elapse), next_elapse
    level = re.search(r'Overall exposure level for caracal-rotate.service: ([0-9.]+) (\w+)', host['security'])
    assert level and level.group(2) in ('SAFE', 'OK'), host['security']
    assert host['files'].splitlines() == [
        '/etc/caracal-rotate 750 root caracal-rotate',
        '/etc/caracal-rotate/vault-password 600 root root',
        '/etc/caracal-rotate/rotate-vars.yml 640 root caracal-rotate',
        '/var/lib/caracal-rotate 700 caracal-rotate caracal-rotate',
    ]


@pytest.mark.parametrize('name', CONTROLLERS)
def test_the_timers_run_with_nothing_due_changes_nothing(timer_run, name):
    host = timer_run['hosts'][name]
    run = host['run']
    assert 'rc=0' in run.splitlines()[0], run[-6000:]
    counts = recap(run)
    assert counts[name]['changed'] == 0 and counts[name]['failed'] == 0, counts
    assert '%s: nothing due; verification passed (/var/lib/caracal-rotate/reports/%s/caracal-verify.md)' % (
        name, name) in flat(run)
    (seen_before, files_before), (seen_after, files_after) = host['before'], host['after']
    assert files_after == files_before
    assert seen_after['started'] == seen_before['started']
    for needle in (timer_run['marker'], timer_run['password']):
        assert needle not in run


# ------------------------------------------------------------------ 5. a consumer refuses the new value

def pinned(fingerprints):
    """Extra variables that pin each host's gateway to a fingerprint (the stand-in's test hook)."""
    env = "{{ {'gateway': {'%s': e2e_pins[inventory_hostname]}} }}" % PIN
    return {'e2e_pins': fingerprints, 'caracal_compose_extra_env': env, 'caracal_quadlet_extra_env': env}


@pytest.fixture(scope='module')
def refusal():
    old = dict((h, observe(h)['state'][REFUSED]) for h in HOSTS)
    # The gateway is recreated with the pin; it holds the pinned value, so it starts.
    pin_rc, pin_out, pin_counts = playbook('rotate', extra=pinned(old))
    before = dict((h, observe(h)) for h in HOSTS)
    values_before = all_values()
    extra = dict(pinned(old), caracal_secrets_rotate=[REFUSED])
    rc, out, counts = playbook('rotate', extra=extra, verbosity=1)
    return {'pin': (pin_rc, pin_out, pin_counts), 'old': old, 'rc': rc, 'out': out, 'recap': counts,
            'before': before, 'after': dict((h, observe(h)) for h in HOSTS),
            'values': [values_before, all_values()], 'reports': dict((h, report(h)) for h in HOSTS)}


def test_the_pin_alone_keeps_the_stack_passing(refusal):
    rc, out, counts = refusal['pin']
    assert rc == 0, out[-6000:]
    for host in HOSTS:
        assert counts[host]['failed'] == 0 and counts[host]['changed'] > 0


@pytest.mark.parametrize('name', HOSTS)
def test_a_refused_value_fails_the_run_loudly(refusal, name):
    assert refusal['rc'] != 0
    assert refusal['recap'][name]['failed'] == 1
    out = flat(refusal['out'])
    assert 'ROTATION FAILED on %s: ROLLED BACK to the previous values.' % name in out
    new = [r['new_fingerprint'] for r in new_records(refusal['before'][name], refusal['after'][name])
           if r['action'] == 'rotated'][0]
    # the consumer's own reason, with fingerprints only
    assert 'GATEWAY_STS_HMAC_KEY has fingerprint %s; this stand-in accepts only %s' % (new, refusal['old'][name]) in out
    assert 'Restored from the archive: %s (fingerprint %s)' % (REFUSED, refusal['old'][name]) in out
    assert 'Verification after the rollback: PASSED' in out


@pytest.mark.parametrize('name', HOSTS)
def test_a_refused_value_is_rolled_back_to_the_old_fingerprint(refusal, name):
    old, after = refusal['old'][name], refusal['after'][name]
    assert after['state'][REFUSED] == old
    for svc in consumers([REFUSED]):
        assert after['fingerprints'][svc][REFUSED] == old, svc
    records = [(r['secret'], r['action'], r['reason'], r['old_fingerprint'], r['new_fingerprint'])
               for r in new_records(refusal['before'][name], after)]
    assert len(records) == 2
    new = records[0][4]
    assert records == [(REFUSED, 'rotated', 'forced', old, new), (REFUSED, 'restored', 'rollback', new, old)]
    assert new != old


@pytest.mark.parametrize('name', HOSTS)
def test_the_stack_is_healthy_after_the_rollback(refusal, name):
    after = refusal['after'][name]
    assert after['ready'] == dict((s, 200) for s in APPS)
    result = refusal['reports'][name]
    assert result['passed'] is True, [c['id'] for c in result['checks'] if c['status'] == 'fail']


def test_no_secret_value_in_the_refused_rotation_output(refusal):
    assert leaked(refusal['out'], *refusal['values']) == []
    assert leaked(refusal['pin'][1], *refusal['values']) == []


# ------------------------------------------------------------------ everything that ran on the hosts

@pytest.mark.parametrize('name', HOSTS)
def test_no_secret_value_in_the_hosts_journal(name):
    """Deploy, every rotation, the rollback, the timer's run: modules log their invocation to the
    journal, with no_log parameters masked; none of the host's values may be there."""
    values = every_value_ever(name)
    assert len(values) >= 13
    journal = on_host(name, 'journalctl --no-pager -o cat')
    assert len(journal.splitlines()) > 100
    assert sorted(path for path, value in values.items() if len(value) >= 16 and value in journal) == []
