#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: secret_files
short_description: Manage the whole Caracal secret inventory of a host
version_added: 0.1.0
description:
  - Generates, validates, rotates, restores and retires every secret file a Caracal host needs, in one call.
  - The secret inventory (names, formats, sizes, weak-key rules, templates, which service reads which file and
    the roll order) comes from the collection's release contract for O(profile); the module restates none of it.
  - A canonical copy of each secret lives in O(store_path), readable by root only. Each service gets a view
    directory O(views_path)/<service> holding only the files that service reads, for the container to mount
    at C(/run/secrets).
  - Everything is validated before anything is written (supplied values, existing files, the KEK guards,
    paths, owners), so a run that fails leaves the host byte-identical.
  - Every change is recorded as a JSON line in O(evidence_path) (who, when, why, which secret, the old and new
    fingerprints, the rollback window, the location), with fingerprints only, never a value.
  - Values never leave the host through this module. Results, evidence, warnings and diffs carry fingerprints
    (a truncated, domain-separated SHA-256 of the value, which does not reveal a random value).
  - Before it writes a changed value, the module records the whole change in a I(rotation journal),
    C(journal.json) in O(archive_path) (names and fingerprints, the consumers to restart in roll order, the
    datastore passwords to apply, and while it writes, the state and evidence it is about to write). The journal
    stays open until P(caracal.hardened.rotation_journal#module) closes it once every consumer is ready; until then
    every run returns its consumers in RV(restart) again. A run killed while writing is completed or undone, secret
    by secret, by the next run (RV(recovered)), so nothing stays half-written.
author:
  - caracal.hardened contributors (!UNKNOWN)
extends_documentation_fragment:
  - caracal.hardened.attributes
  - caracal.hardened.attributes.files
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows fingerprints, owners and modes of the store, the views and the archive, never a value.
  idempotent:
    support: partial
    details:
      - Idempotent unless O(rotate) or O(restore) is set. Those are actions, like C(force) in other modules, and
        act on every run that names a secret.
  safe_file_operations:
    support: full
options:
  profile:
    description:
      - The Caracal release profile whose secret inventory is managed.
    type: str
    default: '2026.07'
  store_path:
    description:
      - Directory of the canonical secret store, one file per secret named by its contract name (for example
        C(zoneKek)).
      - The directory is kept at mode V(0700) and the files at V(0600), all owned by root.
    type: path
    required: true
  views_path:
    description:
      - Directory of the per-service views, C(<views_path>/<service>/<secretFile>).
      - Each service directory is kept at mode V(0750), owner root, group O(group), and holds only the files that
        service reads; files it does not read are removed, and so are the directories of contract services not in
        O(services). The O(views_path) directory itself is kept the same way.
      - Files are replaced by an atomic rename inside the service directory. Mount the B(directory) into the
        container, not single files, so that a restarted container sees the new file (a single-file bind mount
        keeps the old inode).
    type: path
    required: true
  archive_path:
    description:
      - Root-only directory (V(0700)) of retired values, C(<archive_path>/<secret>/<UTC stamp>-<fingerprint>), and
        of C(state.json), which records each secret's creation time, fingerprint and source and each archived
        value's rollback window.
      - Archived values are removed once their rollback window has passed.
    type: path
    required: true
  evidence_path:
    description:
      - JSON-lines evidence log, appended to, mode V(0600), owned by root.
      - Missing parent directories are created.
    type: path
    required: true
  group:
    description:
      - Group (numeric gid or group name) that owns the views and may read them.
      - Defaults to the application group id of O(profile) (the uid/gid the Caracal containers run as).
    type: str
  mode:
    description:
      - Mode of the view files, in octal.
      - Only owner read/write and group read are allowed, and group read is required.
    type: raw
    default: '0440'
  services:
    description:
      - The services this host runs. Views are written only for these.
      - Defaults to every service of O(profile).
    type: list
    elements: str
  names:
    description:
      - The secrets to manage. Defaults to every secret of O(profile).
      - A derived secret (a URL) brings in the passwords it embeds, and a password brings in the URLs derived from
        it. Derived secrets are always rebuilt from their passwords.
    type: list
    elements: str
  values:
    description:
      - Values supplied by the operator, or shared between hosts, by secret name.
      - Each is validated as Caracal validates it. When it differs from the stored value, the stored value is
        replaced (action C(rotated), reason C(source-changed)) and the old one archived.
      - Derived secrets cannot be supplied; supply the password they embed.
    type: dict
  rotate:
    description:
      - Secrets to replace with a newly generated value on this run. The old value is archived.
      - This is an action, not a state. Every run that names a secret rotates it again.
    type: list
    elements: str
  rotate_reason:
    description:
      - The reason recorded for O(rotate).
    type: str
    choices: [forced, exposure]
    default: forced
  restore:
    description:
      - Secrets to put back to their most recent archived value (action C(restored), reason C(rollback)), after a
        rotation failed verification. The replaced value is archived in turn, the restored one leaves the archive.
      - The age of a restored value restarts at the restore.
    type: list
    elements: str
  policies:
    description:
      - Per-secret overrides of O(default_max_age_days) and O(default_rollback_days), by secret name.
      - Each value is a dictionary with the optional integer keys C(max_age_days) and C(rollback_days).
    type: dict
  default_max_age_days:
    description:
      - Age in days after which a secret is rotated. V(0) means never.
      - Does not apply to the KEK (a destructive rotation) unless O(policies) sets its C(max_age_days), nor to
        derived secrets.
    type: int
    default: 90
  default_rollback_days:
    description:
      - Days an archived value is kept for O(restore) before it is retired. V(0) keeps archived values for ever
        (use it for the audit HMAC key, whose old values still verify the historical audit chain).
    type: int
    default: 7
  allow_destructive_kek_rotation:
    description:
      - Acknowledge that replacing the KEK makes every zone key in the database undecryptable.
      - Without it, rotating the KEK by O(rotate), by a differing O(values) entry or by O(restore) fails, and a KEK
        due by its age policy is reported in RV(due) and left alone.
    type: bool
    default: false
  data_present:
    description:
      - Declare that the database holds data encrypted with the KEK.
      - When the KEK file is missing and this is set, or C(state.json) or the evidence log show that a KEK existed,
        the module fails with recovery instructions and changes nothing. A lost KEK is never regenerated.
    type: bool
    default: false
  data_paths:
    description:
      - Directories that hold the database's files, such as the PostgreSQL volume of the deployment. When one of
        them exists and has an entry, the database is taken to hold data, as with O(data_present).
      - Missing paths and paths that are not directories are ignored. Only the names of the entries are read.
    type: list
    elements: path
    default: []
  actor:
    description:
      - Who is making the change, for the evidence log.
      - Defaults to C(awx-job-<id>) when E(AWX_JOB_ID) or E(TOWER_JOB_ID) is set in the module's environment, else
        the user running the module. Pass the controller's identity from the play for a meaningful record.
    type: str
  stamp:
    description:
      - Also compare the host with a role stamp in the same call, as P(caracal.hardened.host_stamp#module) with
        O(caracal.hardened.host_stamp#module:state=checked) does, after the secret files are handled. The result is in
        RV(stamp). The secrets role uses it for the account and directories, so that a run that finds nothing to do
        makes one module call.
    type: dict
    suboptions:
      path:
        description: The stamp file.
        type: path
        required: true
      inputs:
        description: Digest of the inputs of the role's run (never logged or returned).
        type: str
        required: true
      watch:
        description:
          - What the fingerprint covers, with the keys and rules of O(caracal.hardened.host_stamp#module:watch)
            (C(paths), C(trees), C(units), C(packages), C(commands)); validated the same way.
        type: dict
        default: {}
      max_age:
        description: Seconds after which the stamp no longer counts. V(0) means no limit.
        type: int
        default: 86400
notes:
  - The module writes files; it does not restart anything and does not change datastore passwords. When
    RV(journal.sync) holds a password, make the datastore accept it (P(caracal.hardened.datastore_credentials#module))
    before restarting the services in RV(restart), in that order, then close the journal.
  - Existing files without a record in C(state.json) are adopted on the first run (their age starts at the file's
    modification time) after they pass validation; an invalid existing value fails the run.
  - Writes are atomic, a V(0600) temporary file in the target directory renamed into place, with owner, group and
    mode enforced on every path on every run. Symbolic links are refused.
  - Evidence C(ts) and every other time are UTC, ISO-8601 with a C(Z) suffix.
seealso:
  - name: Caracal key management
    description: The rotation procedure this module implements.
    link: https://docs.caracal.run/operations/key-management/
'''

EXAMPLES = r'''
- name: Generate or check every secret of a single-host deployment
  caracal.hardened.secret_files:
    store_path: /etc/caracal/secrets
    views_path: /etc/caracal/views
    archive_path: /var/lib/caracal-secrets/archive
    evidence_path: /var/log/caracal/secrets-evidence.jsonl
    actor: "{{ lookup('ansible.builtin.env', 'AWX_JOB_ID') | default(ansible_user_id, true) }}"
    policies:
      auditHmacKey:
        rollback_days: 0
  register: caracal_secrets

- name: Rotate the admin token after an exposure, for the web host only
  caracal.hardened.secret_files:
    store_path: /etc/caracal/secrets
    views_path: /etc/caracal/views
    archive_path: /var/lib/caracal-secrets/archive
    evidence_path: /var/log/caracal/secrets-evidence.jsonl
    services: [web]
    rotate: [caracalAdminToken]
    rotate_reason: exposure
  register: caracal_secrets

- name: Share the HMAC keys of a multi-host deployment (values come from a vault)
  caracal.hardened.secret_files:
    store_path: /etc/caracal/secrets
    views_path: /etc/caracal/views
    archive_path: /var/lib/caracal-secrets/archive
    evidence_path: /var/log/caracal/secrets-evidence.jsonl
    services: [sts, api]
    names: [zoneKek, auditHmacKey, streamsHmacKey, gatewayStsHmacKey]
    values:
      zoneKek: "{{ vault_caracal_zone_kek }}"
      auditHmacKey: "{{ vault_caracal_audit_hmac_key }}"
    data_present: true
  no_log: true

- name: Roll back a rotation that failed verification
  caracal.hardened.secret_files:
    store_path: /etc/caracal/secrets
    views_path: /etc/caracal/views
    archive_path: /var/lib/caracal-secrets/archive
    evidence_path: /var/log/caracal/secrets-evidence.jsonl
    restore: [gatewayStsHmacKey]

- name: Restart what changed, in roll order
  ansible.builtin.debug:
    msg: "restart {{ caracal_secrets.restart | join(', ') }}"
  when: caracal_secrets.restart | length > 0
'''

RETURN = r'''
secrets:
  description: Each managed secret, by name. Never a value.
  returned: success
  type: dict
  contains:
    fingerprint:
      description: The fingerprint of the value after the run.
      type: str
      sample: 3f9a0c1de2b47a61
    created:
      description: When the value was created (UTC, ISO-8601).
      type: str
      sample: '2026-07-03T10:15:00Z'
    age_days:
      description: Whole days since RV(secrets.created).
      type: int
    max_age_days:
      description: The age policy in days, V(0) meaning never.
      type: int
    due:
      description: Whether the value is older than its age policy after the run.
      type: bool
    path:
      description: The canonical file in O(store_path).
      type: str
    action:
      description:
        - What this run did to the value. V(adopted) means an existing file or a supplied value was taken over
          without replacing a stored value.
      type: str
      choices: [unchanged, generated, rotated, restored, derived, adopted]
  sample:
    caracalAdminToken:
      fingerprint: 3f9a0c1de2b47a61
      created: '2026-07-03T10:15:00Z'
      age_days: 0
      max_age_days: 90
      due: false
      path: /etc/caracal/secrets/caracalAdminToken
      action: rotated
changed_secrets:
  description: Names whose value changed on this run (or would change, in check mode), derived ones included.
  returned: success
  type: list
  elements: str
  sample: [postgresPassword, databaseUrl, authDatabaseUrl]
restart:
  description:
    - Services of O(services) to restart, in roll order, because a file they read changed.
  returned: success
  type: list
  elements: str
  sample: [api, gateway, web]
retired:
  description: Archived values removed on this run because their rollback window passed.
  returned: success
  type: list
  elements: dict
  contains:
    secret:
      description: The secret name.
      type: str
    fingerprint:
      description: The fingerprint of the retired value.
      type: str
evidence:
  description: The evidence records appended on this run (would be appended, in check mode).
  returned: success
  type: list
  elements: dict
  contains:
    ts:
      description: UTC time of the run, ISO-8601.
      type: str
    actor:
      description: Who ran it (O(actor)).
      type: str
    action:
      description: What happened.
      type: str
      choices: [generated, rotated, adopted, restored, retired, derived]
    reason:
      description: Why.
      type: str
      choices: [initial, age, forced, exposure, rollback, window-expired, source-changed]
    secret:
      description: The secret name.
      type: str
    profile:
      description: The release profile.
      type: str
    old_fingerprint:
      description: Fingerprint of the value replaced or retired, if any.
      type: str
    new_fingerprint:
      description: Fingerprint of the new value, if any.
      type: str
    rollback_until:
      description: Until when the replaced value can be restored (V(null) when kept for ever or not archived).
      type: str
    location:
      description: The file the record is about.
      type: str
due:
  description: Secrets due by their age policy but not rotated because the rotation is blocked (the KEK without
    O(allow_destructive_kek_rotation)).
  returned: success
  type: list
  elements: str
  sample: [zoneKek]
journal:
  description:
    - The open rotation journal after this run (V(null) when none is open), names and fingerprints only.
    - Its consumers are in RV(restart); close it with P(caracal.hardened.rotation_journal#module) once they are ready.
  returned: success
  type: dict
  contains:
    id:
      description: The journal's id (UTC stamp and a random suffix).
      type: str
    opened:
      description: When the change began (UTC, ISO-8601).
      type: str
    updated:
      description: When a run last added to it.
      type: str
    profile:
      description: The release profile.
      type: str
    secrets:
      description: Each secret of the change, with C(old_fingerprint) (before the whole change), C(new_fingerprint),
        C(action) and C(reason).
      type: dict
    restart:
      description: Every consumer on this host still to restart, in roll order.
      type: list
      elements: str
    sync:
      description: Datastore passwords of the change (the backend makes the datastores accept them).
      type: list
      elements: str
    restorable:
      description: Secrets a rollback puts back to their value from before the change.
      type: list
      elements: str
recovered:
  description: Secrets whose write an interrupted run had begun, completed by this run (state, archive, evidence).
  returned: success
  type: list
  elements: str
stamp:
  description: The comparison with O(stamp), as P(caracal.hardened.host_stamp#module) returns it. A stamp that no longer
    matches has been removed (not in check mode).
  returned: when O(stamp) is set
  type: dict
  contains:
    converged:
      description: Whether the host matches the stamp.
      type: bool
    reasons:
      description: Why not, one line each (names, never content).
      type: list
      elements: str
    items:
      description: How many items the fingerprint covers.
      type: int
'''

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.caracal.hardened.plugins.module_utils._contract import DEFAULT_PROFILE, ContractError
from ansible_collections.caracal.hardened.plugins.module_utils._secret_store import (
    ApplyError,
    PlanError,
    SecretFiles,
)
from ansible_collections.caracal.hardened.plugins.module_utils._secrets import SecretValidationError
from ansible_collections.caracal.hardened.plugins.module_utils._stamp import check as check_stamp, validated_watch


def argument_spec():
    return {
        'profile': {'type': 'str', 'default': DEFAULT_PROFILE},
        'store_path': {'type': 'path', 'required': True},
        'views_path': {'type': 'path', 'required': True},
        'archive_path': {'type': 'path', 'required': True},
        'evidence_path': {'type': 'path', 'required': True},
        'group': {'type': 'str'},
        'mode': {'type': 'raw', 'default': '0440'},
        'services': {'type': 'list', 'elements': 'str'},
        'names': {'type': 'list', 'elements': 'str'},
        'values': {'type': 'dict', 'no_log': True},
        'rotate': {'type': 'list', 'elements': 'str'},
        'rotate_reason': {'type': 'str', 'choices': ['forced', 'exposure'], 'default': 'forced'},
        'restore': {'type': 'list', 'elements': 'str'},
        'policies': {'type': 'dict'},
        'default_max_age_days': {'type': 'int', 'default': 90},
        'default_rollback_days': {'type': 'int', 'default': 7},
        'allow_destructive_kek_rotation': {'type': 'bool', 'default': False},
        'data_present': {'type': 'bool', 'default': False},
        'data_paths': {'type': 'list', 'elements': 'path', 'default': []},
        'actor': {'type': 'str'},
        'stamp': {'type': 'dict', 'options': {
            'path': {'type': 'path', 'required': True},
            'inputs': {'type': 'str', 'required': True, 'no_log': True},
            # Checked against host_stamp's spec by the shared code (one documentation of its keys).
            'watch': {'type': 'dict', 'default': {}},
            'max_age': {'type': 'int', 'default': 86400},
        }},
    }


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    role_stamp = module.params['stamp']
    if role_stamp:  # checked before anything changes
        role_stamp['watch'] = validated_watch(module, role_stamp['watch'], 'stamp.watch')
    try:
        inventory = SecretFiles(module).plan()
    except (PlanError, ContractError, SecretValidationError) as exc:
        module.fail_json(msg=to_native(exc), errors=getattr(exc, 'errors', None) or [])
    if not module.check_mode:
        try:
            inventory.tree.apply()
        except ApplyError as exc:
            module.fail_json(msg=to_native(exc), changed=True)
    result = inventory.result()
    if role_stamp:
        # Bookkeeping of the role, not a change of the inventory: never counted in changed.
        result['stamp'] = check_stamp(module, role_stamp['path'], role_stamp['inputs'], role_stamp['watch'],
                                      role_stamp['max_age'])
        result['stamp'].pop('changed')
    module.exit_json(**result)


if __name__ == '__main__':
    main()
