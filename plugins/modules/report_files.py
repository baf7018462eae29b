#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: report_files
short_description: Write report files on the Ansible controller in one task
version_added: 0.1.0
description:
  - Creates the directory O(dest) (and its missing parents) with O(directory_mode) and writes each of O(files) in it
    with O(mode), on the B(controller), in the controller's own process. It runs no module and opens no connection,
    so it costs a fraction of a M(ansible.builtin.file) task and a M(ansible.builtin.copy) or
    M(ansible.builtin.template) task per file (which run one and two modules each).
  - Each file is written to a temporary file in O(dest) and moved into place, so a reader never sees half a file; an
    existing file keeps its owner and group where the controller's user may keep them. A file that already holds the
    content with the mode is left alone.
  - The modes of O(dest) and of each file are enforced on every run, as M(ansible.builtin.file) and
    M(ansible.builtin.copy) do.
author:
  - caracal.hardened contributors (!UNKNOWN)
extends_documentation_fragment:
  - caracal.hardened.attributes
  - caracal.hardened.attributes.files
  - ansible.builtin.action_common_attributes.flow
attributes:
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
    details:
      - In check mode nothing is written; RV(ignore:changed) tells whether something would be.
  diff_mode:
    support: none
  idempotent:
    support: full
  safe_file_operations:
    support: full
    details:
      - A temporary file in the same directory, moved into place.
options:
  dest:
    description: The directory on the controller. A relative path is relative to the directory Ansible runs in.
    type: path
    required: true
  files:
    description: The files to write, by file name (no directory part), with their content (text, written as UTF-8).
    type: dict
    required: true
  mode:
    description: The mode of every file in O(files), in octal (quoted).
    type: raw
    default: '0640'
  directory_mode:
    description: The mode of O(dest) and of the parents it creates, in octal (quoted).
    type: raw
    default: '0750'
notes:
  - The task's host does not matter (nothing runs on it) and C(delegate_to) and C(become) have no effect; the files are
    written as the user that runs Ansible.
seealso:
  - module: ansible.builtin.copy
  - module: ansible.builtin.template
'''

EXAMPLES = r'''
- name: Write a JSON and a Markdown report for this host on the controller
  caracal.hardened.report_files:
    dest: "{{ playbook_dir }}/reports/{{ inventory_hostname }}"
    files:
      report.json: "{{ report | to_nice_json(indent=2) }}\n"
      report.md: "{{ lookup('ansible.builtin.template', 'report.md.j2') }}"
  # The report is written in check mode too.
  check_mode: false
'''

RETURN = r'''
dest:
  description: The directory, as an absolute path.
  returned: always
  type: str
  sample: /home/ops/caracal/reports/web1
files:
  description: The paths of the files, in the order of O(files).
  returned: always
  type: list
  elements: str
  sample: [/home/ops/caracal/reports/web1/report.json, /home/ops/caracal/reports/web1/report.md]
'''
