# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The digest of a role's inputs, for caracal.hardened.host_stamp."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: digest
short_description: A SHA-256 digest of data and, optionally, of files on the controller
version_added: 0.1.0
description:
  - Returns the SHA-256 digest (hex) of the canonical JSON form of the input (keys sorted), followed by the relative
    path and content of every regular file under O(paths), in a stable order.
  - The roles use it for the O(caracal.hardened.host_stamp#module:inputs) of their stamp - their variables and their
    own files - so that a changed variable or a changed role version always triggers a full run.
  - The digest is one-way, but it is computed over secrets too; the roles never log it.
options:
  _input:
    description: Any data; values other than strings, numbers, booleans, lists and mappings count by their text.
    type: raw
    required: true
  paths:
    description: Files and directories on the controller whose contents are part of the digest (directories recursively).
    type: list
    elements: path
    default: []
  exclude:
    description:
      - Regular expressions; the keys of a mapping input that match one (in full) are left out. The default leaves out
        the facts of this collection's roles that change from run to run without changing what the roles manage
        (registered results, what the secrets role changed, rotates or plans to restart, the open rotation journal,
        the verification report, the rotation playbook's facts); what the secrets role changed and an open journal
        force a full run of the backends apart.
    type: list
    elements: str
    default: ['caracal_secrets_(result|inventory|changed|restart|shared|rotate|rotate_reason|journal)', 'caracal_verify_report',
              'caracal_rotate_[a-z_]+', 'caracal_playbook_warn_only']
author:
  - caracal.hardened contributors (!UNKNOWN)
'''

EXAMPLES = r'''
- name: The digest of the role's variables and files
  ansible.builtin.set_fact:
    inputs_digest: "{{ {'caracal_web_url': caracal_web_url, 'host': inventory_hostname} | caracal.hardened.digest(paths=[role_path]) }}"
'''

RETURN = r'''
_value:
  description: The SHA-256 digest in hex.
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
'''

import hashlib
import json
import os
import re

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_bytes, to_native

from ansible_collections.caracal.hardened.plugins.module_utils._plain import plain


def _files(root):
    if os.path.isfile(root):
        return [(os.path.basename(root), root)]
    found = []
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != '__pycache__')
        for name in sorted(filenames):
            if name.endswith(('.pyc', '.pyo')):
                continue
            full = os.path.join(directory, name)
            found.append((os.path.relpath(full, root), full))
    return found


# The facts of the roles that change from run to run without changing what the roles manage.
VOLATILE = ('caracal_secrets_(result|inventory|changed|restart|shared|rotate|rotate_reason|journal)', 'caracal_verify_report',
            'caracal_rotate_[a-z_]+', 'caracal_playbook_warn_only')


def digest(data, paths=None, exclude=VOLATILE):
    sha = hashlib.sha256()
    if isinstance(data, dict) and exclude:
        pattern = re.compile('|'.join('(?:%s)' % e for e in exclude))
        data = dict((k, v) for k, v in data.items() if not pattern.fullmatch(to_native(k)))
    sha.update(to_bytes(json.dumps(plain(data), sort_keys=True, separators=(',', ':'))))
    for root in paths or []:
        root = to_native(root)
        if not os.path.exists(root):
            raise AnsibleFilterError('digest: %s does not exist on the controller' % root)
        for relative, full in _files(root):
            sha.update(b'\0' + to_bytes(relative) + b'\0')
            with open(full, 'rb') as handle:
                sha.update(hashlib.sha256(handle.read()).digest())
    return sha.hexdigest()


class FilterModule(object):
    def filters(self):
        return {'digest': digest}
