#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: caracal_runtime_info
short_description: Verify the running Caracal containers against the hardening checklists
version_added: 0.1.0
description:
  - Inspects the containers of the Caracal project (C(docker inspect) or C(podman inspect), and C(/proc/<pid>/status)
    of their first process) and compares them with the release contract.
  - "C(mode.caracal_mode): every application container runs with C(CARACAL_MODE) V(stable) or V(rc) (unset means the
    contract default, V(stable)); V(dev) fails."
  - "C(mode.fail_open): no container sets a fail-open switch of the contract (C(INSECURE_STS), C(INSECURE_HTTP),
    C(JTI_FAIL_OPEN=true))."
  - "C(containers.non_root), C(containers.capabilities), C(containers.no_new_privileges), C(containers.read_only),
    C(containers.limits): non-root processes, C(CapDrop ALL) with nothing added beyond the contract (Postgres' five
    capabilities), no-new-privileges, a read-only root where the contract asks for one, and memory, CPU and pids
    limits. The process facts (uid, bounding capability set, C(NoNewPrivs)) are measured when the process is
    visible, the configuration otherwise."
  - "C(containers.replay_state): sts and gateway keep their replay state on a persistent mount."
  - "C(access.control): the Control gate file is absent unless O(control_enabled), and the api mounts it read-only.
    C(access.sts_admin_token): C(STS_ADMIN_TOKEN) is empty. C(access.gateway_allowlist) (advisory, not required):
    C(UPSTREAM_HOST_ALLOWLIST) is set."
  - "C(metrics.bearer): C(/metrics) of every running service that reads the metrics bearer answers 401 without it
    (asked on its loopback publish, or its container address). With O(store_path), it must answer 200 to the
    current bearer of the store and 401 to the newest retired ones of O(archive_path) (a service that was not
    restarted after a rotation still holds a retired bearer)."
  - "C(health.ready): every long-running service of the contract runs, its container is healthy, and every
    application's C(/ready) answers 200 (the failing service is named with the reason of its 503, values of the store
    redacted); every one-shot job completed with exit status 0 (its container, or its systemd unit
    C(<project>-<job>.service) once the engine removed the container). A stopped stack fails."
author:
  - caracal.hardened contributors (!UNKNOWN)
extends_documentation_fragment:
  - caracal.hardened.attributes
  - caracal.hardened.attributes.read_only
  - caracal.hardened.checks
  - caracal.hardened.checks.profile
  - caracal.hardened.checks.engine
options:
  control_enabled:
    description:
      - Whether Control is meant to be on (C(caracal_control_enabled)). When false, a gate file fails C(access.control).
    type: bool
    default: false
  timeout:
    description:
      - Seconds to wait for each metrics and readiness endpoint.
    type: float
    default: 5
  store_path:
    description:
      - The secret store. When set, C(metrics.bearer) also asks with the current bearer, and values of the store are
        redacted from the reasons of C(health.ready).
    type: path
  archive_path:
    description:
      - The secret archive. C(metrics.bearer) also asks with the newest retired bearers (three at most). Used with
        O(store_path).
    type: path
'''

EXAMPLES = r'''
- name: Verify the running containers
  caracal.hardened.caracal_runtime_info:
  register: caracal_runtime

- name: Only the container hardening checks
  caracal.hardened.caracal_runtime_info:
    checks: [containers]
    engine: docker
    project: caracal

- name: Fail when a required check failed
  ansible.builtin.assert:
    that: caracal_runtime.summary.passed
    fail_msg: "{{ caracal_runtime.summary.failed_required | join(', ') }}"
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
containers:
  description: The containers of the project that were checked.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The container name.
      type: str
    service:
      description: The service it runs.
      type: str
    status:
      description: The engine's state of the container.
      type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.caracal.hardened.plugins.module_utils._checks_groups import RUNTIME, run_group

# The checks of this module, in the order of its records (the glue is _checks_groups.RUNTIME).
CHECK_IDS = RUNTIME.check_ids


def main():
    run_group(AnsibleModule(argument_spec=RUNTIME.argument_spec(), supports_check_mode=True), RUNTIME)


if __name__ == '__main__':
    main()
