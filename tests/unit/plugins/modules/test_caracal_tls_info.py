# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""caracal.hardened.caracal_tls_info against real TLS endpoints on loopback.

Each test starts an HTTPS server in a thread (Python's ssl, the protocol floor and the
certificate of the test) and a plain HTTP server, and runs the module against them: the
handshakes, the certificate and the headers are measured for real.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import http.server
import os
import ssl
import sys
import threading
import warnings

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'module_utils'))

from ansible_collections.caracal.hardened.plugins.module_utils import _checks_host  # noqa: E402
from ansible_collections.caracal.hardened.plugins.modules import caracal_tls_info as mod  # noqa: E402

from test_checks_fixtures import record_of, run_module, statuses  # noqa: E402
from test_checks_tls import make_cert  # noqa: E402

pytest.importorskip('cryptography')
from cryptography.hazmat.primitives import serialization  # noqa: E402

GOOD_HEADERS = (
    ('Strict-Transport-Security', 'max-age=63072000'),
    ('Content-Security-Policy', "default-src 'self'; frame-ancestors 'none'"),
    ('X-Frame-Options', 'DENY'),
    ('X-Content-Type-Options', 'nosniff'),
    ('Referrer-Policy', 'no-referrer'),
)


def _handler(headers, redirect=None):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            if redirect:
                self.send_response(301)
                self.send_header('Location', redirect)
            else:
                self.send_response(200)
                for key, value in headers:
                    self.send_header(key, value)
            self.send_header('Content-Length', '0')
            self.end_headers()

        def log_message(self, *args):
            pass
    return Handler


class QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # refused handshakes are what several tests provoke


class Edge(object):
    """An HTTPS server and a plain HTTP server on loopback."""

    def __init__(self, tmp_path, minimum=ssl.TLSVersion.TLSv1_2, headers=GOOD_HEADERS, redirect='https://caracal.test/',
                 **cert_args):
        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        cert, key = make_cert(now=now, **cert_args)
        cert_path, key_path = str(tmp_path / 'edge.crt'), str(tmp_path / 'edge.key')
        with open(cert_path, 'wb') as handle:
            handle.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(key_path, 'wb') as handle:
            handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert_path, key_path)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', DeprecationWarning)
            ctx.minimum_version = minimum
        if minimum < ssl.TLSVersion.TLSv1_2:
            ctx.set_ciphers('ALL:@SECLEVEL=0')
        self.https = QuietServer(('127.0.0.1', 0), _handler(headers))
        self.https.socket = ctx.wrap_socket(self.https.socket, server_side=True, do_handshake_on_connect=False)
        self.http = QuietServer(('127.0.0.1', 0), _handler([], redirect))
        for server in (self.https, self.http):
            threading.Thread(target=server.serve_forever, daemon=True).start()
        self.port = self.https.server_address[1]
        self.http_port = self.http.server_address[1]
        self.cert_path = cert_path

    def args(self, **more):
        return dict({'server_name': 'caracal.test', 'address': '127.0.0.1', 'port': self.port,
                     'http_port': self.http_port, 'timeout': 3}, **more)

    def close(self):
        for server in (self.https, self.http):
            server.shutdown()
            server.server_close()


@pytest.fixture
def edge(tmp_path):
    made = []

    def start(**kwargs):
        server = Edge(tmp_path, **kwargs)
        made.append(server)
        return server
    yield start
    for server in made:
        server.close()


def tls10_offered():
    return _checks_host.what_client_offers('TLSv1', 'caracal.test')[0]


@pytest.mark.parametrize('check', [False, True])
def test_compliant_edge_passes(monkeypatch, edge, check):
    if not tls10_offered():
        pytest.skip('the local OpenSSL cannot offer TLS 1.0: tls.protocols fails by design here')
    server = edge()
    kind, result = run_module(monkeypatch, mod.main, server.args(), check=check)
    assert kind == 'exit' and result['changed'] is False
    assert set(statuses(result).values()) == {'pass'}, [r['findings'] for r in result['checks']]
    probes = record_of(result, 'tls.protocols')['evidence']['probes']
    assert probes['TLSv1']['accepted'] is False and probes['TLSv1.2']['negotiated'] == 'TLSv1.2'
    assert record_of(result, 'tls.certificate')['evidence']['dns_names'] == ['caracal.test']


def test_tls10_enabled_fails(monkeypatch, edge):
    if not tls10_offered():
        pytest.skip('the local OpenSSL cannot offer TLS 1.0')
    server = edge(minimum=ssl.TLSVersion.TLSv1)
    kind, result = run_module(monkeypatch, mod.main, server.args(checks=['tls.protocols']))
    rec = result['checks'][0]
    assert rec['status'] == 'fail'
    assert 'TLSv1 is accepted by 127.0.0.1:%d (negotiated TLSv1)' % server.port in rec['findings']


def test_untestable_tls10_fails_precisely(monkeypatch, edge):
    server = edge()
    real = _checks_host.what_client_offers
    monkeypatch.setattr(_checks_host, 'what_client_offers',
                        lambda p, n: (False, 'NO_PROTOCOLS_AVAILABLE') if p in ('TLSv1', 'TLSv1.1') else real(p, n))
    kind, result = run_module(monkeypatch, mod.main, server.args(checks=['tls.protocols']))
    rec = result['checks'][0]
    assert rec['status'] == 'fail' and len(rec['findings']) == 2
    assert rec['findings'][0].startswith('TLSv1 could not be tested: the local TLS library (%s) does not offer it '
                                         '(NO_PROTOCOLS_AVAILABLE)' % ssl.OPENSSL_VERSION)


def test_expired_certificate_fails(monkeypatch, edge):
    server = edge(days_before=400, days_after=-1)
    kind, result = run_module(monkeypatch, mod.main, server.args(checks=['tls.certificate']))
    rec = result['checks'][0]
    assert rec['status'] == 'fail' and rec['findings'][0].startswith('the certificate expired on ')


def test_wrong_name_and_unverified_chain_fail(monkeypatch, edge, tmp_path):
    server = edge(names=('other.test',))
    kind, result = run_module(monkeypatch, mod.main, server.args(checks=['tls.certificate'], ca_path=server.cert_path))
    findings = result['checks'][0]['findings']
    assert findings[0] == 'the certificate does not cover caracal.test (names: other.test)'
    assert findings[1].startswith('the chain does not verify against %s' % server.cert_path)


def test_missing_headers_and_plain_http_fail(monkeypatch, edge):
    server = edge(headers=GOOD_HEADERS[:2] + (('X-Frame-Options', 'SAMEORIGIN'),), redirect=None)
    kind, result = run_module(monkeypatch, mod.main, server.args(checks=['tls.headers', 'tls.redirect']))
    assert record_of(result, 'tls.headers')['findings'] == [
        'x-content-type-options is missing', 'referrer-policy is missing', 'x-frame-options is SAMEORIGIN, expected DENY']
    assert record_of(result, 'tls.redirect')['findings'] == [
        'plain HTTP at 127.0.0.1:%d answers 200 instead of redirecting to HTTPS' % server.http_port]


def test_no_edge(monkeypatch, edge):
    server = edge()
    port = server.port
    server.close()
    kind, result = run_module(monkeypatch, mod.main, {'server_name': 'caracal.test', 'port': port, 'timeout': 2})
    assert set(statuses(result).values()) == {'fail'}
    assert result['checks'][0]['findings'] == ['no TLS endpoint answers at 127.0.0.1:%d (connection refused)' % port]
    kind, result = run_module(monkeypatch, mod.main, {'server_name': 'caracal.test', 'port': port, 'edge_expected': False})
    assert set(statuses(result).values()) == {'not_applicable'}
