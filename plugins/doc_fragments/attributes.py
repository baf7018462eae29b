# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# The attribute descriptions every module of the collection shares.  A module lists
# this fragment (and C(files) when it writes files) and declares its own support level,
# or lists C(read_only) for the support level of a module that only reads the host.

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # Standard attributes: every module.
    DOCUMENTATION = r'''
options: {}
attributes:
  check_mode:
    description: Can run in C(check_mode) and return changed status prediction without modifying target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in C(check_mode)), when in diff mode.
  idempotent:
    description:
      - When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
      - This assumes that the system controlled/queried by the module has not changed in a relevant way.
'''

    # Modules that write files.
    FILES = r'''
options: {}
attributes:
  safe_file_operations:
    description: Uses Ansible's strict file operation functions to ensure proper permissions and avoid data corruption.
'''

    # Support levels of the modules that only read the host (the verification modules).
    READ_ONLY = r'''
options: {}
attributes:
  check_mode:
    support: full
    details:
      - The module only reads; check mode changes nothing either.
  diff_mode:
    support: none
  idempotent:
    support: full
'''
