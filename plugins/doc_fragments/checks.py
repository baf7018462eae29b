# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# Options shared by the verification modules (caracal_*_info). Each module also lists
# caracal.hardened.attributes and caracal.hardened.attributes.read_only (its support levels).

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # Every verification module.
    DOCUMENTATION = r'''
options:
  checks:
    description:
      - The checks to run, by id (for example V(containers.capabilities)) or by group (for example V(containers)).
      - Default is every check of the module. An unknown name fails the module.
    type: list
    elements: str
notes:
  - The module only reads. It changes nothing on the host, always returns C(changed=false) and behaves the same in
    check mode.
  - Each check returns one record in RV(checks) with the status V(pass), V(fail) or V(not_applicable).
    V(not_applicable) is a measured conclusion (for example "no container of the project on this host") and says
    why in C(detail); a check that could not measure what it must (a tool or engine that does not answer) fails.
  - Records carry names, fingerprints, owners, modes and addresses, never a secret value.
seealso:
  - name: Harden Security Posture
    description: Caracal's security checklist, which the checks implement.
    link: https://docs.caracal.run/security/hardening/
  - name: Harden Production
    description: Caracal's production hardening checklist, which the checks implement.
    link: https://docs.caracal.run/operations/tls-hardening/
'''

    # Modules that compare the host with the release contract.
    PROFILE = r'''
options:
  profile:
    description:
      - The Caracal release profile whose contract (services, ports, secrets, formats, fail-open settings, stream
        names) the checks compare the host against.
    type: str
    default: '2026.07'
'''

    # Modules that look at the containers of the deployment.
    ENGINE = r'''
options:
  engine:
    description:
      - The container engine that runs the Caracal project.
      - V(auto) asks every installed engine (C(docker), C(podman)). An engine that is installed but does not answer
        makes the container checks fail rather than conclude that nothing runs.
    type: str
    choices: [auto, docker, podman]
    default: auto
  project:
    description:
      - The Compose project (label C(com.docker.compose.project)) or, for containers without that label, the
        container name prefix (C(<project>-<service>), C(systemd-<project>-<service>)) of the deployment.
    type: str
    default: caracal
'''
