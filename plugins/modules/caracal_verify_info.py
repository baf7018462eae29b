#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: caracal_verify_info
short_description: Verify a Caracal host against both hardening checklists in one module call
version_added: 0.1.0
description:
  - Runs every check of M(caracal.hardened.caracal_runtime_info), M(caracal.hardened.caracal_secrets_info),
    M(caracal.hardened.caracal_network_info), M(caracal.hardened.caracal_tls_info) and
    M(caracal.hardened.caracal_audit_info) with the same code, and folds the records into the rows of Caracal's two
    hardening checklists as M(caracal.hardened.caracal_checklist_info) does, in one module call instead of six.
  - "The five groups of checks run concurrently, each in its own thread (they mostly wait for the container engine,
    files and sockets). The records are always in the order of the five modules (runtime, secrets, network, tls,
    audit), each group's in its module's order, whichever group finishes first."
  - The container engines are asked once (C(ps) and one C(inspect) of every container) for the four groups that look
    at the containers, instead of once per module; each group judges its own copy.
  - The options of each module are grouped under its name (O(runtime), O(secrets), O(network), O(tls), O(audit)),
    with the same names, types and defaults; O(profile), O(engine) and O(project) are shared by the groups that look
    at the containers.
  - A group that raises an error fails the module with a message naming the group; nothing is returned then.
author:
  - caracal.hardened contributors (!UNKNOWN)
extends_documentation_fragment:
  - caracal.hardened.attributes
  - caracal.hardened.attributes.read_only
  - caracal.hardened.checks
  - caracal.hardened.checks.profile
  - caracal.hardened.checks.engine
options:
  runtime:
    description: The options of M(caracal.hardened.caracal_runtime_info).
    type: dict
    default: {}
    suboptions:
      control_enabled:
        description: As O(caracal.hardened.caracal_runtime_info#module:control_enabled).
        type: bool
        default: false
      timeout:
        description: As O(caracal.hardened.caracal_runtime_info#module:timeout).
        type: float
        default: 5
      store_path:
        description:
          - As O(caracal.hardened.caracal_runtime_info#module:store_path); O(secrets.store_path) when not set.
        type: path
      archive_path:
        description:
          - As O(caracal.hardened.caracal_runtime_info#module:archive_path); O(secrets.archive_path) when not set.
        type: path
  secrets:
    description:
      - The options of M(caracal.hardened.caracal_secrets_info).
      - O(secrets.store_path), O(secrets.views_path), O(secrets.archive_path) and O(secrets.evidence_path) are
        required when a check of that module runs.
    type: dict
    default: {}
    suboptions:
      store_path:
        description: As O(caracal.hardened.caracal_secrets_info#module:store_path).
        type: path
      views_path:
        description: As O(caracal.hardened.caracal_secrets_info#module:views_path).
        type: path
      archive_path:
        description: As O(caracal.hardened.caracal_secrets_info#module:archive_path).
        type: path
      evidence_path:
        description: As O(caracal.hardened.caracal_secrets_info#module:evidence_path).
        type: path
      services:
        description: As O(caracal.hardened.caracal_secrets_info#module:services).
        type: list
        elements: str
      group:
        description: As O(caracal.hardened.caracal_secrets_info#module:group).
        type: str
      mode:
        description: As O(caracal.hardened.caracal_secrets_info#module:mode).
        type: raw
        default: '0440'
      policies:
        description: As O(caracal.hardened.caracal_secrets_info#module:policies).
        type: dict
      default_max_age_days:
        description: As O(caracal.hardened.caracal_secrets_info#module:default_max_age_days).
        type: int
        default: 90
      kek_backup_path:
        description: As O(caracal.hardened.caracal_secrets_info#module:kek_backup_path).
        type: path
      runtime_profiles:
        description: As O(caracal.hardened.caracal_secrets_info#module:runtime_profiles).
        type: list
        elements: path
        default: []
      scan_processes:
        description: As O(caracal.hardened.caracal_secrets_info#module:scan_processes).
        type: bool
        default: true
      timeout:
        description: As O(caracal.hardened.caracal_secrets_info#module:timeout).
        type: float
        default: 5
  network:
    description: The options of M(caracal.hardened.caracal_network_info).
    type: dict
    default: {}
    suboptions:
      public_ports:
        description: As O(caracal.hardened.caracal_network_info#module:public_ports).
        type: list
        elements: int
        default: [443, 80]
      admin_ports:
        description: As O(caracal.hardened.caracal_network_info#module:admin_ports).
        type: list
        elements: int
        default: [22]
      family:
        description: As O(caracal.hardened.caracal_network_info#module:family).
        type: str
        default: inet
      table:
        description: As O(caracal.hardened.caracal_network_info#module:table).
        type: str
        default: caracal_filter
      blocked_ranges:
        description: As O(caracal.hardened.caracal_network_info#module:blocked_ranges).
        type: list
        elements: str
        default: [169.254.0.0/16, 100.64.0.0/10, 224.0.0.0/4]
  tls:
    description:
      - The options of M(caracal.hardened.caracal_tls_info).
      - O(tls.server_name) is required when a check of that module runs.
    type: dict
    default: {}
    suboptions:
      server_name:
        description: As O(caracal.hardened.caracal_tls_info#module:server_name).
        type: str
      address:
        description: As O(caracal.hardened.caracal_tls_info#module:address).
        type: str
        default: 127.0.0.1
      port:
        description: As O(caracal.hardened.caracal_tls_info#module:port).
        type: int
        default: 443
      http_port:
        description: As O(caracal.hardened.caracal_tls_info#module:http_port).
        type: int
        default: 80
      path:
        description: As O(caracal.hardened.caracal_tls_info#module:path).
        type: str
        default: /
      min_days:
        description: As O(caracal.hardened.caracal_tls_info#module:min_days).
        type: int
        default: 30
      hsts_min_age:
        description: As O(caracal.hardened.caracal_tls_info#module:hsts_min_age).
        type: int
        default: 31536000
      ca_path:
        description: As O(caracal.hardened.caracal_tls_info#module:ca_path).
        type: path
      edge_expected:
        description: As O(caracal.hardened.caracal_tls_info#module:edge_expected).
        type: bool
        default: true
      timeout:
        description: As O(caracal.hardened.caracal_tls_info#module:timeout).
        type: float
        default: 5
  audit:
    description: The options of M(caracal.hardened.caracal_audit_info).
    type: dict
    default: {}
    suboptions:
      store_path:
        description:
          - As O(caracal.hardened.caracal_audit_info#module:store_path).
          - Default is O(secrets.store_path); one of them is required when a check of that module runs.
        type: path
      address:
        description: As O(caracal.hardened.caracal_audit_info#module:address).
        type: str
      dlq_max_length:
        description: As O(caracal.hardened.caracal_audit_info#module:dlq_max_length).
        type: int
        default: 0
      dlq_previous_length:
        description: As O(caracal.hardened.caracal_audit_info#module:dlq_previous_length).
        type: int
      pending_max:
        description: As O(caracal.hardened.caracal_audit_info#module:pending_max).
        type: int
        default: 1000
      timeout:
        description: As O(caracal.hardened.caracal_audit_info#module:timeout).
        type: float
        default: 5
notes:
  - O(checks) selects among the checks of all five modules. A group none of whose checks is selected does not run
    (and its required options are not needed); the rows of the checklists whose checks did not run fail as not
    measured.
requirements:
  - C(nft) (nftables) on the host, run as root, for the C(network) checks.
'''

EXAMPLES = r'''
- name: Verify a host laid out by the caracal.hardened roles
  caracal.hardened.caracal_verify_info:
    project: caracal
    secrets:
      store_path: /opt/caracal/secrets/store
      views_path: /opt/caracal/secrets/services
      archive_path: /opt/caracal/secrets/archive
      evidence_path: /opt/caracal/evidence/secrets.jsonl
      kek_backup_path: /var/backups/caracal/kek
    network:
      public_ports: [443, 80]
    tls:
      server_name: console.example.com
      ca_path: /etc/ssl/caracal/certs/caracal-internal-ca.crt
  register: caracal_verify

- name: Fail when a required check failed or a checklist row went unmeasured
  ansible.builtin.assert:
    that: caracal_verify.summary.passed
    fail_msg: "{{ caracal_verify.summary.failed_required | join(', ') }}"

- name: Only the container and network checks (the other rows then fail as not measured)
  caracal.hardened.caracal_verify_info:
    checks: [containers, ports, network]
  register: caracal_exposure
'''

RETURN = r'''
checks:
  description:
    - One record per check, as RV(caracal.hardened.caracal_runtime_info#module:checks) describes it.
    - The records of M(caracal.hardened.caracal_runtime_info), M(caracal.hardened.caracal_secrets_info),
      M(caracal.hardened.caracal_network_info), M(caracal.hardened.caracal_tls_info) and
      M(caracal.hardened.caracal_audit_info), in that order, each in its module's order.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: The check id, C(<group>.<name>).
      type: str
      sample: containers.capabilities
    status:
      description: The result.
      type: str
      choices: [pass, fail, not_applicable]
    required:
      description: Whether a failure fails the verification (advisory checks are not required).
      type: bool
    findings:
      description: What failed, one sentence each. Empty unless RV(checks[].status=fail).
      type: list
      elements: str
    evidence:
      description: The facts measured (names, owners, modes, addresses, fingerprints; never a secret value).
      type: dict
checklist:
  description: Every row of both checklists, in page order, as RV(caracal.hardened.caracal_checklist_info#module:checklist).
  returned: always
  type: list
  elements: dict
summary:
  description:
    - Counts over RV(checks) and over the rows, and the verdict, as
      RV(caracal.hardened.caracal_checklist_info#module:summary).
    - Its C(passed) is true when no required check failed and no row lacks a measurement.
  returned: always
  type: dict
  sample:
    counts: {pass: 32, fail: 1, not_applicable: 2}
    rows: {pass: 20, fail: 2, not_applicable: 4}
    failed: [access.gateway_allowlist]
    failed_required: []
    passed: true
engines:
  description: The container engines that answered (empty when no selected check looks at the containers).
  returned: always
  type: list
  elements: str
  sample: [docker]
library:
  description: The TLS library of the host's Python, which made the TLS probes.
  returned: always
  type: str
  sample: OpenSSL 3.5.1 1 Jul 2025
'''

import copy
import ssl
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.caracal.hardened.plugins.module_utils._checks import fold_checklist, select
from ansible_collections.caracal.hardened.plugins.module_utils._checks_groups import (
    AUDIT,
    CONTAINER_OPTIONS,
    GROUPS,
    RUNTIME,
    SECRETS,
    SharedContainers,
)
from ansible_collections.caracal.hardened.plugins.module_utils._checks_runtime import known_services
from ansible_collections.caracal.hardened.plugins.module_utils._contract import ContractError

# Every check, in the order of the records.
CHECK_IDS = [check_id for group in GROUPS for check_id in group.check_ids]


class GroupFailure(Exception):
    """``fail_json`` called in a group's thread (``run_command`` could not start a command)."""


class VerifyModule(AnsibleModule):
    """Only the main thread answers: ``fail_json`` in a group's thread raises ``GroupFailure``,
    which fails that group, instead of printing a second result and ending the thread."""

    def fail_json(self, msg, **kwargs):
        if threading.current_thread() is not threading.main_thread():
            raise GroupFailure(msg)
        super().fail_json(msg=msg, **kwargs)


def argument_spec():
    spec = {'checks': {'type': 'list', 'elements': 'str'}}
    spec.update(copy.deepcopy(CONTAINER_OPTIONS))
    for group in GROUPS:
        options = copy.deepcopy(group.options)
        for option in options.values():
            # checked in plan(), only for the groups that run
            option.pop('required', None)
        # no_log: the options name paths, ports and settings, never a secret (the group "secrets" included)
        spec[group.name] = {'type': 'dict', 'default': {}, 'no_log': False, 'options': options}
    return spec


def plan(params, group, check_ids):
    """``(group, its module's params, prepared)``; raises ``ValueError`` naming the group."""
    own = dict(params[group.name], checks=check_ids)
    if group.containers:
        own.update((name, params[name]) for name in CONTAINER_OPTIONS)
    if group is AUDIT and own['store_path'] is None:
        own['store_path'] = params[SECRETS.name]['store_path']
    if group is RUNTIME:
        for name in ('store_path', 'archive_path'):
            if own[name] is None:
                own[name] = params[SECRETS.name][name]
    try:
        missing = ['%s.%s' % (group.name, name) for name, option in sorted(group.options.items())
                   if option.get('required') and own[name] is None]
        if missing:
            raise ValueError('%s required by the %s checks' % (', '.join(missing), group.name))
        return group, own, group.prepare(own)
    except (ContractError, ValueError) as exc:
        raise ValueError('%s: %s' % (group.name, to_native(exc))) from None


def run_plans(module, plans, gather):
    """Run every plan in its own thread: ``[(result, None) | (None, (error, traceback))]`` in plan order."""
    def run(one):
        group, params, prepared = one
        try:
            return group.run(module, params, prepared, gather), None
        except Exception as exc:  # pylint: disable=broad-except
            return None, ('%s: %s' % (type(exc).__name__, to_native(exc)), traceback.format_exc())

    with ThreadPoolExecutor(max_workers=len(plans)) as pool:
        return list(pool.map(run, plans))


def main():
    module = VerifyModule(argument_spec=argument_spec(), supports_check_mode=True)
    p = module.params
    try:
        selected = select(p['checks'], CHECK_IDS)
        plans = []
        for group in GROUPS:
            check_ids = [c for c in selected if c in group.check_ids]
            if check_ids:
                plans.append(plan(p, group, check_ids))
    except ValueError as exc:
        module.fail_json(msg=to_native(exc))
    profiles = [prepared['profile'] for _group, _params, prepared in plans if 'profile' in prepared]
    gather = SharedContainers(module, p['engine'], p['project'], known_services(profiles[0]) if profiles else None)

    outcomes = run_plans(module, plans, gather)
    failed = [(one[0].name, error) for one, (_result, error) in zip(plans, outcomes) if error]
    if failed:
        module.fail_json(msg='; '.join('the %s checks failed: %s' % (name, error[0]) for name, error in failed),
                         failed_groups=[name for name, _error in failed],
                         exception=''.join(error[1] for _name, error in failed))
    records = [rec for result, _error in outcomes for rec in result['checks']]
    rows, result_summary = fold_checklist(records)
    module.exit_json(changed=False, checks=records, summary=result_summary, checklist=rows,
                     engines=gather.gathered['engines'] if gather.gathered else [], library=ssl.OPENSSL_VERSION)


if __name__ == '__main__':
    main()
