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
  - The password is read from O(store_path), sent once in C(AUTH) and never returned, logged or put in a message.
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

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.caracal.hardened.plugins.module_utils._checks import judged, not_applicable, select, summary
from ansible_collections.caracal.hardened.plugins.module_utils._checks_audit import (
    RespClient,
    RespError,
    check_dlq,
    check_streams,
    read_streams,
    redis_target,
)
from ansible_collections.caracal.hardened.plugins.module_utils._checks_host import gather_containers, read_small
from ansible_collections.caracal.hardened.plugins.module_utils._checks_runtime import known_services
from ansible_collections.caracal.hardened.plugins.module_utils._contract import (
    DEFAULT_PROFILE,
    ContractError,
    get_profile,
)
from ansible_collections.caracal.hardened.plugins.module_utils._secrets import trim

CHECK_IDS = ['audit.streams', 'audit.dlq']


def ask(host, port, password, profile, timeout):
    '''The facts of both streams, or ``{'error': ...}``; the password never reaches a message.'''
    client = None
    try:
        client = RespClient(host, port, timeout)
        client.auth(password)
        return read_streams(client, profile)
    except (RespError, OSError, ValueError) as exc:
        return {'error': to_native(exc).replace(password, '<redacted>') or type(exc).__name__}
    finally:
        if client is not None:
            client.close()


def main():
    module = AnsibleModule(
        argument_spec={
            'profile': {'type': 'str', 'default': DEFAULT_PROFILE},
            'checks': {'type': 'list', 'elements': 'str'},
            'engine': {'type': 'str', 'default': 'auto', 'choices': ['auto', 'docker', 'podman']},
            'project': {'type': 'str', 'default': 'caracal'},
            'store_path': {'type': 'path', 'required': True},
            'address': {'type': 'str'},
            'dlq_max_length': {'type': 'int', 'default': 0},
            'timeout': {'type': 'float', 'default': 5},
        },
        supports_check_mode=True,
    )
    p = module.params
    host, port, how = None, None, 'address option'
    try:
        profile = get_profile(p['profile'])
        selected = select(p['checks'], CHECK_IDS)
        if p['address']:
            host, _sep, port = p['address'].rpartition(':')
            host, port = host.strip('[]'), int(port)
            if not host:
                raise ValueError('address must be host:port, got %r' % p['address'])
    except (ContractError, ValueError) as exc:
        module.fail_json(msg=to_native(exc))

    gathered = {'engines': [], 'errors': [], 'containers': []}
    records = []
    problem = None
    if not p['address']:
        gathered = gather_containers(module, p['engine'], p['project'], with_proc=False, known=known_services(profile))
        target = redis_target(profile, gathered['containers'])
        if target is None:
            if gathered['errors'] and not gathered['containers']:
                problem = '; '.join(gathered['errors'])
            else:
                reason = ('no container engine (docker, podman) on this host' if not gathered['engines'] else
                          'Redis (service redis of project %r) does not run on this host' % p['project'])
                records = [not_applicable(c, reason, {'engines': gathered['engines'], 'project': p['project']})
                           for c in selected]
                module.exit_json(changed=False, checks=records, summary=summary(records), engines=gathered['engines'])
        else:
            ctr, host, port, how = target
            if host is None:
                problem = 'container %s has neither a publish nor a network address' % ctr['name']
    endpoint = 'unknown' if problem or host is None else ('[%s]:%s' % (host, port) if ':' in host else '%s:%s' % (host, port))
    facts = None
    if not problem:
        password = read_small(os.path.join(p['store_path'], 'redisPassword'))
        if not password or not trim(password):
            problem = 'redisPassword is missing or empty in %s: cannot authenticate' % p['store_path']
        else:
            facts = ask(host, port, trim(password), profile, p['timeout'])
    if problem or facts is None:
        records = [judged(c, ['cannot reach the audit streams: %s' % problem], {'endpoint': endpoint}) for c in selected]
    else:
        for check_id in selected:
            if check_id == 'audit.streams':
                records.append(check_streams(profile, facts, endpoint))
            elif check_id == 'audit.dlq':
                records.append(check_dlq(profile, facts, endpoint, p['dlq_max_length']))
    for rec in records:
        rec['evidence']['reached_through'] = how
    module.exit_json(changed=False, checks=records, summary=summary(records), engines=gathered['engines'])


if __name__ == '__main__':
    main()
