# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that expose the Caracal release contract to roles and playbooks."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: contract
short_description: The Caracal release contract for a profile
version_added: 0.1.0
description:
  - Returns the resolved release contract for a Caracal release profile, the one source of
    truth for services, images, ports, secrets, their formats, consumers and roll order.
  - Each service's C(secrets) maps a secret file name to the C(*_FILE) variables that service
    reads it through; each secret carries its C(consumers) in start order.
options:
  _input:
    description: The release profile name, for example C(2026.07).
    type: str
    required: true
author:
  - caracal.hardened contributors
'''

EXAMPLES = r'''
- name: List the services of profile 2026.07 in start order
  ansible.builtin.debug:
    msg: "{{ ('2026.07' | caracal.hardened.contract).start_order }}"

- name: Services to restart when the admin token changed
  ansible.builtin.debug:
    msg: "{{ '2026.07' | caracal.hardened.contract_roll_order(['caracalAdminToken']) }}"
'''

RETURN = r'''
_value:
  description: The resolved profile (services, secrets, start_order and profile settings).
  type: dict
'''

from ansible.errors import AnsibleFilterError

from ansible_collections.caracal.hardened.plugins.module_utils._contract import (
    ContractError,
    get_profile,
    image_reference,
    roll_order,
)


def contract(profile):
    try:
        return get_profile(profile)
    except ContractError as exc:
        raise AnsibleFilterError(str(exc))


def contract_roll_order(profile, changed, services=None):
    """Services to restart for ``changed`` secrets, in roll order, limited to ``services``."""
    try:
        resolved = get_profile(profile)
        order = roll_order(resolved, list(changed or []))
    except ContractError as exc:
        raise AnsibleFilterError(str(exc))
    if services is not None:
        order = [svc for svc in order if svc in services]
    return order


def contract_image(profile, service, registry=None, release=None, digests=None):
    """The image reference of ``service``: registry override, release tag or pinned digest."""
    try:
        return image_reference(get_profile(profile), service, registry=registry, release=release, digests=digests)
    except ContractError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):
    def filters(self):
        return {
            'contract': contract,
            'contract_roll_order': contract_roll_order,
            'contract_image': contract_image,
        }
