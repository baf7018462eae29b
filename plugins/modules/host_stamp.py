#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: host_stamp
short_description: Record what a role left on a host, and tell whether the host still matches it
version_added: 0.1.0
description:
  - A role that has just converged a host in full records a I(stamp) with O(state=present) - a digest of the role's
    inputs (computed on the controller) and a fingerprint of everything the role manages on the host (files and
    directories with their content, mode and owner; systemd units with their load, active and enablement state;
    Debian packages with their version; the output of read-only commands).
  - On the next run, O(state=checked) computes the same fingerprint and compares it, in one module call, with the
    stamp. When the inputs are the same, nothing the role manages differs, the stamp is younger than O(max_age) and
    no date in O(valid_until) has passed, the host is RV(converged) and the role can skip its tasks. Otherwise the
    module lists why in RV(reasons) and removes the stamp, so that only a run that completes in full writes a new one.
  - The stamp holds digests, never content. The O(inputs) digest is not logged or returned.
author:
  - caracal.hardened contributors (!UNKNOWN)
extends_documentation_fragment:
  - caracal.hardened.attributes
  - caracal.hardened.attributes.files
attributes:
  check_mode:
    support: full
    details:
      - O(state=checked) only reads. In check mode it does not remove a stale stamp, and O(state=present) and
        O(state=absent) only predict.
  diff_mode:
    support: none
  idempotent:
    support: full
  safe_file_operations:
    support: full
options:
  path:
    description: The stamp file (JSON, root-only). Its directory is created with mode C(0700).
    type: path
    required: true
  state:
    description:
      - V(checked) compares the host with the stamp (read-only, except that a stamp that no longer matches is removed).
      - V(present) writes the stamp from the host as it is now.
      - V(absent) removes the stamp.
    type: str
    choices: [checked, present, absent]
    default: checked
  inputs:
    description:
      - Digest of everything the role's tasks depend on, computed on the controller (for example with the
        P(caracal.hardened.digest#filter) filter over the role's variables and its own files). Required unless
        O(state=absent).
    type: str
  watch:
    description: What the fingerprint covers. The role lists everything its tasks manage.
    type: dict
    default: {}
    suboptions:
      paths:
        description:
          - Files, directories and links whose type, mode, owner, group and content (for a regular file) or target (for
            a link) are part of the fingerprint. A missing path is recorded as missing. A directory's entries are not
            included; list them or use O(watch.trees).
        type: list
        elements: path
        default: []
      trees:
        description: Directories whose every entry, recursively, is fingerprinted like O(watch.paths).
        type: list
        elements: path
        default: []
      units:
        description:
          - systemd units whose C(LoadState), C(ActiveState), C(SubState), C(UnitFileState) and drop-ins are part of
            the fingerprint.
        type: list
        elements: str
        default: []
      packages:
        description: Debian packages whose installation status and version are part of the fingerprint.
        type: list
        elements: str
        default: []
      commands:
        description:
          - Read-only commands whose exit status and output are part of the fingerprint. Never put a secret in a
            command line.
        type: list
        elements: dict
        default: []
        suboptions:
          argv:
            description: The command and its arguments (no shell).
            type: list
            elements: str
            required: true
          ignore:
            description: Regular expressions whose matches are removed from the output first (volatile parts).
            type: list
            elements: str
            default: []
  max_age:
    description: Seconds after which a stamp no longer counts, so that a full run happens at least this often. V(0) means no limit.
    type: int
    default: 86400
  valid_until:
    description:
      - Moments (UTC, ISO-8601 such as C(2027-01-31T00:00:00Z), or seconds since the epoch) at which the stamp stops
        counting, such as a certificate's renewal date. Recorded with O(state=present); the earliest counts.
    type: list
    elements: raw
    default: []
notes:
  - A stamp says nothing about what the role does not manage; the role decides what it lists.
  - The stamp is bookkeeping. The roles register its writes as unchanged, so that a second run reports C(changed=0).
seealso:
  - name: Fast no-op runs
    description: How the roles use the stamp, and how to force a full run.
    link: https://github.com/caracal-hardened/caracal.hardened/blob/main/docs/stamps.md
'''

EXAMPLES = r'''
# my_watch: {paths: [/etc/nginx/nginx.conf], trees: [/etc/nginx/conf.d], units: [nginx.service], packages: [nginx]}
- name: Check whether the host still matches the last full run
  caracal.hardened.host_stamp:
    path: /var/lib/caracal-hardened/stamps/tls.json
    inputs: "{{ my_inputs | caracal.hardened.digest }}"
    watch: "{{ my_watch }}"
  register: stamp

- name: Converge the host in full
  ansible.builtin.include_tasks: apply.yml
  when: not stamp.converged

- name: Record what the full run left on the host
  caracal.hardened.host_stamp:
    path: /var/lib/caracal-hardened/stamps/tls.json
    state: present
    inputs: "{{ my_inputs | caracal.hardened.digest }}"
    watch: "{{ my_watch }}"
  changed_when: false
  when: not stamp.converged
'''

RETURN = r'''
converged:
  description: Whether the host matches the stamp (always V(false) unless O(state=checked)).
  returned: always
  type: bool
reasons:
  description: Why the host does not match the stamp, one line each (names of what differs, never content).
  returned: always
  type: list
  elements: str
  sample: ["no stamp", "inputs changed", "path /etc/nginx/nginx.conf changed", "unit nginx.service changed"]
items:
  description: How many items the fingerprint covers.
  returned: always
  type: int
'''

import copy
import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.caracal.hardened.plugins.module_utils._stamp import (
    STAMP_VERSION,
    WATCH_OPTIONS,
    Fingerprint,
    check,
    parse_moment,
    remove_stamp,
    write_stamp,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            state=dict(type='str', choices=['checked', 'present', 'absent'], default='checked'),
            inputs=dict(type='str', no_log=True),
            watch=dict(type='dict', default={}, options=copy.deepcopy(WATCH_OPTIONS)),
            max_age=dict(type='int', default=86400),
            valid_until=dict(type='list', elements='raw', default=[]),
        ),
        required_if=[('state', 'checked', ['inputs']), ('state', 'present', ['inputs'])],
        supports_check_mode=True,
    )
    params = module.params
    path, state = params['path'], params['state']

    if state == 'absent':
        exists = os.path.lexists(path)
        if exists and not module.check_mode:
            remove_stamp(path)
        module.exit_json(changed=exists, converged=False, reasons=[], items=0)

    try:
        moments = [m for m in (parse_moment(v) for v in params['valid_until']) if m is not None]
    except ValueError as exc:
        module.fail_json(msg='valid_until: %s' % to_native(exc))

    if state == 'checked':
        module.exit_json(**check(module, path, params['inputs'], params['watch'], params['max_age']))

    items = Fingerprint(module).items(params['watch'] or {})
    stamp = {
        'version': STAMP_VERSION,
        'inputs': params['inputs'],
        'written': time.time(),
        'valid_until': min(moments) if moments else None,
        'items': items,
    }
    if not module.check_mode:
        write_stamp(module, path, stamp)
    module.exit_json(changed=True, converged=False, reasons=[], items=len(items))


if __name__ == '__main__':
    main()
