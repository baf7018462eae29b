#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: caracal_tls_info
short_description: Verify the live TLS edge of a Caracal host against the hardening checklists
version_added: 0.1.0
description:
  - Connects to the TLS edge (the reverse proxy in front of the web console) at O(address):O(port) with the SNI name
    O(server_name), the way a browser reaches C(caracal_web_url).
  - "C(tls.protocols): one handshake per protocol with the minimum and maximum version pinned (Python's C(ssl)): TLS
    1.0 and 1.1 must be refused, TLS 1.2 accepted (TLS 1.3 is reported). Before each handshake the module checks, with
    an in-memory handshake whose ClientHello it parses, that the local TLS library actually offers the protocol
    (OpenSSL 3 needs security level 0 for TLS 1.0/1.1, which the probe sets). A protocol the library cannot offer is
    reported as untestable, a failure, never a silent pass."
  - "C(tls.certificate): the certificate the edge presents is valid now and for more than O(min_days) days, and its
    subjectAltName covers O(server_name); with O(ca_path), the chain and name must also verify against that CA.
    The certificate is read with the C(cryptography) library when the host has it, else with C(openssl x509)."
  - "C(tls.headers): a GET of O(path) answers with C(Strict-Transport-Security) (max-age at least O(hsts_min_age)),
    C(Content-Security-Policy) with C(frame-ancestors 'none'), C(X-Frame-Options: DENY),
    C(X-Content-Type-Options: nosniff) and C(Referrer-Policy: no-referrer), each without a conflicting duplicate."
  - "C(tls.redirect): plain HTTP on O(http_port) only redirects to an https URL (or is closed)."
author:
  - caracal.hardened contributors (!UNKNOWN)
extends_documentation_fragment:
  - caracal.hardened.attributes
  - caracal.hardened.attributes.read_only
  - caracal.hardened.checks
options:
  server_name:
    description:
      - The public host name of the web console (the host of C(caracal_web_url)), sent as SNI and C(Host), and the
        name the certificate must cover.
    type: str
    required: true
  address:
    description: The address to connect to. The edge listens on every interface, so loopback reaches it from the host.
    type: str
    default: 127.0.0.1
  port:
    description: The HTTPS port of the edge.
    type: int
    default: 443
  http_port:
    description: The plain HTTP port of the edge, for C(tls.redirect). V(0) skips that check.
    type: int
    default: 80
  path:
    description: The path requested for C(tls.headers).
    type: str
    default: /
  min_days:
    description: The certificate must stay valid for more than this many days.
    type: int
    default: 30
  hsts_min_age:
    description: The smallest acceptable HSTS max-age, in seconds.
    type: int
    default: 31536000
  ca_path:
    description: A CA bundle the edge's chain must verify against (for example the internal CA certificate).
    type: path
  edge_expected:
    description:
      - Whether this host must serve the edge (it runs the web tier). When false and nothing listens on O(port), the
        TLS checks are not applicable; when true, a missing endpoint fails them.
    type: bool
    default: true
  timeout:
    description: Seconds to wait for each connection.
    type: float
    default: 5
'''

EXAMPLES = r'''
- name: Verify the edge of the web console
  caracal.hardened.caracal_tls_info:
    server_name: console.example.com
    ca_path: /etc/ssl/caracal/certs/caracal-internal-ca.crt
  register: caracal_tls

- name: An edge on another port, headers of the login page
  caracal.hardened.caracal_tls_info:
    server_name: console.example.com
    port: 8443
    http_port: 0
    path: /login
'''

RETURN = r'''
checks:
  description: One record per check, in the module's order.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: The check id, C(<group>.<name>).
      type: str
      sample: containers.capabilities
    title:
      description: What the check verifies.
      type: str
    group:
      description: The group of the check (the part of the id before the dot).
      type: str
    required:
      description: Whether a failure fails the verification (advisory checks are not required).
      type: bool
    checklist:
      description: The rows of Caracal's hardening checklists this check proves.
      type: list
      elements: dict
      contains:
        page:
          description: The checklist page.
          type: str
          sample: Harden Security Posture
        url:
          description: Its address.
          type: str
        section:
          description: The section of the page.
          type: str
          sample: Deployment Mode
        row:
          description: The row of the checklist table.
          type: str
          sample: Containers
    status:
      description: The result.
      type: str
      choices: [pass, fail, not_applicable]
    detail:
      description: Why a check is not applicable (or a note on a pass); empty otherwise.
      type: str
    findings:
      description: What failed, one sentence each. Empty unless RV(checks[].status=fail).
      type: list
      elements: str
      sample: ["api (caracal-api-1): adds NET_ADMIN beyond the contract (allowed: none)"]
    evidence:
      description: The facts measured (names, owners, modes, addresses, fingerprints; never a secret value).
      type: dict
    remediation:
      description: How to fix a failure. Empty unless RV(checks[].status=fail).
      type: str
summary:
  description: Counts and the failed check ids.
  returned: always
  type: dict
  contains:
    counts:
      description: Number of checks per status.
      type: dict
      sample: {pass: 10, fail: 1, not_applicable: 1}
    failed:
      description: Ids of the failed checks.
      type: list
      elements: str
    failed_required:
      description: Ids of the failed required checks.
      type: list
      elements: str
    passed:
      description: Whether no required check failed.
      type: bool
library:
  description: The TLS library the probes used.
  returned: always
  type: str
  sample: OpenSSL 3.5.1 1 Jul 2025
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.caracal.hardened.plugins.module_utils._checks_groups import TLS, run_group

# The checks of this module, in the order of its records (the glue is _checks_groups.TLS).
CHECK_IDS = TLS.check_ids


def main():
    run_group(AnsibleModule(argument_spec=TLS.argument_spec(), supports_check_mode=True), TLS)


if __name__ == '__main__':
    main()
