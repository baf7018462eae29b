# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What is wrong with operator-supplied secret values, without showing them."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: secret_problems
short_description: The problems of operator-supplied secret values, named by secret and rule, never by value
version_added: 0.1.0
description:
  - Checks each supplied value against the release contract exactly as Caracal does (hex, sizes, the KEK's weak-key
    rules), then against the collection's weak-value rules for every hex secret and token (all-zero, one repeated
    byte, a pattern of up to 8 bytes repeated, an ascending or descending run of 8 bytes).
  - "Returns a list of sentences C(<secret>: <rule>: <detail>); an empty list means every value is acceptable. No
    sentence carries a value, so the list can be shown in a failure message."
  - The secrets role and the first play of the collection's playbooks use it to stop before any host changes.
options:
  _input:
    description: The supplied values, secret name to value (C(caracal_secrets_values) merged with the values file).
    type: dict
    required: true
  profile:
    description: The release profile whose contract the values are checked against.
    type: str
    default: '2026.07'
author:
  - caracal.hardened contributors (!UNKNOWN)
'''

EXAMPLES = r'''
- name: Refuse weak supplied values before anything changes
  ansible.builtin.assert:
    that: __problems | length == 0
    fail_msg: "Supplied secret values are not acceptable (nothing was changed): {{ __problems | join('; ') }}"
    quiet: true
  vars:
    __problems: "{{ caracal_secrets_values | caracal.hardened.secret_problems(profile=caracal_profile) }}"
'''

RETURN = r'''
_value:
  description: One sentence per problem, sorted by secret name; empty when every value is acceptable.
  type: list
  elements: str
  sample: ['auditHmacKey: weak-all-zeros: value is every byte is zero']
'''

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.caracal.hardened.plugins.module_utils._contract import ContractError, get_profile
from ansible_collections.caracal.hardened.plugins.module_utils._secrets import supplied_problems


def secret_problems(values, profile='2026.07'):
    if not isinstance(values, dict):
        raise AnsibleFilterError('secret_problems expects a mapping of secret names to values')
    try:
        specs = get_profile(to_native(profile))['secrets']
    except ContractError as exc:
        raise AnsibleFilterError(to_native(exc))
    plain = dict((to_native(k), v if not isinstance(v, str) else to_native(v)) for k, v in values.items())
    return supplied_problems(plain, specs)


class FilterModule(object):
    def filters(self):
        return {'secret_problems': secret_problems}
