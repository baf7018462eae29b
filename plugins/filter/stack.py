# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that build the backend-neutral model of the Caracal stack."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: stack
short_description: The backend-neutral model of the Caracal stack for a release profile
version_added: 0.1.0
description:
  - Builds, from the release contract (C(caracal.hardened.contract)), everything a deployment
    backend needs to run the stack, per service in start order - image reference, command,
    non-secret environment (C(*_FILE) paths, URLs, mode), user, read-only root, capabilities,
    no-new-privileges, init, tmpfs, limits, loopback publishes, volumes, the secrets view
    directory mount, networks, dependencies with conditions and the health check.
  - The Docker Compose role and the Podman Quadlet role render the same model; neither restates
    the topology.
  - Refuses unsafe settings with a clear message - the C(dev) mode without
    I(allow_nonproduction), fail-open switches, secret variables in the environment, publishes
    beyond loopback, non-https URLs in published modes.
options:
  _input:
    description: The release profile name, for example C(2026.07).
    type: str
    required: true
  settings:
    description:
      - Deployment settings. C(registry), C(release) and C(digests) select the images (as
        C(caracal.hardened.contract_image) does); every other key is a setting of the model
        (C(mode), C(allow_nonproduction), C(web_url), C(issuer_url), C(upstream_allowlist),
        C(control_enabled), C(home), C(secrets_views_dir), C(control_dir), C(services),
        C(limits), C(kind_limits), C(healthcheck), C(db_sslmode), C(extra_env), C(publish),
        C(redis_uid), C(project)). See C(plugins/module_utils/_stack.py).
    type: dict
    default: {}
author:
  - caracal.hardened contributors
'''

EXAMPLES = r'''
- name: Build the model of the stack
  ansible.builtin.set_fact:
    stack: >-
      {{ caracal_profile | caracal.hardened.stack({
           'mode': 'stable', 'registry': 'mirror.example/caracal/',
           'web_url': 'https://console.example.com', 'issuer_url': 'https://sts.example.com'}) }}

- name: Services to restart after a rotation, limited to this host, in roll order
  ansible.builtin.debug:
    msg: "{{ stack | caracal.hardened.stack_restart_plan(caracal_secrets_restart) }}"
'''

RETURN = r'''
_value:
  description:
    - The model - C(services) (a list in start order), C(networks), C(volumes), C(control),
      C(replay), C(service_names), C(restartable), C(mode), C(release), C(project).
  type: dict
'''

from ansible.errors import AnsibleFilterError

from ansible_collections.caracal.hardened.plugins.module_utils._contract import (
    ContractError,
    get_profile,
    image_reference,
)
from ansible_collections.caracal.hardened.plugins.module_utils._plain import plain
from ansible_collections.caracal.hardened.plugins.module_utils._stack import (
    StackError,
    build_stack,
    restart_plan,
)

IMAGE_SETTINGS = ('registry', 'digests')


def stack(profile, settings=None):
    # Plain data first: the model builder deep-copies the settings, and deep-copying the lazy
    # containers of a role's variables costs a tenth of a second per call.
    settings = plain(settings or {})
    registry = settings.pop('registry', None)
    digests = settings.pop('digests', None) or {}
    try:
        resolved = get_profile(profile)
        release = settings.get('release') or resolved['default_release']
        release = release[1:] if str(release).startswith('v') else release
        settings['release'] = release
        images = {}
        for name in resolved['start_order']:
            images[name] = image_reference(resolved, name, registry=registry, release=release, digests=digests)
    except ContractError as exc:
        raise AnsibleFilterError(str(exc))
    try:
        return build_stack(resolved, settings, images)
    except StackError as exc:
        raise AnsibleFilterError('caracal stack: %s' % exc)


def stack_restart_plan(model, requested):
    """The ``requested`` services that run on this host, order kept (init jobs never)."""
    return restart_plan(model, requested)


class FilterModule(object):
    def filters(self):
        return {
            'stack': stack,
            'stack_restart_plan': stack_restart_plan,
        }
