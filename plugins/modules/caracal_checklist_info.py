#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: caracal_checklist_info
short_description: Map verification results onto every row of Caracal's hardening checklists
version_added: 0.1.0
description:
  - Returns every row of Caracal's two hardening checklists (C(Harden Security Posture) and C(Harden Production)),
    each mapped to the checks that prove it, or declared not applicable with the reason (rows that are application
    behaviour or live outside the host, such as alert paging).
  - Given the check records of the other verification modules (M(caracal.hardened.caracal_runtime_info),
    M(caracal.hardened.caracal_secrets_info), M(caracal.hardened.caracal_network_info),
    M(caracal.hardened.caracal_tls_info), M(caracal.hardened.caracal_audit_info)) in O(records), it folds them into a
    status per row. A row whose checks are missing from O(records) fails, so a row can never go unmeasured silently.
author:
  - caracal.hardened contributors (!UNKNOWN)
extends_documentation_fragment:
  - caracal.hardened.attributes
attributes:
  check_mode:
    support: full
    details:
      - The module only computes; check mode changes nothing either.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  records:
    description: The RV(caracal.hardened.caracal_runtime_info#module:checks) records of the verification modules.
    type: list
    elements: dict
    default: []
notes:
  - The module changes nothing and always returns C(changed=false).
seealso:
  - name: Harden Security Posture
    description: Caracal's security checklist.
    link: https://docs.caracal.run/security/hardening/
  - name: Harden Production
    description: Caracal's production hardening checklist.
    link: https://docs.caracal.run/operations/tls-hardening/
'''

EXAMPLES = r'''
- name: Fold the results into the checklist rows
  caracal.hardened.caracal_checklist_info:
    records: "{{ runtime.checks + secrets.checks + network.checks + tls.checks + audit.checks }}"
  register: caracal_checklist

- name: Show the rows that failed
  ansible.builtin.debug:
    msg: "{{ caracal_checklist.checklist | selectattr('status', 'equalto', 'fail') | map(attribute='row') | list }}"
'''

RETURN = r'''
checklist:
  description: Every row of both checklists, in page order.
  returned: always
  type: list
  elements: dict
  contains:
    page:
      description: The checklist page.
      type: str
    url:
      description: Its address.
      type: str
    section:
      description: The section of the page.
      type: str
    row:
      description: The row of the checklist table.
      type: str
    expected:
      description: What the checklist expects.
      type: str
    note:
      description: What part of the row is application behaviour rather than host state (empty when none).
      type: str
    status:
      description: V(fail) when one of its checks failed or is missing, V(pass) when none failed and one passed.
      type: str
      choices: [pass, fail, not_applicable]
    reason:
      description: Why the row is not applicable, or which checks were not measured.
      type: str
    checks:
      description: The checks of the row with their status.
      type: list
      elements: dict
    missing:
      description: Checks of the row that O(records) lacks.
      type: list
      elements: str
summary:
  description: Counts over O(records) and over the rows.
  returned: always
  type: dict
  contains:
    counts:
      description: Number of checks per status.
      type: dict
    rows:
      description: Number of checklist rows per status.
      type: dict
    failed:
      description: Ids of the failed checks.
      type: list
      elements: str
    failed_required:
      description: Ids of the failed required checks.
      type: list
      elements: str
    passed:
      description: Whether no required check failed and no row lacks a measurement.
      type: bool
'''

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.caracal.hardened.plugins.module_utils._checks import CHECKS, STATUSES, fold_checklist


def validate_records(records):
    for rec in records:
        if not isinstance(rec, dict) or rec.get('id') not in CHECKS or rec.get('status') not in STATUSES:
            raise ValueError('not a check record: %r' % ((rec.get('id'), rec.get('status')) if isinstance(rec, dict) else rec,))
        rec.setdefault('required', CHECKS[rec['id']].get('required', True))
        rec.setdefault('detail', '')


def main():
    module = AnsibleModule(argument_spec={'records': {'type': 'list', 'elements': 'dict', 'default': []}},
                           supports_check_mode=True)
    records = module.params['records']
    try:
        validate_records(records)
    except ValueError as exc:
        module.fail_json(msg=to_native(exc))
    rows, result = fold_checklist(records)
    module.exit_json(changed=False, checklist=rows, summary=result)


if __name__ == '__main__':
    main()
