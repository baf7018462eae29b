#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: caracal_secrets_info
short_description: Verify Caracal's secret delivery and keys against the hardening checklists
version_added: 0.1.0
description:
  - Reads the secrets layout that M(caracal.hardened.secret_files) writes (store, per-service views, archive with
    C(state.json), evidence log), the containers of the project and the environment and command line of every
    process, and compares them with the release contract.
  - "C(secrets.file_delivery): every secret reaches its service as C(NAME_FILE=/run/secrets/<file>) from the
    service's own view directory mounted read-only, and no container sets a secret variable C(NAME) itself."
  - "C(secrets.no_inline_values): no value of the store appears in a container's environment, the rest of its
    inspect output (labels, command, health check), or any process's environment or command line
    (C(/proc/*/environ), C(/proc/*/cmdline)). Findings name the place and the secret's fingerprint."
  - "C(secrets.permissions): owner and mode of every path: store V(0700)/V(0600) root, views V(0750) root:O(group)
    with files O(mode), archive V(0700)/V(0600), evidence log V(0600). A world-readable file fails."
  - "C(secrets.views): each view holds only the files its service reads. C(secrets.runtime_profiles): the
    O(runtime_profiles) directories and their C(caracal.toml) and client secret are owner-only."
  - "C(keys.journal): no rotation journal is open (C(journal.json) in O(archive_path)): an open one means a rotation
    still owes credential syncs or restarts; the finding names them."
  - "C(health.credentials): Postgres and Redis accept every credential the services' views hold (each Postgres URL is
    a SCRAM login, each Redis URL an C(AUTH)), reached at their container address; a refusal names the service and the
    secret, never the value."
  - "C(keys.present): every secret the host's services need is in the store, not empty, identical in each view and
    recorded in C(state.json). C(keys.hmac), C(keys.kek), C(keys.tokens): each value passes Caracal's own validation
    (hex, size, the weak-KEK patterns; URLs embed the current password), through the collection's validator."
  - "C(keys.rotation): each value is younger than its policy (C(state.json) creation time, O(default_max_age_days),
    O(policies); the KEK has no age policy unless one is set). C(keys.evidence): the evidence log is private, parses
    and records every current value. C(keys.kek_backup): a file under O(kek_backup_path) is the current KEK (a
    private plain copy) or carries its fingerprint in its name (an encrypted backup)."
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
    description: The canonical secret store (C(store_path) of M(caracal.hardened.secret_files)).
    type: path
    required: true
  views_path:
    description: The per-service view directories (C(views_path) of M(caracal.hardened.secret_files)).
    type: path
    required: true
  archive_path:
    description: The archive holding C(state.json) (C(archive_path) of M(caracal.hardened.secret_files)).
    type: path
    required: true
  evidence_path:
    description: The evidence log (C(evidence_path) of M(caracal.hardened.secret_files)).
    type: path
    required: true
  services:
    description:
      - The services this host runs. Their views and the secrets they read are checked.
      - Defaults to every service of O(profile).
    type: list
    elements: str
  group:
    description:
      - Group (numeric gid or name) that owns the views. Defaults to the application gid of O(profile).
    type: str
  mode:
    description: The mode the view files must not exceed, in octal.
    type: raw
    default: '0440'
  policies:
    description:
      - "Per-secret overrides of O(default_max_age_days), by secret name, as given to M(caracal.hardened.secret_files)
        (C({auditHmacKey: {max_age_days: 30}}))."
    type: dict
  default_max_age_days:
    description: Age in days beyond which a secret is overdue; V(0) means never.
    type: int
    default: 90
  kek_backup_path:
    description:
      - A file or directory holding the KEK backups. Without it, C(keys.kek_backup) is not applicable.
      - Plain copies are compared by value (files of at most 256 bytes); other files match when their name contains
        the KEK fingerprint.
    type: path
  runtime_profiles:
    description:
      - Directories of runtime profiles (C(caracal.toml) and C(client_secret)) written on this host. Without any,
        C(secrets.runtime_profiles) is not applicable.
    type: list
    elements: path
    default: []
  timeout:
    description: Seconds to wait for Postgres and Redis in C(health.credentials).
    type: float
    default: 5
  scan_processes:
    description:
      - Search the environment and command line of every process (C(/proc)) for secret values, besides the
        containers' inspect output. Needs root to read other users' processes.
    type: bool
    default: true
'''

EXAMPLES = r'''
- name: Verify the secrets of a host laid out by the caracal.hardened.secrets role
  caracal.hardened.caracal_secrets_info:
    store_path: /opt/caracal/secrets/store
    views_path: /opt/caracal/secrets/services
    archive_path: /opt/caracal/secrets/archive
    evidence_path: /opt/caracal/evidence/secrets.jsonl
    kek_backup_path: /var/backups/caracal/kek
  register: caracal_secrets_verify

- name: Only the key checks
  caracal.hardened.caracal_secrets_info:
    store_path: /opt/caracal/secrets/store
    views_path: /opt/caracal/secrets/services
    archive_path: /opt/caracal/secrets/archive
    evidence_path: /opt/caracal/evidence/secrets.jsonl
    checks: [keys]
    policies:
      auditHmacKey:
        max_age_days: 30
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

from ansible_collections.caracal.hardened.plugins.module_utils._checks_groups import SECRETS, run_group

# The checks of this module, in the order of its records (the glue is _checks_groups.SECRETS).
CHECK_IDS = SECRETS.check_ids


def main():
    run_group(AnsibleModule(argument_spec=SECRETS.argument_spec(), supports_check_mode=True), SECRETS)


if __name__ == '__main__':
    main()
