#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: caracal_network_info
short_description: Verify a Caracal host's network exposure and firewall against the hardening checklists
version_added: 0.1.0
description:
  - Reads the listening TCP sockets (C(ss -Hltnp), or C(/proc/net/tcp) and C(/proc/net/tcp6) without C(ss)), the
    ports the containers of the project publish (C(docker inspect) or C(podman inspect); with the engine's userland
    proxy off a publish is a NAT rule, not a socket) and the nftables ruleset (C(nft -j list ruleset)).
  - "C(ports.public): nothing but O(public_ports) (the edge) and O(admin_ports) listens on a wildcard or public
    address, and no container publishes anything else beyond loopback or a private address."
  - "C(ports.services): the contract's storage and service ports (container ports and loopback publishes) are bound to
    loopback or private addresses only; Postgres published on C(0.0.0.0) fails."
  - "C(network.firewall): the table O(family) O(table) of the firewall role is loaded with input, forward and output
    base chains. C(network.default_deny): each of them drops by default (policy V(drop) or a final drop rule) and no
    unconditional accept is reachable from it. C(network.blocked_ranges): each of O(blocked_ranges) is dropped, before
    any accept that could reach it, on the host's path (output) and the containers' path (forward)."
author:
  - caracal.hardened contributors (!UNKNOWN)
extends_documentation_fragment:
  - caracal.hardened.attributes
  - caracal.hardened.checks
  - caracal.hardened.checks.profile
  - caracal.hardened.checks.engine
attributes:
  check_mode:
    support: full
    details:
      - The module only reads; check mode changes nothing either.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  public_ports:
    description: The ports of the public edge (the TLS reverse proxy), allowed on every interface.
    type: list
    elements: int
    default: [443, 80]
  admin_ports:
    description: Administration ports (SSH) allowed on every interface; the firewall restricts who reaches them.
    type: list
    elements: int
    default: [22]
  family:
    description: The nftables family of the firewall role's table.
    type: str
    default: inet
  table:
    description: The nftables table of the firewall role.
    type: str
    default: caracal_filter
  blocked_ranges:
    description:
      - Destinations that must always be dropped for the host and its containers. Defaults to what Caracal's gateway
        refuses as upstreams (cloud metadata and link-local, carrier-grade NAT, multicast).
    type: list
    elements: str
    default: [169.254.0.0/16, 100.64.0.0/10, 224.0.0.0/4]
requirements:
  - C(nft) (nftables) on the host, run as root, for the C(network) checks.
'''

EXAMPLES = r'''
- name: Verify ports and firewall
  caracal.hardened.caracal_network_info:
    admin_ports: [2222]
  register: caracal_network

- name: Only the firewall, for the role's table
  caracal.hardened.caracal_network_info:
    checks: [network]
    family: inet
    table: caracal_filter
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
engines:
  description: The container engines that answered.
  returned: always
  type: list
  elements: str
  sample: [docker]
'''

import ipaddress
import json

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.caracal.hardened.plugins.module_utils._checks import add_findings, select, summary
from ansible_collections.caracal.hardened.plugins.module_utils._checks_host import gather_containers, read_small
from ansible_collections.caracal.hardened.plugins.module_utils._checks_network import (
    check_blocked_ranges,
    check_default_deny,
    check_firewall,
    check_public_ports,
    check_service_ports,
    parse_proc_net_tcp,
    parse_ss,
)
from ansible_collections.caracal.hardened.plugins.module_utils._checks_runtime import known_services
from ansible_collections.caracal.hardened.plugins.module_utils._contract import (
    DEFAULT_PROFILE,
    ContractError,
    get_profile,
)

CHECK_IDS = ['ports.public', 'ports.services', 'network.firewall', 'network.default_deny', 'network.blocked_ranges']


def listeners(module):
    '''(listeners, source, error)'''
    ss = module.get_bin_path('ss')
    if ss:
        rc, out, err = module.run_command([ss, '-H', '-l', '-t', '-n', '-p'])
        if rc == 0:
            return parse_ss(out), 'ss -Hltnp', None
    found = []
    error = None
    for path in ('/proc/net/tcp', '/proc/net/tcp6'):
        text = read_small(path, limit=1 << 24)
        if text is None:
            error = 'cannot read %s' % path
            continue
        found.extend(parse_proc_net_tcp(text))
    return found, '/proc/net/tcp{,6}', None if found or not error else error


def ruleset(module):
    '''(nft JSON, error)'''
    nft = module.get_bin_path('nft')
    if not nft:
        return None, 'nft (nftables) is not installed'
    rc, out, err = module.run_command([nft, '-j', 'list', 'ruleset'])
    if rc != 0:
        return None, 'nft -j list ruleset failed: %s' % (err or out).strip()
    try:
        return json.loads(out or '{"nftables": []}'), None
    except ValueError as exc:
        return None, 'nft printed no JSON: %s' % exc


def main():
    module = AnsibleModule(
        argument_spec={
            'profile': {'type': 'str', 'default': DEFAULT_PROFILE},
            'checks': {'type': 'list', 'elements': 'str'},
            'engine': {'type': 'str', 'default': 'auto', 'choices': ['auto', 'docker', 'podman']},
            'project': {'type': 'str', 'default': 'caracal'},
            'public_ports': {'type': 'list', 'elements': 'int', 'default': [443, 80]},
            'admin_ports': {'type': 'list', 'elements': 'int', 'default': [22]},
            'family': {'type': 'str', 'default': 'inet'},
            'table': {'type': 'str', 'default': 'caracal_filter'},
            'blocked_ranges': {'type': 'list', 'elements': 'str',
                               'default': ['169.254.0.0/16', '100.64.0.0/10', '224.0.0.0/4']},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        profile = get_profile(p['profile'])
        selected = select(p['checks'], CHECK_IDS)
        for item in p['blocked_ranges']:
            ipaddress.ip_network(item, strict=False)
    except (ContractError, ValueError) as exc:
        module.fail_json(msg=to_native(exc))
    records = []
    gathered = {'engines': [], 'containers': [], 'errors': []}
    if any(c.startswith('ports.') for c in selected):
        gathered = gather_containers(module, p['engine'], p['project'], with_proc=False, known=known_services(profile))
        found, source, error = listeners(module)
        if 'ports.public' in selected:
            rec = check_public_ports(found, gathered['containers'], p['public_ports'], p['admin_ports'], source)
            records.append(rec)
        if 'ports.services' in selected:
            records.append(check_service_ports(profile, found, gathered['containers'], edge_ports=p['public_ports']))
        extra = ([error] if error else []) + (gathered['errors'] if not gathered['containers'] else [])
        for rec in records:
            add_findings(rec, ['cannot measure: %s' % e for e in extra],
                         'Make the measurement possible (run as root, start the container engine) and verify again.')
    if any(c.startswith('network.') for c in selected):
        data, error = ruleset(module)
        if 'network.firewall' in selected:
            records.append(check_firewall(data, p['family'], p['table'], error=error))
        if 'network.default_deny' in selected:
            records.append(check_default_deny(data, p['family'], p['table'], error=error))
        if 'network.blocked_ranges' in selected:
            records.append(check_blocked_ranges(data, p['family'], p['table'], p['blocked_ranges'], error=error))
    module.exit_json(changed=False, checks=records, summary=summary(records), engines=gathered['engines'])


if __name__ == '__main__':
    main()
