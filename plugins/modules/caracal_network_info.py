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
  - caracal.hardened.attributes.read_only
  - caracal.hardened.checks
  - caracal.hardened.checks.profile
  - caracal.hardened.checks.engine
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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.caracal.hardened.plugins.module_utils._checks_groups import NETWORK, run_group

# The checks of this module, in the order of its records (the glue is _checks_groups.NETWORK).
CHECK_IDS = NETWORK.check_ids


def main():
    run_group(AnsibleModule(argument_spec=NETWORK.argument_spec(), supports_check_mode=True), NETWORK)


if __name__ == '__main__':
    main()
