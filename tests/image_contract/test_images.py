# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Contract tests of the local Caracal images (tests/images): run by hand or by the image-contract phase.

The stand-ins replace Caracal's images, which cannot be pulled on the test machines.  If a
stand-in accepted what Caracal refuses, every deployment test above it would be hollow, so
these tests hold the images to Caracal's startup contract:

* the whole 2026.07 topology (postgres, redis, dbMigrate, sts, api, gateway, audit,
  coordinator, web) becomes ready with a valid secret set, run with the hardened flags;
* every published-mode refusal (short, non-hex, empty, missing or weak material, bad
  mode, fail-open switches) stops the service with the right one-line reason;
* no secret value shows in ``docker inspect``, process environments, argv or logs;
* application processes run as 65532 with no capability.

Run: /root/.cache/caracal-venv-probe/bin/python -m pytest tests/image_contract -q
(needs root and a Docker engine; builds the images once per session through
tests/images/build.sh, cached by content hash).
"""

import calendar
import concurrent.futures
import hashlib
import importlib.util
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / 'tests' / 'images' / 'build.sh'


def _load_contract():
    spec = importlib.util.spec_from_file_location(
        'caracal_contract_for_tests', REPO / 'plugins' / 'module_utils' / '_contract.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CONTRACT = _load_contract()
PROFILE = CONTRACT.get_profile('2026.07')
SERVICES = PROFILE['services']
SECRETS = PROFILE['secrets']
APPS = [s for s in PROFILE['start_order'] if SERVICES[s]['kind'] == 'app']
UID = PROFILE['uid']
GID = PROFILE['gid']
MOUNT = PROFILE['secrets_mount']
READY_CAP = 60.0
FP_DOMAIN = b'caracal.hardened/fingerprint/v1\0'
IMAGE_OF = {'postgres': 'caracal-postgres', 'redis': 'caracal-redis', 'dbMigrate': 'caracal-postgres'}
IMAGE_OF.update({s: SERVICES[s]['image'] for s in APPS})
PLACEHOLDERS = {
    'issuer_url': 'https://sts.caracal.test',
    'upstream_allowlist': 'api.upstream.test',
    'web_url': 'https://console.caracal.test',
}
REFUSAL_LINE = re.compile(r'caracal-standin: refusing to start: (?P<service>[^:]+): (?P<reason>.+)')

pytestmark = [
    pytest.mark.skipif(shutil.which('docker') is None, reason='the docker CLI is not installed'),
    pytest.mark.skipif(os.geteuid() != 0, reason='secret files owned root:65532 need root'),
]


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def docker(*args, check=True, timeout=120, input=None):
    result = subprocess.run(['docker'] + [str(a) for a in args], input=input, capture_output=True,
                            text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError('docker %s failed (%d): %s%s' % (
            ' '.join(str(a) for a in args[:3]), result.returncode, result.stdout[-2000:], result.stderr[-2000:]))
    return result


def fingerprint(value):
    return hashlib.sha256(FP_DOMAIN + value.encode('utf-8')).hexdigest()[:16]


def valid_secrets():
    """A full, valid secret set generated from the contract's sizes and templates."""
    values = {}
    for name, spec in SECRETS.items():
        if spec['format'] == 'hex':
            values[name] = secrets.token_hex(spec['bytes'])
    for name, spec in SECRETS.items():
        if spec['format'] == 'derived':
            values[name] = spec['template'].format(**values)
    return values


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(url, headers=None, timeout=10):
    """(status, headers, body) without raising on HTTP errors."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with _OPENER.open(request, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def resp_call(host, port, *commands, timeout=5):
    """Send RESP2 commands on one connection; return the raw replies (errors as 'ERR:...')."""
    out = []
    with socket.create_connection((host, port), timeout=timeout) as sock:
        handle = sock.makefile('rb')
        for args in commands:
            payload = b'*%d\r\n' % len(args)
            for arg in args:
                raw = arg.encode() if isinstance(arg, str) else arg
                payload += b'$%d\r\n%s\r\n' % (len(raw), raw)
            sock.sendall(payload)
            out.append(_resp_read(handle))
    return out


def _resp_read(handle):
    line = handle.readline().rstrip(b'\r\n')
    kind, rest = line[:1], line[1:].decode()
    if kind == b'+':
        return rest
    if kind == b'-':
        return 'ERR:' + rest
    if kind == b':':
        return int(rest)
    if kind == b'$':
        if int(rest) < 0:
            return None
        data = handle.read(int(rest) + 2)[:-2]
        return data.decode()
    if kind == b'*':
        return [_resp_read(handle) for dummy in range(int(rest))] if int(rest) >= 0 else None
    raise AssertionError('bad RESP reply %r' % line)


class Env(object):
    """Everything one test session creates, removed again at the end."""

    def __init__(self, images):
        self.images = images
        self.prefix = 'cht-%s' % uuid.uuid4().hex[:8]
        self.containers = []
        self.volumes = []
        self.networks = []
        self.dirs = []
        self.redis_uid = int(docker('image', 'inspect', '-f',
                                    '{{index .Config.Labels "org.caracal.test.redis.uid"}}',
                                    self.image('redis')).stdout.strip())

    def image(self, service):
        return self.images[IMAGE_OF[service]]

    def name(self, what):
        return '%s-%s' % (self.prefix, what)

    def network(self, what):
        name = self.name(what)
        docker('network', 'create', '--label', 'org.caracal.test=1', name)
        self.networks.append(name)
        return name

    def volume(self, what):
        name = self.name(what)
        docker('volume', 'create', '--label', 'org.caracal.test=1', name)
        self.volumes.append(name)
        return name

    def secret_dir(self, values, modes=None):
        """Files 0440 root:65532 (or ``modes[name]`` = (mode, uid, gid)) in a private dir."""
        path = tempfile.mkdtemp(prefix=self.prefix + '-secrets-')
        self.dirs.append(path)
        os.chown(path, 0, GID)
        os.chmod(path, 0o750)
        for name, value in values.items():
            file_path = os.path.join(path, name)
            with open(file_path, 'w') as handle:
                handle.write(value + ('\n' if value and not value.endswith('\n') else ''))
            mode, uid, gid = (modes or {}).get(name, (0o440, 0, GID))
            os.chown(file_path, uid, gid)
            os.chmod(file_path, mode)
        return path

    def run_args(self, service, secret_dir, name=None, network=None, env=None, drop_env=(),
                 volumes=None, command=None, skip_secrets=(), extra=()):
        """``docker run`` arguments with the hardened flags for ``service``."""
        svc = SERVICES[service]
        args = ['--name', name or self.name(service), '--label', 'org.caracal.test=1',
                '--read-only', '--tmpfs', '/tmp:size=16m,mode=1777',
                '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges', '--init',
                '--memory', '512m', '--pids-limit', '256',
                '--log-driver', 'json-file', '--log-opt', 'max-size=1m', '--log-opt', 'max-file=2']
        args += ['--network', network or 'none']
        if network and service in ('postgres', 'redis'):
            args += ['--network-alias', service]  # the host names the URL templates use
        kind = svc['kind']
        if kind in ('app', 'job'):
            args += ['--user', '%d:%d' % (UID, GID)]
        if service == 'postgres':
            for cap in svc['runtime']['cap_add']:
                args += ['--cap-add', cap]
            args += ['--group-add', str(GID)]
        if service == 'redis':
            rundir = os.path.dirname(svc['ready_marker'])
            args += ['--user', svc['runtime']['user'], '--group-add', str(GID),
                     '--tmpfs', '%s:uid=%d,gid=%d,mode=0700,size=1m' % (rundir, self.redis_uid, self.redis_uid)]
        for sname, variables in svc['secrets'].items():
            if sname in skip_secrets:
                continue
            target = '%s/%s' % (MOUNT, sname)
            args += ['-v', '%s:%s:ro' % (os.path.join(secret_dir, sname), target)]
            for var in variables:
                if var + '_FILE' not in drop_env:
                    args += ['-e', '%s_FILE=%s' % (var, target)]
        environment = {'CARACAL_MODE': 'stable'} if kind == 'app' else {}
        for key, value in (svc.get('env') or {}).items():
            environment[key] = value.format(**PLACEHOLDERS)
        environment = {k: v for k, v in environment.items() if k not in drop_env}
        environment.update(env or {})  # explicit overrides always apply
        for key, value in environment.items():
            args += ['-e', '%s=%s' % (key, value)]
        for vol, path in (volumes or {}).items():
            args += ['-v', '%s:%s' % (vol, path)]
        args += list(extra)
        args.append(self.image(service))
        if command is not None:
            args += command
        elif svc.get('command'):
            args += svc['command']
        return args

    def start(self, service, secret_dir, **kwargs):
        args = self.run_args(service, secret_dir, **kwargs)
        name = args[args.index('--name') + 1]
        self.containers.append(name)
        docker('run', '-d', *args)
        return name

    def run_once(self, service, secret_dir, timeout=60, **kwargs):
        """Run to completion (``docker run --rm``); returns the CompletedProcess."""
        args = self.run_args(service, secret_dir, **kwargs)
        name = args[args.index('--name') + 1]
        self.containers.append(name)
        try:
            return docker('run', '--rm', *args, check=False, timeout=timeout)
        except subprocess.TimeoutExpired:
            docker('rm', '-f', name, check=False)
            return subprocess.CompletedProcess(args, 'timeout', '', 'did not exit within %ds' % timeout)

    def cleanup(self):
        names = set(self.containers)
        listed = docker('ps', '-aq', '--filter', 'name=^%s-' % self.prefix, check=False).stdout.split()
        for chunk in (sorted(names) + listed,):
            if chunk:
                docker('rm', '-f', '-v', *chunk, check=False)
        for vol in self.volumes:
            docker('volume', 'rm', '-f', vol, check=False)
        for net in self.networks:
            docker('network', 'rm', net, check=False)
        for path in self.dirs:
            shutil.rmtree(path, ignore_errors=True)


def ip_of(container, network):
    out = docker('inspect', '-f', '{{(index .NetworkSettings.Networks "%s").IPAddress}}' % network, container)
    return out.stdout.strip()


def running(container):
    out = docker('inspect', '-f', '{{.State.Running}}', container, check=False)
    return out.stdout.strip() == 'true'


def wait_ready(container, cap=READY_CAP):
    """Poll the image's /healthcheck (bounded); return (ok, last diagnostic)."""
    deadline = time.monotonic() + cap
    last = ''
    while time.monotonic() < deadline:
        if not running(container):
            logs = docker('logs', '--tail', '30', container, check=False)
            return False, 'exited: %s %s' % (logs.stdout[-1500:], logs.stderr[-1500:])
        result = docker('exec', container, '/healthcheck', check=False, timeout=30)
        if result.returncode == 0:
            return True, ''
        last = (result.stdout + result.stderr).strip()
        time.sleep(0.5)
    return False, 'not ready after %ds: %s' % (cap, last)


def wait_all(containers, cap=READY_CAP):
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        results = dict(zip(containers, pool.map(lambda c: wait_ready(c, cap), containers)))
    failed = {c: why for c, (ok, why) in results.items() if not ok}
    assert not failed, 'not ready: %s' % json.dumps(failed, indent=1)


def proc_table(container, user=None):
    """[(pid, name, {field: value})] of every process in the container (the probe excluded)."""
    script = ('for d in /proc/[0-9]*; do p=${d#/proc/}; [ "$p" = "$$" ] && continue; '
              '[ -r $d/status ] || continue; echo "@@ $p"; '
              'grep -E "^(Name|Uid|Gid|CapEff|CapPrm|NoNewPrivs|Groups):" $d/status; done')
    args = ['exec'] + (['-u', user] if user else []) + [container, '/bin/sh', '-c', script]
    out = docker(*args).stdout
    table = []
    for block in out.split('@@ ')[1:]:
        lines = block.strip().splitlines()
        fields = dict(line.split(':', 1) for line in lines[1:])
        fields = {k: v.strip() for k, v in fields.items()}
        if not fields:
            continue
        table.append((int(lines[0]), fields.get('Name', ''), fields))
    return table


# ---------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------

@pytest.fixture(scope='session')
def images():
    if docker('version', '--format', '{{.Server.Version}}', check=False).returncode != 0:
        pytest.fail('no Docker engine answers: start dockerd before running the image contract tests')
    result = subprocess.run([str(BUILD), '--list'], capture_output=True, text=True, timeout=1800,
                            check=False)
    if result.returncode != 0:
        pytest.fail('tests/images/build.sh failed:\n%s\n%s' % (result.stdout[-3000:], result.stderr[-3000:]))
    refs = {}
    for line in result.stdout.splitlines():
        key, dummy, ref = line.partition('=')
        name, dummy, tag = key.partition(':')
        if tag == PROFILE['image_tag_format'].format(release=PROFILE['default_release']):
            refs[name] = ref
    assert set(refs) >= set(IMAGE_OF.values()), refs
    return refs


@pytest.fixture(scope='session')
def env(images):
    session = Env(images)
    yield session
    session.cleanup()


class Stack(object):
    pass


@pytest.fixture(scope='session')
def stack(env):
    """The whole topology, started the way the deployment starts it."""
    st = Stack()
    st.values = valid_secrets()
    st.dir = env.secret_dir(st.values)
    st.net = env.network('net')
    st.containers = {}
    vols = {'postgres': env.volume('pgdata'), 'redis': env.volume('redisdata')}
    replay = PROFILE['replay_state']
    replay_vols = {svc: env.volume('%s-replay' % svc) for svc in replay['services']}

    st.containers['postgres'] = env.start('postgres', st.dir, network=st.net,
                                          volumes={vols['postgres']: SERVICES['postgres']['volumes']['postgres-data']})
    st.containers['redis'] = env.start('redis', st.dir, network=st.net,
                                       volumes={vols['redis']: SERVICES['redis']['volumes']['redis-data']})
    # The one-shot init of the replay state: 0750, owned by 65532:65532.
    mount_root = os.path.dirname(replay['path'])
    for svc, vol in replay_vols.items():
        docker('run', '--rm', '--name', env.name('init-%s' % svc), '--read-only', '--user', '0:0',
               '--cap-drop', 'ALL', '--cap-add', 'CHOWN', '--cap-add', 'FOWNER',
               '--security-opt', 'no-new-privileges',
               '--network', 'none', '-v', '%s:%s' % (vol, mount_root), '--entrypoint', '/usr/bin/install',
               env.image('sts'), '-d', '-o', str(UID), '-g', str(GID), '-m', replay['mode'], replay['path'])
    wait_all([st.containers['postgres'], st.containers['redis']])

    st.migrate = env.run_once('dbMigrate', st.dir, name=env.name('migrate'), network=st.net)
    assert st.migrate.returncode == 0, st.migrate.stdout + st.migrate.stderr

    for svc in APPS:
        vol = None
        if svc in replay_vols:
            vol = {replay_vols[svc]: mount_root}
        st.containers[svc] = env.start(svc, st.dir, network=st.net, volumes=vol)
    st.ready_error = None
    try:
        wait_all([st.containers[s] for s in APPS])
    except AssertionError as exc:
        st.ready_error = str(exc)
    st.ip = {svc: ip_of(c, st.net) for svc, c in st.containers.items()}
    return st


def url(stack, service, path):
    return 'http://%s:%d%s' % (stack.ip[service], SERVICES[service]['port'], path)


def bearer(value):
    return {'Authorization': 'Bearer %s' % value}


# ---------------------------------------------------------------------------
# the whole topology with a valid secret set
# ---------------------------------------------------------------------------

def test_stack_becomes_ready(stack):
    assert stack.ready_error is None, stack.ready_error
    for svc in APPS:
        status, dummy, body = http(url(stack, svc, '/ready'))
        assert (status, json.loads(body)) == (200, {'status': 'ready'}), (svc, status, body)
        status = http(url(stack, svc, '/health'))[0]
        assert status == 200, svc
    migrate_out = stack.migrate.stdout + stack.migrate.stderr
    assert 'migrations applied' in migrate_out


def test_migrate_is_idempotent(env, stack):
    again = env.run_once('dbMigrate', stack.dir, name=env.name('migrate-again'), network=stack.net)
    assert again.returncode == 0, again.stdout + again.stderr


@pytest.mark.parametrize('service', [s for s in APPS if 'metricsBearer' in SERVICES[s]['secrets']])
def test_metrics_needs_the_bearer(stack, service):
    assert http(url(stack, service, '/metrics'))[0] == 401
    assert http(url(stack, service, '/metrics'), bearer(secrets.token_hex(32)))[0] == 401
    status, dummy, body = http(url(stack, service, '/metrics'), bearer(stack.values['metricsBearer']))
    assert status == 200 and b'caracal_standin_up' in body


def test_the_sts_serves_a_jwks_of_public_keys(stack):
    path = PROFILE['services']['sts']['jwks_path']
    status, dummy, body = http(url(stack, 'sts', path))
    keys = json.loads(body.decode())['keys']
    assert status == 200 and keys and all(k['kty'] and k['kid'] and 'd' not in k for k in keys)
    # only the issuer serves it
    assert http(url(stack, 'api', path))[0] == 404


@pytest.mark.parametrize('service,path,secret', [
    (s, path, sname) for s in APPS
    for path, sname in (('/admin/ping', 'caracalAdminToken'), ('/coordinator/ping', 'caracalCoordinatorToken'))
    if sname in SERVICES[s]['secrets']])
def test_pings_need_the_right_token(stack, service, path, secret):
    assert http(url(stack, service, path))[0] == 401
    assert http(url(stack, service, path), bearer(secrets.token_hex(32)))[0] == 401
    other = 'caracalCoordinatorToken' if secret == 'caracalAdminToken' else 'caracalAdminToken'
    assert http(url(stack, service, path), bearer(stack.values[other]))[0] == 401
    assert http(url(stack, service, path), {'Authorization': stack.values[secret]})[0] == 401
    assert http(url(stack, service, path), bearer(stack.values[secret]))[0] == 200


@pytest.mark.parametrize('service', APPS)
def test_fingerprints_match_the_files(stack, service):
    status, dummy, body = http(url(stack, service, '/standin/fingerprints'))
    assert status == 200
    expected = {}
    for sname in SERVICES[service]['secrets']:
        with open(os.path.join(stack.dir, sname)) as handle:
            expected[sname] = fingerprint(handle.read().rstrip())
    assert json.loads(body) == expected
    for value in stack.values.values():
        assert value.encode() not in body


def test_web_sends_the_bff_headers(stack):
    web = [s for s in APPS if SERVICES[s].get('public_edge')][0]
    status, headers, body = http(url(stack, web, '/'))
    assert status == 200 and b'<html' in body.lower()
    assert headers['Content-Type'].startswith('text/html')
    csp = headers['Content-Security-Policy']
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
    assert headers['X-Frame-Options'] == 'DENY'
    assert headers['X-Content-Type-Options'] == 'nosniff'
    assert headers['Referrer-Policy'] == 'no-referrer'
    assert 'Strict-Transport-Security' not in headers
    headers = http(url(stack, web, '/'), {'X-Forwarded-Proto': 'https'})[1]
    assert headers['Strict-Transport-Security'].startswith('max-age=')
    headers = http(url(stack, web, '/ready'), {'X-Forwarded-Proto': 'http'})[1]
    assert 'Strict-Transport-Security' not in headers
    assert headers['X-Frame-Options'] == 'DENY'


def test_access_log_has_no_headers(stack):
    web = [s for s in APPS if SERVICES[s].get('public_edge')][0]
    http(url(stack, web, '/admin/ping?token=querysecret'), bearer(stack.values['caracalAdminToken']))
    logs = docker('logs', stack.containers[web])
    text = logs.stdout + logs.stderr
    assert '"GET /admin/ping" 200' in text
    assert 'querysecret' not in text and 'Bearer' not in text


def test_redis_is_provisioned_and_configured(env, stack):
    host, port = stack.ip['redis'], SERVICES['redis']['port']
    assert resp_call(host, port, ['PING'])[0].startswith('ERR:NOAUTH')
    assert resp_call(host, port, ['AUTH', 'wrong-password'])[0].startswith('ERR:WRONGPASS')
    replies = resp_call(host, port, ['AUTH', stack.values['redisPassword']],
                        *[['CONFIG', 'GET', key] for key in PROFILE['redis_settings']],
                        ['CONFIG', 'GET', 'protected-mode'], ['CONFIG', 'GET', 'dir'],
                        ['TYPE', PROFILE['audit_stream']], ['TYPE', PROFILE['audit_dlq']])
    assert replies[0] == 'OK'
    for (key, value), reply in zip(PROFILE['redis_settings'].items(), replies[1:]):
        assert reply == [key, value]
    assert replies[-4] == ['protected-mode', 'yes']
    assert replies[-3] == ['dir', SERVICES['redis']['volumes']['redis-data']]
    assert replies[-2:] == ['stream', 'stream']
    c = stack.containers['redis']
    ls = docker('exec', c, 'ls', '-ln', os.path.dirname(SERVICES['redis']['ready_marker'])).stdout
    conf_line = [line for line in ls.splitlines() if line.endswith(' redis.conf')][0]
    assert conf_line.startswith('-rw------- ') and ' %d %d ' % (env.redis_uid, env.redis_uid) in conf_line
    mounts = docker('exec', c, 'cat', '/proc/self/mountinfo').stdout
    assert re.search(r' %s .* - tmpfs ' % re.escape(os.path.dirname(SERVICES['redis']['ready_marker'])), mounts)


def test_postgres_uses_scram_only(stack):
    c = stack.containers['postgres']
    sql = ("SELECT current_setting('password_encryption'), "
           "(SELECT bool_and(rolpassword LIKE 'SCRAM-SHA-256$%') FROM pg_authid WHERE rolcanlogin), "
           "(SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database WHERE NOT datistemplate)")
    out = docker('exec', '-u', 'postgres', c, 'psql', '-XAtq', '-d', 'postgres', '-c', sql).stdout.strip()
    assert out == 'scram-sha-256|t|caracal,caracal_auth,postgres'
    rules = docker('exec', '-u', 'postgres', c, 'psql', '-XAtq', '-d', 'postgres', '-c',
                   'SELECT DISTINCT auth_method FROM pg_hba_file_rules').stdout.split()
    assert set(rules) == {'peer', 'scram-sha-256'}, rules


# ---------------------------------------------------------------------------
# no secret shows anywhere; processes are unprivileged
# ---------------------------------------------------------------------------

def _secret_strings(values):
    return sorted({v for v in values.values() if v}, key=len)


def test_no_secret_in_inspect_env_argv_or_logs(stack):
    needles = _secret_strings(stack.values)
    leaks = []
    for svc, c in stack.containers.items():
        inspect = docker('inspect', c).stdout
        table = proc_table(c, 'root' if svc == 'postgres' else None)
        by_uid = {}
        for pid, name, fields in table:
            by_uid.setdefault(fields['Uid'].split()[0], []).append(pid)
        dumps = []
        for uid, pids in by_uid.items():
            script = 'for p in %s; do cat /proc/$p/environ; echo; cat /proc/$p/cmdline; echo; done' % (
                ' '.join(str(p) for p in pids))
            dumps.append(docker('exec', '-u', uid, c, '/bin/sh', '-c', script).stdout)
        environ = '\n'.join(dumps)
        assert 'PATH=' in environ, (svc, 'could not read the process environments')
        if SERVICES[svc]['kind'] == 'app':
            assert '_FILE=%s/' % MOUNT in environ
        top = docker('top', c, '-eo', 'pid,user,args').stdout
        logs = docker('logs', c)
        sources = {'docker inspect': inspect, '/proc/*/environ+cmdline': environ, 'ps args': top,
                   'logs': logs.stdout + logs.stderr}
        for where, text in sources.items():
            for value in needles:
                if value in text:
                    leaks.append('%s: %s shows %s...' % (svc, where, value[:6]))
    migrate = stack.migrate.stdout + stack.migrate.stderr
    leaks += ['migrate output shows %s...' % v[:6] for v in needles if v in migrate]
    assert not leaks, leaks


@pytest.mark.parametrize('service', APPS)
def test_app_runs_as_65532_without_capabilities(stack, service):
    table = proc_table(stack.containers[service])
    assert len(table) >= 2, table  # docker-init and the service
    for pid, name, fields in table:
        assert fields['Uid'].split() == [str(UID)] * 4, (pid, name, fields)
        assert fields['Gid'].split() == [str(GID)] * 4, (pid, name, fields)
        assert int(fields['CapEff'], 16) == 0 and int(fields['CapPrm'], 16) == 0, (pid, name, fields)
        assert fields['NoNewPrivs'] == '1', (pid, name, fields)
    info = json.loads(http(url(stack, service, '/standin/info'))[2])
    assert (info['uid'], info['gid'], info['service']) == (UID, GID, service)
    # the process start time (tests tell restarts by it): after the container started
    started = docker('inspect', '-f', '{{.State.StartedAt}}', stack.containers[service]).stdout.strip()
    started_epoch = calendar.timegm(time.strptime(started[:19], '%Y-%m-%dT%H:%M:%S'))
    assert started_epoch - 5 <= info['started'] <= time.time(), (started, info['started'])


@pytest.mark.parametrize('service', ['postgres', 'redis'])
def test_datastores_drop_to_their_user(env, stack, service):
    table = proc_table(stack.containers[service], 'root' if service == 'postgres' else None)
    workers = [(pid, name, f) for pid, name, f in table if name != 'docker-init']
    assert workers
    expected_uid = env.redis_uid if service == 'redis' else None
    for pid, name, fields in workers:
        uid = int(fields['Uid'].split()[0])
        assert uid != 0 and len(set(fields['Uid'].split())) == 1, (pid, name, fields)
        if expected_uid is not None:
            assert uid == expected_uid
        assert int(fields['CapEff'], 16) == 0, (pid, name, fields)
        assert str(GID) in fields['Groups'].split(), (pid, name, fields)


# ---------------------------------------------------------------------------
# readiness is real
# ---------------------------------------------------------------------------

@pytest.fixture(scope='session')
def probes(env, stack):
    """Extra audit containers whose readiness must (not) follow their dependencies."""
    audit = 'audit'
    out = {}
    # dev mode accepts a short HMAC key (and /metrics without the bearer).
    short = dict(stack.values, auditHmacKey=secrets.token_hex(8))
    out['dev'] = env.start(audit, env.secret_dir(short), name=env.name('audit-dev'), network=stack.net,
                           env={'CARACAL_MODE': 'dev'})
    # no route to postgres or redis
    out['isolated'] = env.start(audit, stack.dir, name=env.name('audit-isolated'))
    # wrong database password
    pw = secrets.token_hex(SECRETS['postgresPassword']['bytes'])
    wrong_db = dict(stack.values, databaseUrl=SECRETS['databaseUrl']['template'].format(postgresPassword=pw))
    out['wrong-db'] = env.start(audit, env.secret_dir(wrong_db), name=env.name('audit-wrong-db'), network=stack.net)
    pw = secrets.token_hex(SECRETS['redisPassword']['bytes'])
    wrong_redis = dict(stack.values, redisUrl=SECRETS['redisUrl']['template'].format(redisPassword=pw))
    out['wrong-redis'] = env.start(audit, env.secret_dir(wrong_redis), name=env.name('audit-wrong-redis'),
                                   network=stack.net)
    # sts without its replay volume (read-only root: the state directory cannot exist)
    out['no-replay'] = env.start('sts', stack.dir, name=env.name('sts-no-replay'), network=stack.net)
    # api with the Control gate file mounted read-only
    gate_dir = tempfile.mkdtemp(prefix=env.prefix + '-control-')
    env.dirs.append(gate_dir)
    os.chmod(gate_dir, 0o755)
    with open(os.path.join(gate_dir, PROFILE['control_gate_file']), 'w') as handle:
        handle.write('')
    os.chmod(os.path.join(gate_dir, PROFILE['control_gate_file']), 0o444)
    control_api = [s for s in APPS if SERVICES[s].get('control_gate')][0]
    out['control'] = env.start(control_api, stack.dir, name=env.name('api-control'), network=stack.net,
                               volumes={gate_dir: PROFILE['control_gate_mount'] + ':ro'})
    # api and web with a wrong database password: their 503 bodies have their images' shapes
    out['api-wrong-db'] = env.start('api', env.secret_dir(wrong_db), name=env.name('api-wrong-db'), network=stack.net)
    wrong_auth = dict(stack.values, authDatabaseUrl=SECRETS['authDatabaseUrl']['template'].format(
        **dict(stack.values, postgresPassword=secrets.token_hex(SECRETS['postgresPassword']['bytes']))))
    out['web-wrong-db'] = env.start('web', env.secret_dir(wrong_auth), name=env.name('web-wrong-db'), network=stack.net)
    return out


def test_control_answers_503_without_its_gate(stack, probes):
    api = [s for s in APPS if SERVICES[s].get('control_gate')][0]
    admin = bearer(stack.values['caracalAdminToken'])
    status, dummy, body = http(url(stack, api, '/control/ping'), admin)
    assert status == 503 and b'control is disabled' in body
    ok, why = wait_ready(probes['control'])
    assert ok, why
    control_url = 'http://%s:%d/control/ping' % (ip_of(probes['control'], stack.net), SERVICES[api]['port'])
    assert http(control_url)[0] == 401
    assert http(control_url, bearer(stack.values['caracalCoordinatorToken']))[0] == 401
    assert http(control_url, admin)[0] == 200


def _ready_body(container, service, cap=20.0):
    """(status, JSON body) of /ready, asked from inside the container; waits (bounded) for
    the server to listen."""
    script = ('import urllib.request as u, urllib.error as e\n'
              'try:\n r = u.urlopen("http://127.0.0.1:%d/ready", timeout=10); print(r.status, r.read().decode())\n'
              'except e.HTTPError as x:\n print(x.code, x.read().decode())\n') % SERVICES[service]['port']
    deadline = time.monotonic() + cap
    while True:
        result = docker('exec', container, 'python3', '-c', script, check=False)
        code, dummy, body = result.stdout.strip().partition(' ')
        if result.returncode == 0 and code.isdigit():
            return int(code), json.loads(body)
        assert time.monotonic() < deadline and running(container), (
            result.stderr[-1000:], docker('logs', container, check=False).stderr[-1000:])
        time.sleep(0.3)


def test_dev_mode_accepts_a_short_key(probes):
    ok, why = wait_ready(probes['dev'])
    assert ok, why
    script = ('import urllib.request as u; r = u.urlopen("http://127.0.0.1:%d/metrics", timeout=10); print(r.status)'
              % SERVICES['audit']['port'])
    assert docker('exec', probes['dev'], 'python3', '-c', script).stdout.strip() == '200'


@pytest.mark.parametrize('probe,service,pattern', [
    ('isolated', 'audit', r'^postgres: .*(could not translate host name|Name or service not known|timeout|resolve)'),
    ('wrong-db', 'audit', r'^postgres: .*password authentication failed'),
    ('wrong-redis', 'audit', r'^redis: .*(invalid username-password|WRONGPASS|AuthenticationError|invalid password)'),
    ('no-replay', 'sts', r'^replay state .* is missing'),
])
def test_ready_fails_with_a_reason(probes, probe, service, pattern):
    c = probes[probe]
    assert running(c), docker('logs', c, check=False).stderr
    status, body = _ready_body(c, service)
    assert status == 503, body
    assert re.search(pattern, body['reason'], re.I), body
    assert docker('exec', c, '/healthcheck', check=False).returncode == 1


def test_ready_bodies_have_the_shape_of_their_image(probes):
    # caracal-contract-1.0.md section 5 and 8: Go services give ``reason``, api and coordinator
    # ``error`` and ``dependency``, the web tier ``status``.
    status, body = _ready_body(probes['api-wrong-db'], 'api')
    assert status == 503 and body['ok'] is False and body['dependency'] == 'postgres', body
    assert re.search(r'^postgres: .*password authentication failed', body['error']) and 'reason' not in body, body
    status, body = _ready_body(probes['web-wrong-db'], 'web')
    assert status == 503 and set(body) == {'status'}, body
    assert re.search(r'^postgres: .*password authentication failed', body['status']), body


def test_the_web_image_healthcheck_probes_liveness(probes):
    # The web image's /healthcheck probes /health (Caracal's Dockerfile.web): a web tier whose
    # database refuses it is unready (/ready 503) but its container stays healthy.
    c = probes['web-wrong-db']
    assert _ready_body(c, 'web')[0] == 503
    result = docker('exec', c, '/healthcheck', check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    # ... and HEALTH_PATH still wins, as in Caracal's /healthcheck.
    result = docker('exec', '-e', 'HEALTH_PATH=/ready', c, '/healthcheck', check=False)
    assert result.returncode == 1 and '503' in result.stderr, result.stderr
    # The api (caracal-node) keeps probing readiness.
    assert docker('exec', probes['api-wrong-db'], '/healthcheck', check=False).returncode == 1


# ---------------------------------------------------------------------------
# refusals: each exits 1 with one line naming the reason
# ---------------------------------------------------------------------------

def _kek(raw):
    return bytes(raw).hex()


# id: (service, {secret: value}, env overrides, drop env, skip secret mounts, expected reason regex)
REFUSALS = {
    'short-hmac-key': ('sts', {'auditHmacKey': secrets.token_hex(16)}, {}, (), (),
                       r'AUDIT_HMAC_KEY is too short: 16 bytes, at least 32 required'),
    'short-hmac-key-rc': ('gateway', {'gatewayStsHmacKey': secrets.token_hex(31)}, {'CARACAL_MODE': 'rc'}, (), (),
                          r'GATEWAY_STS_HMAC_KEY is too short: 31 bytes, at least 32 required'),
    'short-key-mode-unset-means-stable': ('audit', {'auditHmacKey': secrets.token_hex(8)}, {}, ('CARACAL_MODE',), (),
                                          r'AUDIT_HMAC_KEY is too short: 8 bytes, at least 32 required'),
    'non-hex-key': ('sts', {'streamsHmacKey': 'zz' * 32}, {}, (), (), r'STREAMS_HMAC_KEY is not hex'),
    'odd-hex-key': ('coordinator', {'streamsHmacKey': secrets.token_hex(32) + 'a'}, {}, (), (),
                    r'STREAMS_HMAC_KEY is not hex \(odd number of hex digits\)'),
    'short-web-auth-secret': ('web', {'caracalAuthSecret': secrets.token_hex(12)}, {}, (), (),
                              r'CARACAL_AUTH_SECRET is too short: 12 bytes, at least 32 required'),
    'empty-file': ('sts', {'gatewayStsHmacKey': ''}, {}, (), (),
                   r'GATEWAY_STS_HMAC_KEY_FILE \(/run/secrets/gatewayStsHmacKey\) is empty'),
    'whitespace-only-file': ('api', {'caracalAdminToken': ' \t\n\n'}, {}, (), (),
                             r'CARACAL_ADMIN_TOKEN_FILE \(/run/secrets/caracalAdminToken\) is empty'),
    'missing-file': ('audit', {}, {'METRICS_BEARER_FILE': '/run/secrets/absent'}, ('METRICS_BEARER_FILE',),
                     ('metricsBearer',),
                     r'cannot read METRICS_BEARER_FILE \(/run/secrets/absent\): No such file or directory'),
    'unreadable-file': ('audit', {}, {}, (), (),
                        r'cannot read DATABASE_URL_FILE \(/run/secrets/databaseUrl\): Permission denied'),
    'secret-not-configured': ('sts', {}, {}, ('ZONE_KEK_FILE',), ('zoneKek',),
                              r'ZONE_KEK is required in stable mode: set ZONE_KEK_FILE'),
    'env-value-wins-over-file': ('audit', {}, {'AUDIT_HMAC_KEY': 'abcd'}, (), (),
                                 r'AUDIT_HMAC_KEY is too short: 2 bytes, at least 32 required'),
    'weak-kek-all-zeros': ('sts', {'zoneKek': '00' * 32}, {}, (), (), r'ZONE_KEK is weak \(all zeros\)'),
    'weak-kek-repeated-byte': ('api', {'zoneKek': 'a7' * 32}, {}, (), (), r'ZONE_KEK is weak \(one repeated byte\)'),
    'weak-kek-ascending': ('sts', {'zoneKek': _kek(range(0x40, 0x60))}, {}, (), (),
                           r'ZONE_KEK is weak \(ascending byte sequence\)'),
    'weak-kek-descending': ('api', {'zoneKek': _kek(range(0xff, 0xdf, -1))}, {}, (), (),
                            r'ZONE_KEK is weak \(descending byte sequence\)'),
    'weak-kek-alternating': ('sts', {'zoneKek': '5aa5' * 16}, {}, (), (),
                             r'ZONE_KEK is weak \(two-byte alternating pattern\)'),
    'kek-31-bytes': ('sts', {'zoneKek': secrets.token_hex(31)}, {}, (), (), r'ZONE_KEK must be exactly 32 bytes, got 31'),
    'kek-33-bytes': ('api', {'zoneKek': secrets.token_hex(33)}, {}, (), (), r'ZONE_KEK must be exactly 32 bytes, got 33'),
    'mode-prod': ('sts', {}, {'CARACAL_MODE': 'prod'}, (), (), r'CARACAL_MODE=prod is not one of dev, rc, stable'),
    'insecure-http-stable': ('api', {}, {'INSECURE_HTTP': '1'}, (), (),
                             r'INSECURE_HTTP=1 is a fail-open setting, forbidden in stable mode'),
    'insecure-sts-rc': ('sts', {}, {'CARACAL_MODE': 'rc', 'INSECURE_STS': 'yes'}, (), (),
                        r'INSECURE_STS=yes is a fail-open setting, forbidden in rc mode'),
    'jti-fail-open-gateway': ('gateway', {}, {'JTI_FAIL_OPEN': 'true'}, (), (),
                              r'JTI_FAIL_OPEN=true is a fail-open setting, forbidden in stable mode'),
}

# The stand-in's test hook (tests/images/standin, not a Caracal setting):
# STANDIN_ACCEPT_ONLY_<VAR>_FINGERPRINT accepts only the value of <VAR> with that fingerprint.
PIN = 'STANDIN_ACCEPT_ONLY_%s_FINGERPRINT'
PINNED_KEY = secrets.token_hex(32)
OTHER_KEY = secrets.token_hex(32)
REFUSALS.update({
    'pin-other-value': ('gateway', {'gatewayStsHmacKey': OTHER_KEY},
                        {PIN % 'GATEWAY_STS_HMAC_KEY': fingerprint(PINNED_KEY)}, (), (),
                        r'GATEWAY_STS_HMAC_KEY has fingerprint %s; this stand-in accepts only %s '
                        r'\(STANDIN_ACCEPT_ONLY_GATEWAY_STS_HMAC_KEY_FINGERPRINT, a test hook\)'
                        % (fingerprint(OTHER_KEY), fingerprint(PINNED_KEY))),
    'pin-second-variable': ('api', {'caracalAdminToken': OTHER_KEY},
                            {PIN % 'CONTROL_API_TOKEN': fingerprint(PINNED_KEY)}, (), (),
                            r'CONTROL_API_TOKEN has fingerprint %s; .*' % fingerprint(OTHER_KEY)),
    'pin-malformed': ('sts', {}, {PIN % 'AUDIT_HMAC_KEY': 'not-a-fingerprint'}, (), (),
                      r'STANDIN_ACCEPT_ONLY_AUDIT_HMAC_KEY_FINGERPRINT=not-a-fingerprint is not a fingerprint '
                      r'\(16 hex digits\)'),
    'pin-unread-variable': ('audit', {}, {PIN % 'CARACAL_ADMIN_TOKEN': fingerprint(PINNED_KEY)}, (), (),
                            r'STANDIN_ACCEPT_ONLY_CARACAL_ADMIN_TOKEN_FINGERPRINT names CARACAL_ADMIN_TOKEN, '
                            r'which audit does not read'),
})

# Valid configurations that must start, with their env: the hook accepts the pinned value.
ACCEPTS = {
    'pin-same-value': ('gateway', {'gatewayStsHmacKey': PINNED_KEY},
                       {PIN % 'GATEWAY_STS_HMAC_KEY': fingerprint(PINNED_KEY)}),
    'pin-same-value-upper-case': ('web', {'caracalAdminToken': PINNED_KEY},
                                  {PIN % 'CARACAL_ADMIN_TOKEN': fingerprint(PINNED_KEY).upper()}),
}


@pytest.fixture(scope='session')
def refusal_results(env):
    """Run every refusal case (and a valid control per service) in parallel, --rm, bounded."""
    base = valid_secrets()

    def one(case_id):
        if case_id.startswith('control-'):
            service, overrides, extra_env, drop, skip = case_id[len('control-'):], {}, {}, (), ()
        elif case_id in ACCEPTS:
            (service, overrides, extra_env), drop, skip = ACCEPTS[case_id], (), ()
        else:
            service, overrides, extra_env, drop, skip = REFUSALS[case_id][:5]
        values = dict(base, **overrides)
        modes = {'databaseUrl': (0o400, 0, 0)} if case_id == 'unreadable-file' else None
        secret_dir = env.secret_dir(values, modes)
        name = env.name('refusal-%s' % case_id)
        if case_id.startswith('control-') or case_id in ACCEPTS:
            # A valid configuration must start (and stay up): the refusals are not noise.
            cid = env.start(service, secret_dir, name=name, env=extra_env)
            deadline = time.monotonic() + 30
            while True:
                logs = docker('logs', cid, check=False)
                alive = running(cid)
                if not alive or 'listening on' in logs.stdout or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
            time.sleep(1.0)  # still up a moment after listening
            alive = alive and running(cid)
            docker('rm', '-f', cid, check=False)
            return subprocess.CompletedProcess([], 0 if alive else 1, logs.stdout, logs.stderr)
        return env.run_once(service, secret_dir, name=name, env=extra_env, drop_env=drop,
                            skip_secrets=skip, timeout=30)

    cases = list(REFUSALS) + list(ACCEPTS) + ['control-%s' % s for s in APPS]
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        return dict(zip(cases, pool.map(one, cases)))


@pytest.mark.parametrize('case_id', sorted(REFUSALS))
def test_refusal(refusal_results, case_id):
    service, reason = REFUSALS[case_id][0], REFUSALS[case_id][5]
    result = refusal_results[case_id]
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    match = REFUSAL_LINE.fullmatch(lines[0])
    assert match, lines[0]
    assert match.group('service') == service
    assert re.fullmatch(reason, match.group('reason')), match.group('reason')


@pytest.mark.parametrize('service', APPS)
def test_valid_configuration_starts_in_isolation(refusal_results, service):
    result = refusal_results['control-%s' % service]
    assert result.returncode == 0, result.stderr
    assert re.search(r'listening on (\[::\]|0\.0\.0\.0):%d \(mode stable' % SERVICES[service]['port'], result.stdout)


@pytest.mark.parametrize('case_id', sorted(ACCEPTS))
def test_pinned_fingerprint_accepts_its_value(refusal_results, case_id):
    """The test hook lets the pinned value through: a refusal under it means another value."""
    service = ACCEPTS[case_id][0]
    result = refusal_results[case_id]
    assert result.returncode == 0, result.stderr
    assert re.search(r'listening on (\[::\]|0\.0\.0\.0):%d \(mode stable' % SERVICES[service]['port'], result.stdout)
    assert PINNED_KEY not in result.stdout + result.stderr


# ---------------------------------------------------------------------------
# datastore images: refusals and password handling
# ---------------------------------------------------------------------------

def test_datastores_refuse_empty_or_missing_passwords(env):
    empty = env.secret_dir({'postgresPassword': '', 'redisPassword': ''})
    jobs = {
        'postgres-empty': lambda: env.run_once('postgres', empty, name=env.name('pg-empty'),
                                               volumes={env.volume('pg-empty'): '/var/lib/postgresql'}, timeout=30),
        'redis-missing': lambda: env.run_once('redis', empty, name=env.name('redis-missing'),
                                              skip_secrets=('redisPassword',),
                                              env={'REDIS_PASSWORD_FILE': '/run/secrets/absent'},
                                              volumes={env.volume('redis-missing'): '/data'}, timeout=30),
    }
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        results = dict(zip(jobs, pool.map(lambda j: j(), jobs.values())))
    pg = results['postgres-empty']
    assert pg.returncode != 0 and 'POSTGRES_PASSWORD_FILE (/run/secrets/postgresPassword) is empty' in pg.stderr
    rd = results['redis-missing']
    assert rd.returncode != 0 and 'cannot read REDIS_PASSWORD_FILE (/run/secrets/absent)' in rd.stderr


def test_redis_refuses_a_config_outside_a_tmpfs(env):
    pw = env.secret_dir({'redisPassword': secrets.token_hex(24)})
    args = env.run_args('redis', pw, name=env.name('redis-no-tmpfs'),
                        volumes={env.volume('redis-no-tmpfs'): '/data'})
    rundir = os.path.dirname(SERVICES['redis']['ready_marker'])
    i = args.index('%s:uid=%d,gid=%d,mode=0700,size=1m' % (rundir, env.redis_uid, env.redis_uid))
    del args[i - 1:i + 1]
    env.containers.append(env.name('redis-no-tmpfs'))
    result = docker('run', '--rm', *args, check=False, timeout=30)
    assert result.returncode != 0
    assert '%s is not a tmpfs' % rundir in result.stderr


def test_postgres_keeps_the_role_password_on_restart(env):
    """A changed password file does not silently change the role (rotation is ALTER ROLE)."""
    net = env.network('pgrestart')
    vol = env.volume('pgrestart')
    first = {'postgresPassword': secrets.token_hex(24)}
    second = {'postgresPassword': secrets.token_hex(24)}
    dir1, dir2 = env.secret_dir(first), env.secret_dir(second)
    volumes = {vol: SERVICES['postgres']['volumes']['postgres-data']}
    c1 = env.start('postgres', dir1, name=env.name('pg-first'), network=net, volumes=volumes)
    wait_all([c1])
    docker('stop', '-t', '20', c1)
    docker('rm', c1)
    c2 = env.start('postgres', dir2, name=env.name('pg-second'), network=net, volumes=volumes)
    wait_all([c2])
    # Before the migration job ran, readiness names the missing migration table.
    full = valid_secrets()
    full['postgresPassword'] = first['postgresPassword']
    full['databaseUrl'] = SECRETS['databaseUrl']['template'].format(**full)
    audit = env.start('audit', env.secret_dir(full), name=env.name('audit-unmigrated'), network=net)
    status, body = _ready_body(audit, 'audit')
    assert status == 503 and re.search(r'^postgres: database caracal has no caracal_migrations table', body['reason'])
    old = env.run_once('dbMigrate', dir1, name=env.name('migrate-old'), network=net)
    new = env.run_once('dbMigrate', dir2, name=env.name('migrate-new'), network=net)
    assert old.returncode == 0, old.stderr
    assert new.returncode != 0 and 'password authentication failed' in new.stderr
    assert second['postgresPassword'] not in new.stderr + new.stdout
    assert 'passwords are left as they are' in docker('logs', c2).stderr
    status, body = _ready_body(audit, 'audit')
    assert status == 503 and body['reason'].startswith('redis: '), body  # postgres is now fine


def test_both_releases_are_tagged(images):
    tags = [PROFILE['image_tag_format'].format(release=r) for r in PROFILE['releases']]
    for name, ref in images.items():
        repo = ref.rsplit(':', 1)[0]
        ids = {docker('image', 'inspect', '-f', '{{.Id}}', '%s:%s' % (repo, tag)).stdout.strip() for tag in tags}
        assert len(ids) == 1, (name, ids)
        label = docker('image', 'inspect', '-f', '{{index .Config.Labels "org.caracal.test.hash"}}', ref).stdout
        assert re.fullmatch(r'[0-9a-f]{12}', label.strip()), label
