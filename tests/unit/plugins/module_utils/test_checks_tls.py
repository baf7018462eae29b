# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""TLS checks: ClientHello parsing, protocol verdicts, certificates, headers, redirect."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import ipaddress
import shutil
import ssl
import subprocess

import pytest

from ansible_collections.caracal.hardened.plugins.module_utils import _checks_host as host
from ansible_collections.caracal.hardened.plugins.module_utils import _checks_tls as tls
from ansible_collections.caracal.hardened.plugins.module_utils._checks import FAIL, PASS

x509 = pytest.importorskip('cryptography.x509')
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

NOW = datetime.datetime(2026, 7, 10, 12, 0, 0, tzinfo=datetime.timezone.utc)
UTC = datetime.timezone.utc


def make_cert(names=('caracal.test',), ips=(), days_before=1, days_after=90, now=NOW, cn='caracal.test'):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'Caracal test CA')])
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
               .serial_number(0x1234).not_valid_before(now - datetime.timedelta(days=days_before))
               .not_valid_after(now + datetime.timedelta(days=days_after)))
    sans = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hashes.SHA256()), key


def client_hello(protocol=None):
    ctx = host.tls_context(protocol)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname='caracal.test')
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


# ---------------------------------------------------------------- protocols

def test_parse_client_hello_of_a_modern_client():
    hello = tls.parse_client_hello(client_hello())
    assert hello['client_version'] == 'TLSv1.2'
    assert 'TLSv1.3' in hello['supported_versions'] and 'TLSv1.2' in hello['supported_versions']
    assert tls.offers(hello, 'TLSv1.3') and not tls.offers(hello, 'TLSv1')


def test_parse_client_hello_pinned_to_tls10():
    offered, error = host.what_client_offers('TLSv1', 'caracal.test')
    if not offered:
        pytest.skip('the local OpenSSL cannot offer TLS 1.0 here: %s' % error)
    hello = tls.parse_client_hello(client_hello('TLSv1'))
    assert hello['client_version'] == 'TLSv1' and hello['supported_versions'] == []
    assert tls.offers(hello, 'TLSv1') and not tls.offers(hello, 'TLSv1.2')


def test_parse_client_hello_refuses_other_records():
    with pytest.raises(ValueError):
        tls.parse_client_hello(b'\x17\x03\x03\x00\x05hello')


@pytest.mark.filterwarnings('ignore::DeprecationWarning')
def test_a_library_that_cannot_offer_tls10_is_detected(monkeypatch):
    real = host.tls_context

    def no_tls10(protocol=None):
        ctx = real(protocol)
        ctx.options |= ssl.OP_NO_TLSv1 | ssl.OP_NO_TLSv1_1
        return ctx
    monkeypatch.setattr(host, 'tls_context', no_tls10)
    offered, error = host.what_client_offers('TLSv1', 'caracal.test')
    assert offered is False and error


GOOD = {
    'TLSv1': {'offered': True, 'accepted': False, 'error': 'TLSV1_ALERT_PROTOCOL_VERSION'},
    'TLSv1.1': {'offered': True, 'accepted': False, 'error': 'TLSV1_ALERT_PROTOCOL_VERSION'},
    'TLSv1.2': {'offered': True, 'accepted': True, 'negotiated': 'TLSv1.2'},
    'TLSv1.3': {'offered': True, 'accepted': True, 'negotiated': 'TLSv1.3'},
}


def test_protocols_compliant():
    rec = tls.check_protocols(GOOD, '127.0.0.1:443', 'OpenSSL 3.0.19')
    assert rec['status'] == PASS
    assert rec['evidence']['probes']['TLSv1']['error'] == 'TLSV1_ALERT_PROTOCOL_VERSION'


def test_tls10_enabled_fails():
    probes = dict(GOOD, TLSv1={'offered': True, 'accepted': True, 'negotiated': 'TLSv1'})
    rec = tls.check_protocols(probes, '127.0.0.1:443')
    assert rec['findings'] == ['TLSv1 is accepted by 127.0.0.1:443 (negotiated TLSv1)']


def test_tls12_refused_fails():
    probes = dict(GOOD, **{'TLSv1.2': {'offered': True, 'accepted': False, 'error': 'TLSV1_ALERT_PROTOCOL_VERSION'}})
    rec = tls.check_protocols(probes, '127.0.0.1:443')
    assert rec['findings'] == ['TLSv1.2 is refused by 127.0.0.1:443 (TLSV1_ALERT_PROTOCOL_VERSION)']


def test_untestable_tls10_is_reported_never_passed():
    probes = dict(GOOD, TLSv1={'offered': False, 'offer_error': 'NO_PROTOCOLS_AVAILABLE'})
    rec = tls.check_protocols(probes, '127.0.0.1:443', 'OpenSSL 3.9.9')
    assert rec['status'] == FAIL
    assert rec['findings'] == [
        "TLSv1 could not be tested: the local TLS library (OpenSSL 3.9.9) does not offer it (NO_PROTOCOLS_AVAILABLE); "
        "the edge's answer to TLSv1 is unknown (test from another client, e.g. openssl s_client -tls1)"]


def test_untestable_tls13_is_only_evidence():
    probes = dict(GOOD, **{'TLSv1.3': {'offered': False, 'offer_error': 'no TLS 1.3'}})
    assert tls.check_protocols(probes, '127.0.0.1:443')['status'] == PASS


# ---------------------------------------------------------------- certificates

def test_valid_certificate_passes():
    cert, _key = make_cert(names=('caracal.test', '*.caracal.test'))
    rec = tls.check_certificate(tls.certificate_facts_crypto(cert), 'caracal.test', NOW, 30, '127.0.0.1:443')
    assert rec['status'] == PASS, rec['findings']
    assert rec['evidence']['days_left'] == 90.0 and rec['evidence']['dns_names'] == ['caracal.test', '*.caracal.test']
    assert tls.check_certificate(tls.certificate_facts_crypto(cert), 'sts.caracal.test', NOW)['status'] == PASS


def test_expired_certificate_fails():
    cert, _key = make_cert(days_before=100, days_after=-3)
    rec = tls.check_certificate(tls.certificate_facts_crypto(cert), 'caracal.test', NOW)
    assert rec['findings'] == ['the certificate expired on 2026-07-07T12:00:00Z']


def test_certificate_expiring_soon_fails():
    cert, _key = make_cert(days_after=12)
    rec = tls.check_certificate(tls.certificate_facts_crypto(cert), 'caracal.test', NOW, 30)
    assert rec['findings'] == ['the certificate expires in 12.0 days (on 2026-07-22T12:00:00Z), less than 30']


def test_not_yet_valid_certificate_fails():
    cert, _key = make_cert(days_before=-2)
    rec = tls.check_certificate(tls.certificate_facts_crypto(cert), 'caracal.test', NOW)
    assert rec['findings'] == ['the certificate is not valid before 2026-07-12T12:00:00Z']


def test_certificate_not_covering_the_host_fails():
    cert, _key = make_cert(names=('other.test', '*.caracal.test'))
    rec = tls.check_certificate(tls.certificate_facts_crypto(cert), 'caracal.test', NOW)
    assert rec['findings'] == ['the certificate does not cover caracal.test (names: other.test, *.caracal.test)']
    deep = tls.check_certificate(tls.certificate_facts_crypto(cert), 'a.b.caracal.test', NOW)
    assert deep['status'] == FAIL


def test_ip_names_and_cn_fallback():
    cert, _key = make_cert(names=(), ips=('127.0.0.1',), cn='127.0.0.1')
    facts = tls.certificate_facts_crypto(cert)
    assert tls.covers(facts, '127.0.0.1') and not tls.covers(facts, '127.0.0.2')
    cert, _key = make_cert(names=(), cn='legacy.test')
    assert tls.covers(tls.certificate_facts_crypto(cert), 'legacy.test')


def test_chain_verification_failure_is_a_finding():
    cert, _key = make_cert()
    rec = tls.check_certificate(tls.certificate_facts_crypto(cert), 'caracal.test', NOW,
                                chain={'verified': False, 'error': 'self-signed certificate', 'ca_path': '/ca.pem'})
    assert rec['findings'] == ['the chain does not verify against /ca.pem: self-signed certificate']


def test_no_certificate_fails():
    assert tls.check_certificate(None, 'caracal.test', NOW, endpoint='x:443')['findings'] == ['x:443 presented no certificate']


@pytest.mark.skipif(not shutil.which('openssl'), reason='openssl is not installed')
def test_openssl_text_gives_the_same_facts_as_cryptography():
    cert, _key = make_cert(names=('caracal.test', 'sts.caracal.test'), ips=('127.0.0.1',), days_after=40,
                           now=datetime.datetime.now(UTC).replace(microsecond=0))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    out = subprocess.run(['openssl', 'x509', '-noout', '-subject', '-issuer', '-startdate', '-enddate', '-serial',
                          '-ext', 'subjectAltName', '-nameopt', 'RFC2253'], input=pem, stdout=subprocess.PIPE,
                         check=True).stdout.decode()
    text = tls.certificate_facts_openssl(out)
    crypto = tls.certificate_facts_crypto(cert)
    for key in ('dns_names', 'ip_addresses', 'not_before', 'not_after', 'common_name', 'serial'):
        assert text[key] == crypto[key], key
    assert text['source'] == 'openssl'


def test_openssl_text_sample():
    out = ('subject=CN=caracal.test\nissuer=CN=Caracal internal CA\nnotBefore=Jul  1 09:00:00 2026 GMT\n'
           'notAfter=Jul 20 09:00:00 2026 GMT\nserial=0A1B\nX509v3 Subject Alternative Name: \n'
           '    DNS:caracal.test, DNS:sts.caracal.test, IP Address:127.0.0.1\n')
    facts = tls.certificate_facts_openssl(out)
    assert facts['dns_names'] == ['caracal.test', 'sts.caracal.test'] and facts['ip_addresses'] == ['127.0.0.1']
    assert facts['not_after'] == datetime.datetime(2026, 7, 20, 9, 0, tzinfo=UTC)
    rec = tls.check_certificate(facts, 'caracal.test', NOW)
    assert rec['findings'] == ['the certificate expires in 9.9 days (on 2026-07-20T09:00:00Z), less than 30']


# ---------------------------------------------------------------- headers

HEADERS = [
    ('Server', 'nginx'),
    ('Strict-Transport-Security', 'max-age=63072000'),
    ('Content-Security-Policy', "default-src 'self'; frame-ancestors 'none'; base-uri 'self'"),
    ('X-Frame-Options', 'DENY'),
    ('X-Content-Type-Options', 'nosniff'),
    ('Referrer-Policy', 'no-referrer'),
]


def test_required_headers_pass():
    rec = tls.check_headers(HEADERS, endpoint='127.0.0.1:443', status=200)
    assert rec['status'] == PASS, rec['findings']


@pytest.mark.parametrize('name,value,finding', [
    ('X-Frame-Options', None, 'x-frame-options is missing'),
    ('X-Frame-Options', 'SAMEORIGIN', 'x-frame-options is SAMEORIGIN, expected DENY'),
    ('Strict-Transport-Security', None, 'strict-transport-security is missing'),
    ('Strict-Transport-Security', 'max-age=300', 'strict-transport-security max-age=300 is below 31536000'),
    ('Content-Security-Policy', "default-src 'self'",
     "content-security-policy lacks frame-ancestors 'none' (has: no frame-ancestors directive)"),
    ('Content-Security-Policy', "frame-ancestors 'self'", "content-security-policy lacks frame-ancestors 'none' (has: 'self')"),
    ('X-Content-Type-Options', None, 'x-content-type-options is missing'),
    ('Referrer-Policy', 'origin', 'referrer-policy is origin, expected no-referrer'),
])
def test_header_defects(name, value, finding):
    headers = [(k, v) for k, v in HEADERS if k != name] + ([(name, value)] if value is not None else [])
    rec = tls.check_headers(headers)
    assert rec['findings'] == [finding]


def test_conflicting_duplicate_header_fails():
    rec = tls.check_headers(HEADERS + [('x-frame-options', 'SAMEORIGIN')])
    assert 'x-frame-options is sent 2 times with different values' in rec['findings']
    assert tls.check_headers(HEADERS + [('X-Frame-Options', 'deny')])['status'] == PASS


def test_no_https_answer_fails():
    rec = tls.check_headers([], endpoint='127.0.0.1:443', error='timed out')
    assert rec['findings'] == ['no HTTPS response from 127.0.0.1:443: timed out']


# ---------------------------------------------------------------- redirect

def test_redirect():
    assert tls.check_redirect(301, 'https://caracal.test/', 'caracal.test')['status'] == PASS
    assert tls.check_redirect(None, None, 'caracal.test', refused=True)['status'] == PASS
    assert tls.check_redirect(200, None, 'caracal.test', '127.0.0.1:80')['findings'] == [
        'plain HTTP at 127.0.0.1:80 answers 200 instead of redirecting to HTTPS']
    assert tls.check_redirect(302, 'http://caracal.test/', 'caracal.test', '127.0.0.1:80')['findings'] == [
        'plain HTTP at 127.0.0.1:80 redirects to http://caracal.test/, not to an https URL']


@pytest.mark.parametrize('pattern,name,ok', [
    ('caracal.test', 'CARACAL.test.', True), ('*.caracal.test', 'sts.caracal.test', True),
    ('*.caracal.test', 'caracal.test', False), ('*.test', 'caracal.test', False), ('s*.caracal.test', 'sts.caracal.test', False),
])
def test_name_matching(pattern, name, ok):
    assert tls.name_matches(pattern, name) is ok
