# -*- coding: utf-8 -*-
"""Verify the tls role (nginx TLS edge) on Debian 12 and 13.

The scenario converged both hosts with the internal CA, the console on caracal.test, the STS
on sts.caracal.test (stand-in on 127.0.0.1:8080) and the Gateway on gateway.caracal.test
(nothing listens on 127.0.0.1:8081: the edge's own 502 must carry the headers too).

Every client runs inside the hosts against 127.0.0.1. The tests that run playbooks come last
and are ordered: each starts from the state the previous one left, and the last ones put the
scenario's configuration back. Every extra playbook runs at -vvv (most with --diff) and its
output is searched for the body of every private key the test knows.
"""

import datetime
import json
import os
import re
import shlex

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from caracal_molecule import changed_count, full_run_skipped, role_play, run_playbook, stamp_reasons, tree_digest

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, '..', 'vars', 'main.yml')) as _fh:
    SCENARIO_VARS = yaml.safe_load(_fh)

WEB, STS, GATEWAY = 'caracal.test', 'sts.caracal.test', 'gateway.caracal.test'
NAMES = [WEB, STS, GATEWAY]
PKI = '/etc/ssl/caracal'
STATE = '/var/lib/caracal-tls'
INTERNAL_CA = PKI + '/certs/caracal-internal-ca.crt'
LIVE_KEY = PKI + '/private/edge.key'
LIVE_TREES = ('/etc/nginx', PKI)
ALL_TREES = LIVE_TREES + (STATE,)
SECURITY_HEADERS = {
    'strict-transport-security': 'max-age=63072000',
    'x-frame-options': 'DENY',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
}

# Private key material the tests know about; every playbook output is searched for it.
KNOWN_KEYS = []


# ------------------------------------------------------------------ helpers

def secret_fragments(pem):
    """What a leak of the private key ``pem`` would show.

    The base64 lines of the PEM body, except those that only encode public data (an EC or
    RSA private key embeds its public half, which the certificate shows legitimately), and
    the private number itself in decimal and hex (as a key "info" dump would print it).
    """
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    public_body = ''.join(line for line in public.splitlines() if not line.startswith('-----'))
    fragments = [line for line in pem.splitlines()
                 if line and not line.startswith('-----') and len(line) >= 24 and line not in public_body]
    numbers = key.private_numbers()
    secret = getattr(numbers, 'private_value', None) or getattr(numbers, 'd', None)
    fragments += [str(secret), '%x' % secret, ':'.join('%02x' % b for b in secret.to_bytes((secret.bit_length() + 7) // 8, 'big'))]
    assert fragments
    return fragments


def assert_no_key_material(output):
    for pem in KNOWN_KEYS:
        for fragment in secret_fragments(pem):
            assert fragment not in output, 'private key material appears in the playbook output'


def apply(overrides=None, check=False, diff=True, verbosity=3):
    """Run the role on every host with the scenario's variables plus ``overrides``."""
    role_vars = dict(SCENARIO_VARS, **(overrides or {}))
    # The role gathers the few facts it needs itself.
    rc, out = run_playbook(role_play('caracal.hardened.tls', role_vars, gather_facts=False), check=check, diff=diff,
                           verbosity=verbosity)
    assert_no_key_material(out)
    return rc, out


def remember_internal_keys(hosts):
    for h in hosts.values():
        for path in (STATE + '/ca/ca.key', STATE + '/internal/edge.key'):
            pem = h.file(path).content_string
            if pem not in KNOWN_KEYS:
                KNOWN_KEYS.append(pem)


def digests(hosts, trees=ALL_TREES):
    return {name: tree_digest(h, *trees) for name, h in hosts.items()}


def served(host, name=WEB):
    """Fingerprint and serial of the certificate nginx serves for ``name``."""
    out = host.check_output(
        'echo | timeout 10 openssl s_client -connect 127.0.0.1:443 -servername %s 2>/dev/null'
        ' | openssl x509 -noout -fingerprint -sha256 -serial' % name)
    return out.strip()


def nginx_pid(host):
    return host.check_output('systemctl show -p MainPID --value nginx').strip()


def handshake(host, version, name=WEB, port=443):
    """A TLS handshake from a client willing to speak every protocol version."""
    return host.run(
        "echo | timeout 10 openssl s_client -brief -connect 127.0.0.1:%d -servername %s -%s"
        " -cipher 'DEFAULT:@SECLEVEL=0'" % (port, name, version))


HTTP_CLIENT = r'''
import http.client, json, socket, ssl, sys
name, path, port, scheme, extra = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], json.loads(sys.argv[5])
sock = socket.create_connection(("127.0.0.1", port), timeout=10)
if scheme == "https":
    ctx = ssl.create_default_context(cafile=sys.argv[6])
    sock = ctx.wrap_socket(sock, server_hostname=name)
lines = ["GET %s HTTP/1.1" % path, "Host: %s" % name, "Connection: close"]
lines += ["%s: %s" % kv for kv in extra.items()]
sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
resp = http.client.HTTPResponse(sock)
resp.begin()
body = resp.read().decode("utf-8", "replace")
print(json.dumps({"status": resp.status, "headers": resp.getheaders(), "body": body}))
'''


def request(host, name=WEB, path='/', scheme='https', headers=None, cafile=INTERNAL_CA):
    port = 443 if scheme == 'https' else 80
    argv = ['python3', '-c', HTTP_CLIENT, name, path, str(port), scheme, json.dumps(headers or {}), cafile]
    out = host.check_output(' '.join(shlex.quote(a) for a in argv))
    result = json.loads(out)
    result['all'] = {}
    for key, value in result['headers']:
        result['all'].setdefault(key.lower(), []).append(value)
    return result


# ------------------------------------------------------------------ test PKI (controller side)

def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(cn, key, issuer=None, issuer_key=None, ca=False, names=(), days=(-1, 60), ocsp=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(_name(cn))
               .issuer_name(issuer.subject if issuer else _name(cn))
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now + datetime.timedelta(days=days[0]))
               .not_valid_after(now + datetime.timedelta(days=days[1]))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    if ocsp:
        builder = builder.add_extension(x509.AuthorityInformationAccess([
            x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp))]),
            critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def _pem(obj):
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM).decode()
    return obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


@pytest.fixture(scope='module')
def pki():
    """An operator PKI: root -> intermediate -> leaf, plus broken variants."""
    root_key, int_key, leaf_key, other_key, old_key = [ec.generate_private_key(ec.SECP256R1()) for dummy in range(5)]
    root = _issue('Molecule Root CA', root_key, ca=True, days=(-1, 3650))
    inter = _issue('Molecule Intermediate CA', int_key, root, root_key, ca=True, days=(-1, 1825))
    # An OCSP responder on a loopback port nothing listens on: stapling gets configured, never fetched.
    leaf = _issue(WEB, leaf_key, inter, int_key, names=NAMES, ocsp='http://127.0.0.1:9/ocsp')
    expired = _issue(WEB, old_key, inter, int_key, names=NAMES, days=(-90, -1))
    partial = _issue(WEB, leaf_key, inter, int_key, names=[WEB])
    soon = _issue(WEB, leaf_key, inter, int_key, names=NAMES, days=(-80, 10))
    material = {
        'root': _pem(root), 'intermediate': _pem(inter), 'leaf': _pem(leaf), 'leaf_key': _pem(leaf_key),
        'other_key': _pem(other_key), 'expired': _pem(expired), 'old_key': _pem(old_key),
        'partial': _pem(partial), 'soon': _pem(soon),
        'leaf_sha256': leaf.fingerprint(hashes.SHA256()).hex(),
    }
    for name in ('leaf_key', 'other_key', 'old_key'):
        KNOWN_KEYS.append(material[name])
    return material


def operator_vars(pki, **changes):
    values = {
        'caracal_tls_certificate_source': 'operator',
        'caracal_tls_certificate': pki['leaf'],
        'caracal_tls_certificate_chain': pki['intermediate'],
        'caracal_tls_ca_certificate': pki['root'],
        'caracal_tls_private_key': pki['leaf_key'],
    }
    values.update(changes)
    return values


# ------------------------------------------------------------------ the converged edge

def test_nginx_from_debian_is_running(host):
    assert host.package('nginx').is_installed
    assert host.package('openssl').is_installed
    nginx = host.service('nginx')
    assert nginx.is_running and nginx.is_enabled


def test_listeners(host):
    for address in ('tcp://0.0.0.0:443', 'tcp://0.0.0.0:80'):
        assert host.socket(address).is_listening, address
    # The stand-in web tier stays on loopback, behind the edge.
    assert host.socket('tcp://127.0.0.1:3001').is_listening
    assert not host.socket('tcp://0.0.0.0:3001').is_listening


@pytest.mark.parametrize('path,mode', [
    (STATE, 0o700),
    (STATE + '/ca', 0o700),
    (STATE + '/ca/ca.key', 0o600),
    (STATE + '/internal', 0o700),
    (STATE + '/internal/edge.key', 0o600),
    (STATE + '/staging', 0o700),
    (STATE + '/staging/edge.key', 0o600),
    (PKI + '/private', 0o700),
    (LIVE_KEY, 0o600),
    (PKI + '/certs/edge.crt', 0o644),
    (INTERNAL_CA, 0o644),
])
def test_key_material_is_root_only(host, path, mode):
    f = host.file(path)
    assert f.exists, path
    assert (f.user, f.group) == ('root', 'root'), path
    assert f.mode == mode, '%s has mode %o' % (path, f.mode)


def test_private_keys_are_0600_or_0400_and_root_owned(host):
    out = host.check_output("find %s %s -name '*.key' -printf '%%m %%u %%g %%p\\n'" % (PKI, STATE))
    assert out
    for line in out.splitlines():
        mode, user, group, path = line.split(' ', 3)
        assert mode in ('600', '400') and user == 'root' and group == 'root', line


@pytest.mark.parametrize('version', ['tls1', 'tls1_1'])
def test_old_protocols_are_rejected(host, version):
    # Control: the same client does complete this protocol with a server that allows it, so
    # the refusal below is the edge's, not the client's.
    control = host.run(
        "cd \"$(mktemp -d)\" && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
        " -keyout k.pem -out c.pem -days 1 -subj /CN=control >/dev/null 2>&1"
        " && { timeout 15 openssl s_server -accept 127.0.0.1:4433 -cert c.pem -key k.pem -www -naccept 1"
        " -%s -cipher 'DEFAULT:@SECLEVEL=0' >/dev/null 2>&1 & sleep 1;"
        " echo | timeout 10 openssl s_client -brief -connect 127.0.0.1:4433 -%s -cipher 'DEFAULT:@SECLEVEL=0' 2>&1;"
        " wait; }" % (version, version))
    expected = {'tls1': 'TLSv1', 'tls1_1': 'TLSv1.1'}[version]
    assert re.search(r'Protocol version: %s\b' % re.escape(expected), control.stdout), control.stdout

    result = handshake(host, version)
    assert result.rc != 0
    assert 'protocol version' in (result.stdout + result.stderr)


@pytest.mark.parametrize('version,label', [('tls1_2', 'TLSv1.2'), ('tls1_3', 'TLSv1.3')])
def test_current_protocols_are_accepted(host, version, label):
    result = handshake(host, version)
    assert result.rc == 0, result.stderr
    assert 'Protocol version: %s' % label in (result.stdout + result.stderr)


def test_tls12_uses_forward_secret_aead_ciphers_only(host):
    for cipher in ('AES128-SHA', 'ECDHE-ECDSA-AES128-SHA', 'ECDHE-ECDSA-AES128-SHA256'):
        result = host.run("echo | timeout 10 openssl s_client -connect 127.0.0.1:443 -servername %s"
                          " -tls1_2 -cipher '%s:@SECLEVEL=0'" % (WEB, cipher))
        assert result.rc != 0, cipher


def test_session_tickets_are_off(host):
    result = host.run("echo | timeout 10 openssl s_client -connect 127.0.0.1:443 -servername %s -tls1_2" % WEB)
    assert result.rc == 0
    assert 'TLS session ticket lifetime hint' not in result.stdout


@pytest.mark.parametrize('name', NAMES)
def test_chain_verifies_against_the_internal_ca(host, name):
    result = host.run("echo | timeout 10 openssl s_client -connect 127.0.0.1:443 -servername %s -CAfile %s"
                      " -verify_return_error -verify_hostname %s" % (name, INTERNAL_CA, name))
    assert result.rc == 0, result.stderr
    assert 'Verify return code: 0 (ok)' in result.stdout


def test_unknown_names_get_no_certificate(host):
    for sni in ('-servername unknown.test', '-noservername'):
        result = host.run('echo | timeout 10 openssl s_client -connect 127.0.0.1:443 %s' % sni)
        assert result.rc != 0, sni
        assert 'BEGIN CERTIFICATE' not in result.stdout


def test_no_ocsp_stapling_without_a_responder(host):
    conf = host.file('/etc/nginx/caracal-edge.conf').content_string
    assert 'ssl_stapling' not in conf
    assert not host.file(PKI + '/certs/edge-trusted.pem').exists


def test_console_headers_are_sent_exactly_once(host):
    resp = request(host)
    assert resp['status'] == 200
    for name, value in SECURITY_HEADERS.items():
        assert resp['all'].get(name) == [value], (name, resp['all'].get(name))
    # The web tier's own policy is kept, and frame-ancestors 'none' is guaranteed once.
    assert resp['all']['content-security-policy'] == ["frame-ancestors 'none'; default-src 'self'"]
    assert resp['all']['server'] == ['nginx']
    assert 'x-powered-by' not in resp['all']
    assert not [h for h in resp['all'] if h.startswith('access-control-')]


def test_edge_error_pages_carry_the_headers(host):
    resp = request(host, name=GATEWAY)
    assert resp['status'] == 502
    for name, value in SECURITY_HEADERS.items():
        assert resp['all'].get(name) == [value], name
    assert resp['all']['content-security-policy'] == ["frame-ancestors 'none'"]
    assert resp['all']['server'] == ['nginx']
    assert 'nginx/' not in resp['body']


def test_forwarding_headers_keep_the_same_origin_model(host):
    resp = request(host, headers={'X-Forwarded-For': '203.0.113.7', 'Forwarded': 'for=203.0.113.7',
                                  'X-Forwarded-Proto': 'http', 'Origin': 'https://caracal.test'})
    seen = json.loads(resp['body'])
    assert seen['service'] == 'web'
    sent = seen['headers']
    assert sent['host'] == [WEB]
    assert sent['x-forwarded-proto'] == ['https']
    assert sent['x-forwarded-host'] == [WEB]
    # The edge is the first trusted hop: client-supplied forwarding headers are replaced.
    assert sent['x-forwarded-for'] == ['127.0.0.1']
    assert 'forwarded' not in sent
    # The browser's Origin reaches the web tier untouched (it enforces it on state changes).
    assert sent['origin'] == ['https://caracal.test']


def test_sts_is_served_on_its_issuer_name(host):
    resp = request(host, name=STS, path='/.well-known/jwks.json')
    assert resp['status'] == 200
    seen = json.loads(resp['body'])
    assert seen['service'] == 'sts' and seen['headers']['host'] == [STS]
    assert resp['all']['content-security-policy'] == ["frame-ancestors 'none'"]


@pytest.mark.parametrize('name,path,location', [
    (WEB, '/login?next=%2F', 'https://caracal.test/login?next=%2F'),
    (STS, '/.well-known/openid-configuration', 'https://sts.caracal.test/.well-known/openid-configuration'),
    ('unknown.test', '/x', 'https://caracal.test/'),
])
def test_http_only_redirects_to_https(host, name, path, location):
    resp = request(host, name=name, path=path, scheme='http')
    assert resp['status'] == 301
    assert resp['all']['location'] == [location]


def test_http_serves_the_acme_webroot(host):
    token = 'molecule-token-' + host.backend.host
    host.run_expect([0], 'printf %s > /var/www/acme/.well-known/acme-challenge/%s' % (token, token))
    try:
        resp = request(host, path='/.well-known/acme-challenge/' + token, scheme='http')
        assert resp['status'] == 200 and resp['body'] == token
        missing = request(host, path='/.well-known/acme-challenge/absent', scheme='http')
        assert missing['status'] == 404
    finally:
        host.run('rm -f /var/www/acme/.well-known/acme-challenge/%s' % token)


def test_configuration_is_valid_and_leaks_no_version(host):
    result = host.run('nginx -T')
    assert result.rc == 0, result.stderr
    assert re.search(r'^\s*server_tokens off;', result.stdout, re.M)
    assert not re.search(r'^\s*server_tokens on', result.stdout, re.M)
    assert 'ssl_session_tickets off;' in result.stdout
    assert re.search(r'^\s*ssl_protocols TLSv1.2 TLSv1.3;', result.stdout, re.M)


# ------------------------------------------------------------------ runs (ordered)

def test_check_mode_on_the_converged_hosts_changes_nothing(hosts):
    remember_internal_keys(hosts)
    before = digests(hosts)
    rc, out = apply(check=True)
    assert rc == 0, out[-3000:]
    assert changed_count(out) == 0
    assert digests(hosts) == before


@pytest.mark.parametrize('overrides,message', [
    ({'caracal_web_url': 'https://console.caracal.test', 'caracal_tls_web_server_names': [WEB]},
     'caracal_web_url (https://console.caracal.test) does not match what this edge serves'),
    ({'caracal_web_url': 'http://caracal.test'}, 'caracal_web_url must be the https origin'),
    ({'caracal_web_url': 'https://caracal.test:8443'}, 'does not match what this edge serves'),
    ({'caracal_sts_issuer_url': 'https://issuer.caracal.test', 'caracal_tls_sts_server_names': [STS]},
     'caracal_sts_issuer_url (https://issuer.caracal.test) does not match'),
    ({'caracal_tls_sts_enabled': False, 'caracal_sts_issuer_url': 'https://caracal.test/sts'},
     'names a host this edge serves for another service'),
], ids=['web-host', 'web-http', 'web-port', 'issuer-host', 'issuer-on-web-host'])
def test_url_name_mismatch_fails_before_anything_changes(hosts, overrides, message):
    before = digests(hosts)
    rc, out = apply(overrides)
    assert rc != 0
    assert message in ' '.join(out.split()), out[-3000:]
    assert changed_count(out) == 0
    assert digests(hosts) == before


@pytest.mark.parametrize('changes,message', [
    ({'caracal_tls_private_key': 'other_key'},
     'caracal_tls_private_key does not match caracal_tls_certificate'),
    ({'caracal_tls_certificate': 'expired', 'caracal_tls_private_key': 'old_key'},
     'caracal_tls_certificate expired on'),
    ({'caracal_tls_certificate_chain': ('root', 'intermediate'), 'caracal_tls_ca_certificate': ''},
     'the chain is not in order'),
    ({'caracal_tls_certificate': 'partial'},
     'does not cover the served name(s) sts.caracal.test, gateway.caracal.test'),
], ids=['key-mismatch', 'expired', 'chain-order', 'names'])
def test_bad_operator_material_fails_without_touching_the_edge(hosts, pki, changes, message):
    resolved = {}
    for var, ref in changes.items():
        if isinstance(ref, tuple):
            resolved[var] = ''.join(pki[r] for r in ref)
        else:
            resolved[var] = pki.get(ref, ref) if ref else ''
    before = digests(hosts)
    certs = {name: served(h) for name, h in hosts.items()}
    rc, out = apply(operator_vars(pki, **resolved))
    assert rc != 0
    text = ' '.join(out.split())
    assert message in text, out[-3000:]
    assert 'were not changed' in text
    assert changed_count(out) == 0
    assert digests(hosts) == before
    assert {name: served(h) for name, h in hosts.items()} == certs


def test_rejected_configuration_keeps_the_running_edge(hosts):
    live = digests(hosts, LIVE_TREES)
    certs = {name: served(h) for name, h in hosts.items()}
    pids = {name: nginx_pid(h) for name, h in hosts.items()}
    rc, out = apply({'caracal_tls_web_extra_config': 'caracal_not_a_directive on;'})
    assert rc != 0
    text = ' '.join(out.split())
    assert 'nginx -t rejected the new configuration' in text, out[-3000:]
    assert 'unknown directive "caracal_not_a_directive"' in text
    assert digests(hosts, LIVE_TREES) == live
    for name, h in hosts.items():
        assert h.service('nginx').is_running
        assert nginx_pid(h) == pids[name]
        assert served(h) == certs[name]
        assert request(h)['status'] == 200


def test_operator_material_goes_live_without_leaking_the_key(hosts, pki):
    pids = {name: nginx_pid(h) for name, h in hosts.items()}
    rc, out = apply(operator_vars(pki))
    assert rc == 0, out[-3000:]
    assert changed_count(out) > 0
    for name, h in hosts.items():
        assert pki['leaf_sha256'] in served(h).replace(':', '').lower()
        assert nginx_pid(h) == pids[name], 'nginx was restarted instead of reloaded'
        h.run_expect([0], 'cat > /tmp/molecule-root.pem <<"EOF"\n%sEOF' % pki['root'])
        for server_name in NAMES:
            result = h.run('echo | timeout 10 openssl s_client -connect 127.0.0.1:443 -servername %s'
                           ' -CAfile /tmp/molecule-root.pem -verify_return_error -verify_hostname %s'
                           % (server_name, server_name))
            assert result.rc == 0 and 'Verify return code: 0 (ok)' in result.stdout, result.stderr
        # Leaf and intermediate are sent; the root is not.
        chain = h.check_output('echo | timeout 10 openssl s_client -connect 127.0.0.1:443 -servername %s'
                               ' -showcerts 2>/dev/null | grep -c "BEGIN CERTIFICATE"' % WEB)
        assert chain.strip() == '2'
        key = h.file(LIVE_KEY)
        assert (key.mode, key.user, key.group) == (0o600, 'root', 'root')
        assert key.content_string.strip() == pki['leaf_key'].strip()
        # The leaf names an OCSP responder and its issuer is in the chain: stapling is configured.
        conf = h.file('/etc/nginx/caracal-edge.conf').content_string
        assert 'ssl_stapling on;' in conf and 'ssl_stapling_verify on;' in conf
        assert h.file(PKI + '/certs/edge-trusted.pem').exists


def test_operator_material_is_idempotent(hosts, pki):
    rc, out = apply(operator_vars(pki))
    assert rc == 0, out[-3000:]
    assert changed_count(out) == 0


def days_left(host):
    out = host.check_output('openssl x509 -noout -enddate -in %s/internal/edge.crt' % STATE)
    expiry = datetime.datetime.strptime(out.split('=', 1)[1].strip(), '%b %d %H:%M:%S %Y %Z')
    return (expiry - datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)).days


def internal_serial(host):
    return host.check_output('openssl x509 -noout -serial -in %s/internal/edge.crt' % STATE).strip()


def test_certificate_expiring_soon_gives_a_warning(hosts, pki):
    before = digests(hosts)
    rc, out = apply(operator_vars(pki, caracal_tls_certificate=pki['soon']), check=True)
    assert rc == 0, out[-3000:]
    assert re.search(r'WARNING: the served certificate expires in (9|10) days', ' '.join(out.split())), out[-3000:]
    assert digests(hosts) == before


def test_back_to_the_internal_ca_renews_a_due_certificate(hosts):
    """Switch back from the operator material with a renewal window longer than the internal
    certificate has left: the re-run re-issues it and nginx is reloaded, not restarted."""
    serials = {name: internal_serial(h) for name, h in hosts.items()}
    pids = {name: nginx_pid(h) for name, h in hosts.items()}
    left = max(days_left(h) for h in hosts.values())
    lifetime = left + 30
    rc, out = apply({'caracal_tls_internal_certificate_days': lifetime,
                     'caracal_tls_internal_renew_before_days': left + 5})
    assert rc == 0, out[-3000:]
    for name, h in hosts.items():
        assert internal_serial(h) != serials[name], 'the due certificate was not renewed'
        assert days_left(h) >= lifetime - 2
        assert nginx_pid(h) == pids[name], 'nginx was restarted instead of reloaded'
        assert internal_serial(h).split('=')[1].lower() in served(h).replace(':', '').lower()
        result = h.run('echo | timeout 10 openssl s_client -connect 127.0.0.1:443 -servername %s -CAfile %s'
                       ' -verify_return_error' % (WEB, INTERNAL_CA))
        assert result.rc == 0, result.stderr
        assert not h.file(PKI + '/certs/edge-trusted.pem').exists
        assert 'ssl_stapling' not in h.file('/etc/nginx/caracal-edge.conf').content_string


def test_renewed_certificate_is_kept_on_the_next_run(hosts):
    """Back on the scenario's settings (90 days, renew 30 days ahead) nothing is due."""
    certs = {name: served(h) for name, h in hosts.items()}
    rc, out = apply()
    assert rc == 0, out[-3000:]
    assert changed_count(out) == 0
    assert {name: served(h) for name, h in hosts.items()} == certs


def test_an_unchanged_edge_skips_the_full_run_and_drift_is_repaired(hosts):
    """The stamp (caracal.hardened.host_stamp) lets a no-op run skip; any drift makes it full."""
    stamp = '/var/lib/caracal-hardened/stamps/tls.json'
    rc, out = apply()
    assert rc == 0, out[-3000:]
    rc, out = apply()
    assert rc == 0, out[-3000:]
    assert changed_count(out) == 0
    assert full_run_skipped(out, 'caracal.hardened.tls'), stamp_reasons(out)
    for h in hosts.values():
        assert h.file(stamp).mode == 0o600 and h.file(stamp).user == 'root'
        # The next full run is due when the served certificate enters its renewal window (30 days).
        not_after = h.check_output('openssl x509 -noout -enddate -in %s/certs/edge.crt' % PKI).split('=', 1)[1]
        expiry = datetime.datetime.strptime(not_after, '%b %d %H:%M:%S %Y GMT').replace(tzinfo=datetime.timezone.utc)
        recorded = json.loads(h.file(stamp).content_string)['valid_until']
        assert recorded == expiry.timestamp() - 30 * 86400, (recorded, not_after)
        # Drift: the key readable by all, a line added to the live configuration.
        h.run_expect([0], 'chmod 0644 %s && echo "# drift" >> /etc/nginx/caracal-edge.conf' % LIVE_KEY)
    rc, out = apply()
    assert rc == 0, out[-3000:]
    assert not full_run_skipped(out, 'caracal.hardened.tls')
    assert changed_count(out) > 0
    for h in hosts.values():
        assert h.file(LIVE_KEY).mode == 0o600
        assert '# drift' not in h.file('/etc/nginx/caracal-edge.conf').content_string
        # A renewal date that has passed (as if the time had come) makes the next run a full one.
        h.run_expect([0], "python3 -c 'import json,sys; p=sys.argv[1]; d=json.load(open(p)); d[\"valid_until\"]=1; "
                          "json.dump(d, open(p, \"w\"))' %s" % stamp)
    rc, out = apply()
    assert rc == 0, out[-3000:]
    assert not full_run_skipped(out, 'caracal.hardened.tls')
    assert changed_count(out) == 0
    rc, out = apply()
    assert rc == 0, out[-3000:]
    assert full_run_skipped(out, 'caracal.hardened.tls'), stamp_reasons(out)


def test_a_port_another_process_holds_fails_the_run_and_the_edge_keeps_serving(hosts):
    """nginx -t passes and the reload "succeeds", but nginx keeps its old configuration."""
    port = 8088
    squatter = ('import socket, time\ns = socket.socket()\ns.bind(("0.0.0.0", %d))\n'
                's.listen()\ntime.sleep(900)' % port)
    for h in hosts.values():
        h.run_expect([0], 'systemd-run --unit caracal-test-squatter python3 -c %s' % shlex.quote(squatter))
    try:
        certs = {name: served(h) for name, h in hosts.items()}
        rc, out = apply({'caracal_tls_http_port': port})
        assert rc != 0
        text = ' '.join(out.split())
        assert 'nginx does not listen on port(s) %d' % port in text, out[-3000:]
        assert '"python3"' in text, out[-3000:]
        for name, h in hosts.items():
            assert h.service('nginx').is_running
            assert served(h) == certs[name]
            assert request(h)['status'] == 200
        # The same settings once the port is free: the files are already live, so no handler
        # fires; the role sees that nginx does not own the port and reloads it.
        for h in hosts.values():
            h.run_expect([0], 'systemctl stop caracal-test-squatter')
        rc, out = apply({'caracal_tls_http_port': port})
        assert rc == 0, out[-3000:]
        assert changed_count(out) > 0
        for h in hosts.values():
            assert h.socket('tcp://0.0.0.0:%d' % port).is_listening
            assert not h.socket('tcp://0.0.0.0:80').is_listening
    finally:
        for h in hosts.values():
            h.run('systemctl stop caracal-test-squatter')
        rc, out = apply()
        assert rc == 0, out[-3000:]
