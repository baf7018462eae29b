#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: caracal_audit_info
short_description: Verify Caracal's audit stream and dead-letter queue
version_added: 0.1.0
description:
  - Talks to the Redis of the Caracal project with a minimal RESP client over a socket (no Redis library needed),
    authenticated with the password from the secret store, and asks read-only questions (C(TYPE), C(XLEN),
    C(XINFO GROUPS)).
  - "C(audit.streams): the contract's audit stream (C(caracal.audit.events)) and its dead-letter queue
    (C(caracal.audit.events.dlq)) exist and are streams; their lengths and consumer groups are reported."
  - "C(audit.dlq): the dead-letter queue holds at most O(dlq_max_length) entries (growth means events failed 8
    deliveries, usually an audit HMAC key mismatch)."
  - "C(audit.pending): the audit stream has a consumer group and none holds more than O(pending_max) pending entries
    (its consumers keep up)."
  - The password is read from O(store_path), sent once in C(AUTH) and never returned, logged or put in a message.
author:
  - caracal.hardened contributors (!UNKNOWN)
extends_documentation_fragment:
  - caracal.hardened.attributes
  - caracal.hardened.attributes.read_only
  - caracal.hardened.checks
  - caracal.hardened.checks.profile
  - caracal.hardened.checks.engine
options:
  store_path:
    description: The canonical secret store holding C(redisPassword).
    type: path
    required: true
  address:
    description:
      - C(host:port) of Redis. Default is measured from the Redis container of O(project) (its loopback publish, else
        its address on its network).
    type: str
  dlq_max_length:
    description: The largest acceptable number of entries in the dead-letter queue.
    type: int
    default: 0
  dlq_previous_length:
    description:
      - The length of the dead-letter queue at the last verification (the verify role reads it from the previous
        report). When given, C(audit.dlq) also fails when the queue grew since.
    type: int
  pending_max:
    description: The largest acceptable number of pending (delivered, unacknowledged) entries of a consumer group.
    type: int
    default: 1000
  timeout:
    description: Seconds to wait for Redis.
    type: float
    default: 5
'''

EXAMPLES = r'''
- name: Verify the audit stream and DLQ
  caracal.hardened.caracal_audit_info:
    store_path: /opt/caracal/secrets/store
    dlq_max_length: 10
  register: caracal_audit
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

from ansible_collections.caracal.hardened.plugins.module_utils._checks_groups import AUDIT, run_group

# The checks of this module, in the order of its records (the glue is _checks_groups.AUDIT).
CHECK_IDS = AUDIT.check_ids


def main():
    run_group(AnsibleModule(argument_spec=AUDIT.argument_spec(), supports_check_mode=True), AUDIT)


if __name__ == '__main__':
    main()
