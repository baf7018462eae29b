# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks on the live TLS edge: protocol versions, certificate, response headers, redirect.

Pure logic on parsed inputs: protocol probes (what the local TLS library offered and what
the server answered), certificate facts (from ``cryptography`` or from ``openssl x509``
text, see ``certificate_facts_*``), response header lists and the plain-HTTP answer.

This is a private module_utils (leading underscore): its API may change between minor
releases of the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import ipaddress
import re
import struct

from ansible_collections.caracal.hardened.plugins.module_utils._checks import judged, not_applicable

_UTC = datetime.timezone.utc

# Wire versions of the protocols (record and ClientHello ``legacy_version``).
WIRE_VERSIONS = {0x0300: 'SSLv3', 0x0301: 'TLSv1', 0x0302: 'TLSv1.1', 0x0303: 'TLSv1.2', 0x0304: 'TLSv1.3'}
REFUSED = ('TLSv1', 'TLSv1.1')
ACCEPTED = ('TLSv1.2',)
PROTOCOLS = ('TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3')

REQUIRED_HEADERS = ('strict-transport-security', 'content-security-policy', 'x-frame-options',
                    'x-content-type-options', 'referrer-policy')


# ---------------------------------------------------------------- protocols

def parse_client_hello(data):
    """The versions a ClientHello offers: ``{record_version, client_version, supported_versions}``.

    ``data`` is what the TLS library wrote first (one TLS record). ``supported_versions``
    is the TLS 1.3 extension's list (empty when absent, as in a TLS 1.0-1.2 only hello).
    Raises ``ValueError`` for something that is not a ClientHello.
    """
    if len(data) < 9 or data[0] != 0x16:
        raise ValueError('not a TLS handshake record')
    record_version = struct.unpack('>H', data[1:3])[0]
    body = data[5:]
    if body[0] != 0x01:
        raise ValueError('not a ClientHello')
    client_version = struct.unpack('>H', body[4:6])[0]
    pos = 6 + 32
    sid_len = body[pos]
    pos += 1 + sid_len
    cs_len = struct.unpack('>H', body[pos:pos + 2])[0]
    pos += 2 + cs_len
    comp_len = body[pos]
    pos += 1 + comp_len
    versions = []
    if pos + 2 <= len(body):
        ext_total = struct.unpack('>H', body[pos:pos + 2])[0]
        pos += 2
        end = min(len(body), pos + ext_total)
        while pos + 4 <= end:
            ext_type, ext_len = struct.unpack('>HH', body[pos:pos + 4])
            ext = body[pos + 4:pos + 4 + ext_len]
            pos += 4 + ext_len
            if ext_type == 43 and ext:  # supported_versions
                for i in range(1, 1 + ext[0], 2):
                    versions.append(struct.unpack('>H', ext[i:i + 2])[0])
    return {
        'record_version': WIRE_VERSIONS.get(record_version, hex(record_version)),
        'client_version': WIRE_VERSIONS.get(client_version, hex(client_version)),
        'supported_versions': [WIRE_VERSIONS.get(v, hex(v)) for v in versions if v in WIRE_VERSIONS],
    }


def offers(hello, protocol):
    """Whether a parsed ClientHello offers ``protocol``."""
    if hello['supported_versions']:
        return protocol in hello['supported_versions']
    return hello['client_version'] == protocol


def check_protocols(probes, endpoint, library=''):
    """``tls.protocols``: TLS 1.0 and 1.1 refused, TLS 1.2 accepted.

    ``probes[protocol]`` is ``{'offered': bool, 'offer_error': str, 'accepted': bool,
    'negotiated': str, 'error': str}``: ``offered`` says whether the local TLS library
    put ``protocol`` in its ClientHello at all (measured, not assumed). A refusal that
    could not be tested is a finding, never a silent pass.
    """
    findings = []
    facts = {}
    for protocol in PROTOCOLS:
        probe = probes.get(protocol)
        if probe is None:
            continue
        facts[protocol] = dict((k, v) for k, v in probe.items() if v not in (None, ''))
        if not probe.get('offered'):
            if protocol in REFUSED + ACCEPTED:
                findings.append('%s could not be tested: the local TLS library (%s) does not offer it%s; the edge\'s '
                                'answer to %s is unknown (test from another client, e.g. openssl s_client -%s)'
                                % (protocol, library or 'unknown',
                                   ' (%s)' % probe['offer_error'] if probe.get('offer_error') else '',
                                   protocol, protocol.lower().replace('tlsv', 'tls').replace('.', '_')))
            continue
        if protocol in REFUSED and probe.get('accepted'):
            findings.append('%s is accepted by %s (negotiated %s)' % (protocol, endpoint, probe.get('negotiated') or protocol))
        if protocol in ACCEPTED and not probe.get('accepted'):
            findings.append('%s is refused by %s (%s)' % (protocol, endpoint, probe.get('error') or 'handshake failed'))
    return judged('tls.protocols', findings, {'endpoint': endpoint, 'library': library, 'probes': facts})


# ---------------------------------------------------------------- certificate

def certificate_facts_crypto(cert):
    """Facts of a ``cryptography`` certificate object."""
    from cryptography import x509  # pylint: disable=import-outside-toplevel
    from cryptography.x509.oid import NameOID  # pylint: disable=import-outside-toplevel

    def _when(attr):
        value = getattr(cert, attr + '_utc', None)
        if value is None:
            value = getattr(cert, attr).replace(tzinfo=_UTC)
        return value

    dns, ips = [], []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = [str(n) for n in san.get_values_for_type(x509.DNSName)]
        ips = [str(n) for n in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        pass
    cns = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return {
        'subject': cert.subject.rfc4514_string(),
        'issuer': cert.issuer.rfc4514_string(),
        'common_name': str(cns[0]) if cns else '',
        'dns_names': dns,
        'ip_addresses': ips,
        'not_before': _when('not_valid_before'),
        'not_after': _when('not_valid_after'),
        'serial': '%x' % cert.serial_number,
        'source': 'cryptography',
    }


_OPENSSL_DATE = '%b %d %H:%M:%S %Y'


def _openssl_date(text):
    parts = text.replace('GMT', '').split()
    return datetime.datetime.strptime(' '.join(parts), _OPENSSL_DATE).replace(tzinfo=_UTC)


def certificate_facts_openssl(text):
    """Facts from ``openssl x509 -noout -subject -issuer -startdate -enddate -serial
    -ext subjectAltName -nameopt RFC2253`` output."""
    facts = {'subject': '', 'issuer': '', 'common_name': '', 'dns_names': [], 'ip_addresses': [],
             'not_before': None, 'not_after': None, 'serial': '', 'source': 'openssl'}
    lines = text.splitlines()
    in_san = False
    for line in lines:
        stripped = line.strip()
        if in_san:
            if stripped and not re.match(r'^[A-Za-z0-9 ]+:\s*$', stripped) and (line.startswith(' ') or line.startswith('\t')):
                for item in stripped.split(','):
                    kind, _sep, value = item.strip().partition(':')
                    if kind == 'DNS':
                        facts['dns_names'].append(value.strip())
                    elif kind == 'IP Address':
                        facts['ip_addresses'].append(value.strip())
                continue
            in_san = False
        if stripped.startswith('X509v3 Subject Alternative Name'):
            in_san = True
        elif stripped.startswith('subject='):
            facts['subject'] = stripped[len('subject='):].strip()
        elif stripped.startswith('issuer='):
            facts['issuer'] = stripped[len('issuer='):].strip()
        elif stripped.startswith('notBefore='):
            facts['not_before'] = _openssl_date(stripped[len('notBefore='):])
        elif stripped.startswith('notAfter='):
            facts['not_after'] = _openssl_date(stripped[len('notAfter='):])
        elif stripped.startswith('serial='):
            facts['serial'] = stripped[len('serial='):].strip().lower()
    for part in re.split(r'(?<!\\),', facts['subject']):
        key, _sep, value = part.strip().partition('=')
        if key.strip().upper() == 'CN':
            facts['common_name'] = value.strip()
    return facts


def name_matches(pattern, host):
    """RFC 6125 matching of a DNS name: one wildcard, only as the whole leftmost label."""
    pattern = pattern.lower().rstrip('.')
    host = host.lower().rstrip('.')
    if pattern == host:
        return True
    if not pattern.startswith('*.'):
        return False
    head, _sep, tail = host.partition('.')
    return bool(head) and tail == pattern[2:] and '.' in tail


def covers(facts, host):
    """Whether the certificate's subjectAltName (CN only without one) covers ``host``."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None:
        return any(ipaddress.ip_address(a) == ip for a in facts['ip_addresses'])
    names = facts['dns_names'] or ([facts['common_name']] if facts['common_name'] and not facts['ip_addresses'] else [])
    return any(name_matches(n, host) for n in names)


def check_certificate(facts, host, now, min_days=30, endpoint='', chain=None):
    """``tls.certificate``: valid now, for more than ``min_days``, covering ``host``.

    ``chain`` is the optional result of a verified handshake against a CA file
    (``{'verified': bool, 'error': str, 'ca_path': str}``).
    """
    if facts is None:
        return judged('tls.certificate', ['%s presented no certificate' % endpoint], {'endpoint': endpoint})
    findings = []
    not_before, not_after = facts['not_before'], facts['not_after']
    days_left = (not_after - now).total_seconds() / 86400.0 if not_after else None
    if not_after is None or not_before is None:
        findings.append('the validity period of the certificate could not be read')
    else:
        if not_after <= now:
            findings.append('the certificate expired on %s' % not_after.strftime('%Y-%m-%dT%H:%M:%SZ'))
        elif days_left < min_days:
            findings.append('the certificate expires in %.1f days (on %s), less than %d'
                            % (days_left, not_after.strftime('%Y-%m-%dT%H:%M:%SZ'), min_days))
        if not_before > now:
            findings.append('the certificate is not valid before %s' % not_before.strftime('%Y-%m-%dT%H:%M:%SZ'))
    if not covers(facts, host):
        findings.append('the certificate does not cover %s (names: %s)'
                        % (host, ', '.join(facts['dns_names'] + facts['ip_addresses']) or facts['common_name'] or 'none'))
    if chain is not None and not chain.get('verified'):
        findings.append('the chain does not verify against %s: %s' % (chain.get('ca_path'), chain.get('error')))
    evidence = {
        'endpoint': endpoint, 'host_name': host, 'subject': facts['subject'], 'issuer': facts['issuer'],
        'dns_names': facts['dns_names'], 'ip_addresses': facts['ip_addresses'], 'serial': facts['serial'],
        'not_before': not_before.strftime('%Y-%m-%dT%H:%M:%SZ') if not_before else None,
        'not_after': not_after.strftime('%Y-%m-%dT%H:%M:%SZ') if not_after else None,
        'days_left': round(days_left, 1) if days_left is not None else None, 'min_days': min_days,
        'parsed_with': facts['source'],
    }
    if chain is not None:
        evidence['chain'] = chain
    return judged('tls.certificate', findings, evidence)


# ---------------------------------------------------------------- headers

def _values(headers, name):
    return [v for k, v in headers if k.lower() == name]


def _directives(value):
    out = {}
    for part in value.split(';'):
        part = part.strip()
        if not part:
            continue
        key, _sep, rest = part.partition(' ')
        out.setdefault(key.lower(), rest.strip())
    return out


def check_headers(headers, hsts_min_age=31536000, endpoint='', status=None, error=None):
    """``tls.headers``: ``headers`` is the response's ``[(name, value)]`` list, repeats kept."""
    if error:
        return judged('tls.headers', ['no HTTPS response from %s: %s' % (endpoint, error)], {'endpoint': endpoint})
    findings = []
    seen = {}
    for name in REQUIRED_HEADERS:
        values = _values(headers, name)
        seen[name] = values
        if not values:
            findings.append('%s is missing' % name)
            continue
        if len(set(v.strip().lower() for v in values)) > 1:
            findings.append('%s is sent %d times with different values' % (name, len(values)))
    hsts = seen['strict-transport-security']
    if hsts:
        match = re.search(r'max-age\s*=\s*"?([0-9]+)"?', hsts[0], re.I)
        age = int(match.group(1)) if match else None
        if age is None:
            findings.append('strict-transport-security has no max-age')
        elif age < hsts_min_age:
            findings.append('strict-transport-security max-age=%d is below %d' % (age, hsts_min_age))
    csp = seen['content-security-policy']
    if csp:
        frame = [_directives(v).get('frame-ancestors') for v in csp]
        if not any(f is not None and f.strip().lower() == "'none'" for f in frame):
            found = ', '.join(f for f in frame if f) or 'no frame-ancestors directive'
            findings.append("content-security-policy lacks frame-ancestors 'none' (has: %s)" % found)
    for name, want in (('x-frame-options', 'deny'), ('x-content-type-options', 'nosniff'),
                       ('referrer-policy', 'no-referrer')):
        values = seen[name]
        if values and any(v.strip().lower() != want for v in values):
            findings.append('%s is %s, expected %s' % (name, ', '.join(values), want.upper() if name == 'x-frame-options' else want))
    return judged('tls.headers', findings, {'endpoint': endpoint, 'status': status,
                                            'headers': dict((k, v) for k, v in seen.items() if v)})


def check_redirect(status, location, origin_host, endpoint='', error=None, refused=False):
    """``tls.redirect``: plain HTTP answers only with a redirect to https (or is closed)."""
    if refused:
        return judged('tls.redirect', [], {'endpoint': endpoint, 'answer': 'connection refused: nothing served over '
                                                                           'plain HTTP'})
    if error:
        return judged('tls.redirect', ['plain HTTP at %s gave no usable answer: %s' % (endpoint, error)],
                      {'endpoint': endpoint})
    findings = []
    if status not in (301, 302, 303, 307, 308):
        findings.append('plain HTTP at %s answers %s instead of redirecting to HTTPS' % (endpoint, status))
    elif not (location or '').lower().startswith('https://'):
        findings.append('plain HTTP at %s redirects to %s, not to an https URL' % (endpoint, location or 'nowhere'))
    return judged('tls.redirect', findings, {'endpoint': endpoint, 'status': status, 'location': location,
                                             'host_name': origin_host})


def edge_absent(check_id, endpoint, reason):
    return not_applicable(check_id, reason, {'endpoint': endpoint})
