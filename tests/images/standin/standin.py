# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""caracal-standin: a local stand-in for Caracal's application services (tests only).

Caracal's own images cannot be pulled on the test machines, so the image contract tests run
this program in their place.  It honours Caracal's startup contract as the collection's
contract module describes it (``_contract.py``, copied into the image at build time):

* the container command (``/usr/local/bin/sts``, ``/app/api/dist/main.js``, ...) selects
  the service;
* every secret the service reads is resolved the way Caracal resolves it (``NAME`` wins,
  else ``NAME_FILE`` with trailing whitespace trimmed; unreadable or empty stops it);
* ``CARACAL_MODE`` published modes refuse short, non-hex or weak key material and every
  fail-open switch;
* it serves ``/health``, ``/ready`` (real Postgres and Redis checks), ``/metrics``
  (bearer in published modes), the admin and coordinator pings and, for the tests,
  ``/standin/fingerprints``.

One test-only hook, which Caracal does not have: ``STANDIN_ACCEPT_ONLY_<VAR>_FINGERPRINT``
(a fingerprint, never a value) makes the service refuse to start unless the value it
resolved for ``<VAR>`` has that fingerprint.  The end-to-end tests use it to make one
consumer refuse a rotated value.  Unset, it changes nothing.

The validation is written here on purpose and does not reuse the collection's modules:
this program is the oracle the collection is tested against.  Only the contract *data*
(sizes, formats, variable names, ports) is shared.
"""

from __future__ import print_function

import hashlib
import hmac
import json
import os
import re
import signal
import socket
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

LIB = os.path.dirname(os.path.realpath(__file__))
if LIB not in sys.path:
    sys.path.insert(0, LIB)

import _contract  # noqa: E402  (copied next to this file at build time)

PREFIX = 'caracal-standin'
FINGERPRINT_DOMAIN = b'caracal.hardened/fingerprint/v1\0'
# The table caracal-migrate (the caracal-postgres image) creates in every database.
MIGRATION_TABLE = 'caracal_migrations'
# Boolean spellings a Go (strconv.ParseBool) or Node service would read as "true".
TRUTHY = ('1', 't', 'true', 'y', 'yes', 'on')
# Trailing whitespace Caracal trims from a secret file.
TRAILING_WS = ' \t\r\n\v\f'
HEX_RE = re.compile(r'\A[0-9a-fA-F]*\Z')
# The test hook STANDIN_ACCEPT_ONLY_<VAR>_FINGERPRINT=<fingerprint>.
PIN_PREFIX = 'STANDIN_ACCEPT_ONLY_'
PIN_SUFFIX = '_FINGERPRINT'
FINGERPRINT_RE = re.compile(r'\A[0-9a-f]{16}\Z')
MAX_SECRET_FILE = 1 << 20
CHECK_TIMEOUT = 3

WEB_CSP = ("default-src 'self'; base-uri 'none'; object-src 'none'; form-action 'self'; "
           "frame-ancestors 'none'")
WEB_HSTS = 'max-age=63072000; includeSubDomains'


class Refusal(Exception):
    """The service refuses to start; the message is the reason."""


def fingerprint(value):
    return hashlib.sha256(FINGERPRINT_DOMAIN + value.encode('utf-8')).hexdigest()[:16]


def printable(value, limit=64):
    """A value that is not secret, made safe for one log line."""
    text = ''.join(ch if ch.isprintable() else '?' for ch in str(value))
    return text if len(text) <= limit else text[:limit] + '...'


def load_profile(env):
    return _contract.get_profile(env.get('CARACAL_STANDIN_PROFILE') or None)


def app_commands(profile):
    """Map each application service's command path to the service name."""
    commands = {}
    for name, svc in profile['services'].items():
        if svc.get('kind') == 'app' and svc.get('command'):
            commands[svc['command'][0]] = name
    return commands


def select_service(profile, argv):
    """Find the service from the command: through a command symlink or as an argument."""
    commands = app_commands(profile)
    for arg in argv[:3]:
        if arg in commands:
            return commands[arg]
    raise Refusal('%s: not a Caracal service command (known: %s)' % (
        printable(' '.join(argv[1:]) or argv[0]), ', '.join(sorted(commands))))


# ---------------------------------------------------------------------------
# The startup contract
# ---------------------------------------------------------------------------

def resolve_mode(profile, env):
    raw = env.get('CARACAL_MODE', '')
    mode = raw or profile['default_mode']
    if mode not in profile['modes']:
        raise Refusal('CARACAL_MODE=%s is not one of %s' % (printable(raw), ', '.join(profile['modes'])))
    return mode


def check_fail_open(profile, env, mode):
    if mode not in profile['published_modes']:
        return
    for name, forbidden in profile['fail_open_settings'].items():
        if name not in env:
            continue
        value = env[name]
        rule = str(forbidden).strip().lower()
        if rule.startswith('any non-empty'):
            bad = value != ''
        elif rule in TRUTHY:
            bad = value.strip().lower() in TRUTHY
        else:
            bad = value.strip().lower() == rule
        if bad:
            raise Refusal('%s=%s is a fail-open setting, forbidden in %s mode' % (name, printable(value), mode))


def read_secret_var(env, var):
    """Resolve one secret variable the way Caracal does; None when neither form is set."""
    if var in env:
        if env[var] == '':
            raise Refusal('%s is set but empty' % var)
        return env[var]
    fvar = var + '_FILE'
    if fvar not in env:
        return None
    path = env[fvar]
    if path == '':
        raise Refusal('%s is set but empty' % fvar)
    try:
        with open(path, 'rb') as handle:
            data = handle.read(MAX_SECRET_FILE + 1)
    except OSError as exc:
        raise Refusal('cannot read %s (%s): %s' % (fvar, printable(path, 128), exc.strerror or exc.__class__.__name__))
    if len(data) > MAX_SECRET_FILE:
        raise Refusal('%s (%s) is larger than %d bytes' % (fvar, printable(path, 128), MAX_SECRET_FILE))
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError:
        raise Refusal('%s (%s) is not UTF-8 text' % (fvar, printable(path, 128)))
    text = text.rstrip(TRAILING_WS)
    if not text:
        raise Refusal('%s (%s) is empty' % (fvar, printable(path, 128)))
    return text


def weakness(key):
    """Why a key-encryption key is weak, or None."""
    if len(key) < 2:
        return None
    if not any(key):
        return 'all zeros'
    if len(set(key)) == 1:
        return 'one repeated byte'
    if all((key[i + 1] - key[i]) % 256 == 1 for i in range(len(key) - 1)):
        return 'ascending byte sequence'
    if all((key[i] - key[i + 1]) % 256 == 1 for i in range(len(key) - 1)):
        return 'descending byte sequence'
    if len(key) > 2 and all(key[i] == key[i % 2] for i in range(len(key))):
        return 'two-byte alternating pattern'
    return None


def check_format(spec, var, value):
    """Published-mode checks of one value against its contract format."""
    if spec.get('format') != 'hex':
        return
    if not HEX_RE.match(value):
        raise Refusal('%s is not hex' % var)
    if len(value) % 2:
        raise Refusal('%s is not hex (odd number of hex digits)' % var)
    size = len(value) // 2
    low = spec.get('min_bytes')
    high = spec.get('max_bytes')
    if low is not None and low == high and size != low:
        raise Refusal('%s must be exactly %d bytes, got %d' % (var, low, size))
    if low is not None and size < low:
        raise Refusal('%s is too short: %d bytes, at least %d required' % (var, size, low))
    if high is not None and size > high:
        raise Refusal('%s is too long: %d bytes, at most %d allowed' % (var, size, high))
    if spec.get('weak_check'):
        why = weakness(bytes.fromhex(value))
        if why:
            raise Refusal('%s is weak (%s)' % (var, why))


def resolve_secrets(profile, service, env, mode):
    """Return {secret: {var: value}} for every secret the service reads."""
    published = mode in profile['published_modes']
    held = {}
    for sname, variables in profile['services'][service]['secrets'].items():
        spec = profile['secrets'][sname]
        for var in variables:
            value = read_secret_var(env, var)
            if value is None:
                if published:
                    raise Refusal('%s is required in %s mode: set %s_FILE' % (var, mode, var))
                continue
            if published:
                check_format(spec, var, value)
            held.setdefault(sname, {})[var] = value
    return held


def check_pins(profile, service, env, held):
    """The test hook: refuse to start when a pinned variable holds another value.

    ``STANDIN_ACCEPT_ONLY_<VAR>_FINGERPRINT=<fingerprint>`` accepts only the value of
    ``<VAR>`` whose fingerprint (``fingerprint()``) is the one given.  A malformed pin, or
    one naming a variable the service does not read or has no value for, refuses too:
    a hook that silently did nothing would make the test that sets it pass for nothing.
    """
    reads = {}
    for sname, variables in profile['services'][service]['secrets'].items():
        for var in variables:
            reads[var] = sname
    for key in sorted(env):
        if not (key.startswith(PIN_PREFIX) and key.endswith(PIN_SUFFIX)) \
                or len(key) <= len(PIN_PREFIX) + len(PIN_SUFFIX):
            continue
        var = key[len(PIN_PREFIX):-len(PIN_SUFFIX)]
        want = env[key].strip().lower()
        if not FINGERPRINT_RE.match(want):
            raise Refusal('%s=%s is not a fingerprint (16 hex digits)' % (key, printable(env[key])))
        if var not in reads:
            raise Refusal('%s names %s, which %s does not read' % (key, printable(var), service))
        value = (held.get(reads[var]) or {}).get(var)
        if value is None:
            raise Refusal('%s: %s is not configured' % (key, var))
        have = fingerprint(value)
        if have != want:
            raise Refusal('%s has fingerprint %s; this stand-in accepts only %s (%s, a test hook)'
                          % (var, have, want, key))


def resolve_port(profile, service, env):
    raw = env.get('PORT', '')
    if raw == '':
        return profile['services'][service]['port']
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise Refusal('PORT=%s is not a TCP port' % printable(raw))
    return int(raw)


class Service(object):
    """The configuration a started service holds."""

    def __init__(self, profile, name, mode, held, port):
        self.profile = profile
        self.name = name
        self.mode = mode
        self.held = held
        self.port = port
        self.started = time.time()
        self.requests = 0
        self.lock = threading.Lock()
        self.published = mode in profile['published_modes']

    def value(self, sname, var_index=0):
        """The value of a secret through one of its variables (default: the first; -1: the
        last, e.g. CONTROL_API_TOKEN for the api's Control); None when not held."""
        values = self.held.get(sname) or {}
        variables = self.profile['services'][self.name]['secrets'].get(sname, [])
        if not variables:
            return None
        return values.get(variables[var_index])

    def reads(self, sname):
        return sname in self.profile['services'][self.name]['secrets']

    def secret_values(self):
        return [v for values in self.held.values() for v in values.values()]

    def redact(self, text):
        text = str(text)
        for value in sorted(self.secret_values(), key=len, reverse=True):
            if value:
                text = text.replace(value, '[redacted]')
        for values in self.held.values():
            for value in values.values():
                try:
                    password = urlsplit(value).password
                except ValueError:
                    password = None
                if password:
                    text = text.replace(password, '[redacted]')
        return text

    def fingerprints(self):
        out = {}
        for sname, values in self.held.items():
            variables = [v for v in self.profile['services'][self.name]['secrets'][sname] if v in values]
            first = values[variables[0]]
            out[sname] = fingerprint(first)
            for var in variables[1:]:
                if values[var] != first:
                    out['%s@%s' % (sname, var)] = fingerprint(values[var])
        return out

    # -- readiness -----------------------------------------------------------

    def url_secrets(self):
        """(secret, scheme) for each URL secret the service reads."""
        out = []
        for sname in self.profile['services'][self.name]['secrets']:
            spec = self.profile['secrets'][sname]
            if spec.get('kind') == 'url':
                out.append((sname, urlsplit(spec.get('template', '')).scheme))
        return out

    def check_postgres(self, sname):
        url = self.value(sname)
        var = self.profile['services'][self.name]['secrets'][sname][0]
        if url is None:
            return 'postgres: %s is not configured' % var
        import psycopg2
        kwargs = {'connect_timeout': CHECK_TIMEOUT}
        if os.environ.get('CARACAL_DB_SSLMODE'):
            kwargs['sslmode'] = os.environ['CARACAL_DB_SSLMODE']
        try:
            conn = psycopg2.connect(url, **kwargs)
        except Exception as exc:  # noqa: BLE001 (any failure is a readiness reason)
            return 'postgres: %s' % self.first_line(exc)
        try:
            with conn.cursor() as cur:
                cur.execute('SELECT 1')
                cur.fetchone()
                cur.execute('SELECT to_regclass(%s)', (MIGRATION_TABLE,))
                if cur.fetchone()[0] is None:
                    return 'postgres: database %s has no %s table (migrations have not run)' % (
                        conn.info.dbname, MIGRATION_TABLE)
        except Exception as exc:  # noqa: BLE001
            return 'postgres: %s' % self.first_line(exc)
        finally:
            conn.close()
        return None

    def check_redis(self, sname):
        url = self.value(sname)
        var = self.profile['services'][self.name]['secrets'][sname][0]
        if url is None:
            return 'redis: %s is not configured' % var
        import redis
        stream = self.profile['audit_stream']
        try:
            client = redis.Redis.from_url(url, socket_timeout=CHECK_TIMEOUT,
                                          socket_connect_timeout=CHECK_TIMEOUT)
        except Exception as exc:  # noqa: BLE001
            return 'redis: %s' % self.first_line(exc)
        try:
            if not client.ping():
                return 'redis: PING failed'
            kind = client.type(stream)
            kind = kind.decode() if isinstance(kind, bytes) else kind
            if kind != 'stream':
                return 'redis: audit stream %s does not exist' % stream
        except Exception as exc:  # noqa: BLE001
            return 'redis: %s' % self.first_line(exc)
        finally:
            try:
                client.close()
            except Exception:  # noqa: BLE001
                pass
        return None

    def check_replay_state(self):
        state = self.profile.get('replay_state') or {}
        if self.name not in (state.get('services') or []):
            return None
        path = state['path']
        if not os.path.isdir(path):
            return 'replay state %s is missing' % path
        try:
            handle, probe = tempfile.mkstemp(prefix='.ready-', dir=path)
            os.close(handle)
            os.unlink(probe)
        except OSError as exc:
            return 'replay state %s is not writable: %s' % (path, exc.strerror or exc)
        return None

    def first_line(self, exc):
        text = str(exc).strip().splitlines()
        return self.redact(text[0] if text else exc.__class__.__name__)[:300]

    def unready_body(self, reason):
        """The 503 body of /ready in the shape of this service's image (the contract's
        ``reason_keys``): Go ``reason``, Node ``error`` and ``dependency``, web ``status``."""
        image = self.profile['services'][self.name]['image']
        key = self.profile['healthcheck']['reason_keys'].get(image, 'reason')
        if key == 'error':
            return {'ok': False, 'error': reason, 'dependency': reason.split(':', 1)[0]}
        if key == 'status':
            return {'status': reason}
        return {'ok': False, 'ready': False, 'reason': reason}

    def readiness(self):
        """None when ready, else the reason."""
        for sname, scheme in self.url_secrets():
            if scheme.startswith('postgres'):
                reason = self.check_postgres(sname)
            elif scheme.startswith('redis'):
                reason = self.check_redis(sname)
            else:
                reason = None
            if reason:
                return reason
        return self.check_replay_state()


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------

LOG_LOCK = threading.Lock()


def log(line):
    with LOG_LOCK:
        sys.stdout.write('%s %s\n' % (time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()), line))
        sys.stdout.flush()


WEB_PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Caracal console (stand-in)</title></head>
<body><h1>Caracal console</h1><p>caracal-standin: test stand-in for the Caracal web tier.</p></body></html>
"""


def make_handler(svc):
    class Handler(BaseHTTPRequestHandler):
        server_version = 'caracal-standin'
        sys_version = ''
        protocol_version = 'HTTP/1.0'
        timeout = 30  # seconds a client may take to send its request

        def version_string(self):
            return self.server_version

        def log_message(self, fmt, *args):  # the access line is written in send()
            pass

        def bearer_ok(self, sname, var_index=0):
            expected = svc.value(sname, var_index)
            header = self.headers.get('Authorization', '')
            scheme, dummy, token = header.partition(' ')
            if expected is None or scheme.lower() != 'bearer' or not token:
                return False
            return hmac.compare_digest(token.strip().encode('utf-8'), expected.encode('utf-8'))

        def send(self, status, body, ctype='application/json', extra=None):
            if not isinstance(body, bytes):
                body = (json.dumps(body, sort_keys=True) + '\n').encode('utf-8')
            self.send_response(status)
            self.send_header('Content-Type', ctype)
            self.send_header('Content-Length', str(len(body)))
            self.send_header('Cache-Control', 'no-store')
            self.send_header('X-Content-Type-Options', 'nosniff')
            if svc.profile['services'][svc.name].get('public_edge'):
                self.send_header('Content-Security-Policy', WEB_CSP)
                self.send_header('X-Frame-Options', 'DENY')
                self.send_header('Referrer-Policy', 'no-referrer')
                proto = self.headers.get('X-Forwarded-Proto', '').split(',')[0].strip().lower()
                if proto == 'https':
                    self.send_header('Strict-Transport-Security', WEB_HSTS)
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != 'HEAD':
                self.wfile.write(body)
            elapsed = (time.monotonic() - self.t0) * 1000.0
            log('%s: %s: %s "%s %s" %d %d %.1fms' % (
                PREFIX, svc.name, self.client_address[0].replace('::ffff:', ''), printable(self.command, 10),
                printable(self.path.split('?', 1)[0], 120), status, len(body), elapsed))

        def unauthorized(self):
            self.send(401, {'error': 'unauthorized'}, extra={'WWW-Authenticate': 'Bearer'})

        def do_GET(self):
            self.t0 = time.monotonic()
            with svc.lock:
                svc.requests += 1
            path = self.path.split('?', 1)[0]
            if path == '/health':
                return self.send(200, {'status': 'ok'})
            if path == '/ready':
                reason = svc.readiness()
                if reason:
                    return self.send(503, svc.unready_body(reason))
                return self.send(200, {'status': 'ready'})
            if path == '/metrics' and svc.reads('metricsBearer'):
                if svc.published and not self.bearer_ok('metricsBearer'):
                    return self.unauthorized()
                body = ('# HELP caracal_standin_up The stand-in is running.\n'
                        '# TYPE caracal_standin_up gauge\n'
                        'caracal_standin_up{service="%s"} 1\n'
                        '# TYPE caracal_standin_requests_total counter\n'
                        'caracal_standin_requests_total{service="%s"} %d\n') % (svc.name, svc.name, svc.requests)
                return self.send(200, body.encode(), ctype='text/plain; version=0.0.4')
            if path == '/admin/ping' and svc.reads('caracalAdminToken'):
                if not self.bearer_ok('caracalAdminToken'):
                    return self.unauthorized()
                return self.send(200, {'status': 'ok', 'service': svc.name})
            if path == '/coordinator/ping' and svc.reads('caracalCoordinatorToken'):
                if not self.bearer_ok('caracalCoordinatorToken'):
                    return self.unauthorized()
                return self.send(200, {'status': 'ok', 'service': svc.name})
            if path == '/control/ping' and svc.profile['services'][svc.name].get('control_gate'):
                gate = os.path.join(svc.profile['control_gate_mount'], svc.profile['control_gate_file'])
                if not os.path.isfile(gate):
                    return self.send(503, {'status': 'unavailable', 'reason': 'control is disabled (no %s)' % gate})
                if not self.bearer_ok('caracalAdminToken', var_index=-1):
                    return self.unauthorized()
                return self.send(200, {'status': 'ok', 'service': svc.name})
            jwks = svc.profile['services'][svc.name].get('jwks_path')
            if jwks and path == jwks:
                # One signing key whose id follows the key material the STS holds (never the value).
                return self.send(200, {'keys': [{'kty': 'OKP', 'crv': 'Ed25519', 'use': 'sig', 'alg': 'EdDSA',
                                                 'kid': svc.fingerprints().get('gatewayStsHmacKey', 'sts'),
                                                 'x': 'c3RhbmQtaW4tc2lnbmluZy1rZXktbm90LWEtcmVhbC1rZXk'}]})
            if path == '/standin/fingerprints':
                return self.send(200, svc.fingerprints())
            if path == '/standin/info':
                return self.send(200, {'service': svc.name, 'mode': svc.mode, 'port': svc.port,
                                       'profile': svc.profile['name'], 'uid': os.getuid(),
                                       'gid': os.getgid(), 'started': svc.started})
            if path == '/' and svc.profile['services'][svc.name].get('public_edge'):
                return self.send(200, WEB_PAGE, ctype='text/html; charset=utf-8')
            return self.send(404, {'error': 'not found'})

        do_HEAD = do_GET

        def do_other(self):
            self.t0 = time.monotonic()
            self.send(405, {'error': 'method not allowed'}, extra={'Allow': 'GET, HEAD'})

        do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_other

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class DualStackServer(Server):
    """Listens on every IPv6 and IPv4 address of the container."""
    address_family = socket.AF_INET6

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super(DualStackServer, self).server_bind()


def listen(port, handler):
    """Bind all container interfaces: dual-stack when the kernel has IPv6, else IPv4."""
    if socket.has_ipv6:
        try:
            return DualStackServer(('::', port), handler), '[::]:%d' % port
        except OSError:
            pass
    return Server(('0.0.0.0', port), handler), '0.0.0.0:%d' % port


def refuse(service, reason):
    sys.stderr.write('%s: refusing to start: %s: %s\n' % (PREFIX, service, reason))
    sys.stderr.flush()
    sys.exit(1)


def main(argv=None, env=None):
    argv = list(sys.argv if argv is None else argv)
    env = dict(os.environ if env is None else env)
    try:
        profile = load_profile(env)
    except Exception as exc:  # noqa: BLE001
        refuse('?', 'contract: %s' % printable(exc, 200))
    try:
        service = select_service(profile, argv)
    except Refusal as exc:
        refuse('?', exc)
    try:
        mode = resolve_mode(profile, env)
        check_fail_open(profile, env, mode)
        held = resolve_secrets(profile, service, env, mode)
        check_pins(profile, service, env, held)
        port = resolve_port(profile, service, env)
    except Refusal as exc:
        refuse(service, exc)
    svc = Service(profile, service, mode, held, port)
    try:
        server, where = listen(port, make_handler(svc))
    except OSError as exc:
        refuse(service, 'cannot listen on port %d: %s' % (port, exc.strerror or exc))

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log('%s: %s listening on %s (mode %s, profile %s, uid %d)' % (
        PREFIX, service, where, mode, profile['name'], os.getuid()))
    server.serve_forever(poll_interval=0.5)
    server.server_close()
    log('%s: %s stopped' % (PREFIX, service))
    return 0


if __name__ == '__main__':
    sys.exit(main())
