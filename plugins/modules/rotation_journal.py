#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: rotation_journal
short_description: Close the rotation journal of a Caracal host once every consumer is ready
version_added: 0.2.0
description:
  - P(caracal.hardened.secret_files#module) records every change of secret values in a I(rotation journal)
    (C(journal.json) in its archive directory) before it writes anything - the secrets with their fingerprints before
    and after, the consumers to roll in roll order and the datastore passwords to apply. The journal stays open, and
    every later run of the secrets role returns its consumers to restart again, until the deployment backend closes
    it with this module, after every consumer is ready with the new values.
  - Closing appends the journal (names and fingerprints only) to C(journals.jsonl) in the same directory, with the
    outcome, and removes C(journal.json).
  - A journal still in its C(prepared) phase (a run was killed while writing files) is never closed here; the next
    run of P(caracal.hardened.secret_files#module) finishes or undoes those writes first.
author:
  - caracal.hardened contributors (!UNKNOWN)
extends_documentation_fragment:
  - caracal.hardened.attributes
  - caracal.hardened.attributes.files
attributes:
  check_mode:
    support: full
    details:
      - In check mode the journal is left open; RV(journal) says what would be closed.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - Once closed, a journal is gone; closing again changes nothing.
  safe_file_operations:
    support: partial
    details:
      - The history is appended with C(O_APPEND) and synced before the journal is removed.
options:
  archive_path:
    description: The archive directory of P(caracal.hardened.secret_files#module) (O(caracal.hardened.secret_files#module:archive_path)).
    type: path
    required: true
  id:
    description:
      - The id of the journal the caller finished (RV(caracal.hardened.secret_files#module:journal.id)). When the open
        journal has another id (a later run opened it), the module fails and leaves it open.
      - Omit it to close whatever journal is open.
    type: str
  outcome:
    description:
      - How the change ended, recorded in the history.
      - Default - V(rolled-back) when every secret of the change holds its value from before it, else V(completed).
    type: str
    choices: [completed, rolled-back]
seealso:
  - module: caracal.hardened.secret_files
'''

EXAMPLES = r'''
- name: Close the journal once the consumers are rolled and ready
  caracal.hardened.rotation_journal:
    archive_path: /opt/caracal/secrets/archive
    id: "{{ caracal_secrets_journal.id }}"
  when: caracal_secrets_journal is not none
'''

RETURN = r'''
journal:
  description: The journal that was closed (would be closed, in check mode), or V(null) when none was open.
  returned: success
  type: dict
  contains:
    id:
      description: The journal's id.
      type: str
    opened:
      description: When it was opened (UTC, ISO-8601).
      type: str
    secrets:
      description: Each secret of the change with C(old_fingerprint), C(new_fingerprint), C(action) and C(reason).
      type: dict
    restart:
      description: The consumers it rolled, in roll order.
      type: list
      elements: str
    sync:
      description: The datastore passwords the change applied.
      type: list
      elements: str
    restorable:
      description: The secrets a rollback would have put back (names).
      type: list
      elements: str
    outcome:
      description: How the change ended (V(completed) or V(rolled-back)).
      type: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.caracal.hardened.plugins.module_utils._secret_store import PlanError, close_journal


def main():
    module = AnsibleModule(
        argument_spec={
            'archive_path': {'type': 'path', 'required': True},
            'id': {'type': 'str'},
            'outcome': {'type': 'str', 'choices': ['completed', 'rolled-back']},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        journal = close_journal(p['archive_path'], p['id'], p['outcome'], check_mode=module.check_mode)
    except PlanError as exc:
        module.fail_json(msg=to_native(exc))
    except (IOError, OSError) as exc:
        module.fail_json(msg='closing the rotation journal in %s failed: %s' % (p['archive_path'], to_native(exc)))
    module.exit_json(changed=journal is not None, journal=journal)


if __name__ == '__main__':
    main()
