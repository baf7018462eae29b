#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: service_logs
short_description: The last log lines of Caracal services, with every secret value redacted
version_added: 0.1.0
description:
  - Reads the last O(tail) log lines of each of O(services) (C(<compose_cli> logs)) and of each systemd unit of
    O(units) (C(journalctl)), and returns them with every value of the secret store replaced by
    C([redacted <secret>]) before anything leaves the host, so that a failure message built from them, the registered
    result and a verbose log never carry a value.
  - Besides each value as stored, the password inside each URL and the percent-encoded form of each value are
    replaced, longest first.
  - A command that fails is reported with its exit status; the module itself fails only on invalid options.
author:
  - caracal.hardened contributors (!UNKNOWN)
extends_documentation_fragment:
  - caracal.hardened.attributes
attributes:
  check_mode:
    support: full
    details:
      - The module only reads; it runs the same in check mode.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  store_path:
    description: The secret store whose values are redacted (one file per secret). A missing store redacts nothing.
    type: path
    required: true
  services:
    description: Services of the Compose project whose container logs are read; needs O(compose_cli).
    type: list
    elements: str
    default: []
  compose_cli:
    description: The C(docker compose) command line of the project (without a subcommand).
    type: list
    elements: str
    default: []
  units:
    description: systemd units whose journal is read.
    type: list
    elements: str
    default: []
  tail:
    description: How many of the last lines to read of each.
    type: int
    default: 40
  max_chars:
    description: Keep at most this many characters of each output (its end).
    type: int
    default: 20000
'''

EXAMPLES = r'''
- name: Read the last log lines of the services that are not ready
  caracal.hardened.service_logs:
    store_path: /opt/caracal/secrets/store
    compose_cli: [docker, compose, --project-directory, /opt/caracal/compose]
    services: [api, gateway]
    units: [caracal-compose.service]
  register: caracal_logs
'''

RETURN = r'''
logs:
  description: One entry per service, then per unit, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The service or unit.
      type: str
    rc:
      description: Its exit status.
      type: int
    text:
      description: Its standard output and error, redacted, at most O(max_chars) characters (the end).
      type: str
redacted:
  description: How many values were replaced, over all outputs.
  returned: always
  type: int
'''

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.six.moves.urllib.parse import quote, unquote, urlsplit

from ansible_collections.caracal.hardened.plugins.module_utils._secrets import trim

# Values shorter than this are not secrets of the contract (they would redact ordinary words).
MIN_VALUE = 8


def known_values(store_path):
    """``[(text, name)]`` to replace, longest first: each value, the password inside a URL and
    the percent-encoded forms."""
    found = {}
    if not os.path.isdir(store_path):
        return []
    for name in sorted(os.listdir(store_path)):
        path = os.path.join(store_path, name)
        if name.startswith('.') or not os.path.isfile(path):
            continue
        try:
            with open(path) as handle:
                value = trim(handle.read())
        except (IOError, OSError, UnicodeDecodeError):
            continue
        forms = [value, quote(value, safe='')]
        if '://' in value:
            password = urlsplit(value).password
            if password:
                forms += [password, unquote(password)]
        for form in forms:
            if len(form) >= MIN_VALUE:
                found.setdefault(form, name)
    return sorted(found.items(), key=lambda item: -len(item[0]))


def redact(text, values):
    """``(text, count)`` with every known value replaced."""
    count = 0
    for value, name in values:
        hits = text.count(value)
        if hits:
            count += hits
            text = text.replace(value, '[redacted %s]' % name)
    return text, count


def commands(p):
    """``[(name, argv)]`` to run."""
    tail = str(p['tail'])
    found = [(svc, list(p['compose_cli']) + ['logs', '--no-color', '--tail', tail, svc]) for svc in p['services']]
    found += [(unit, ['journalctl', '--unit', unit, '--lines', tail, '--no-pager', '--output', 'cat'])
              for unit in p['units']]
    return found


def main():
    module = AnsibleModule(
        argument_spec={
            'store_path': {'type': 'path', 'required': True},
            'services': {'type': 'list', 'elements': 'str', 'default': []},
            'compose_cli': {'type': 'list', 'elements': 'str', 'default': []},
            'units': {'type': 'list', 'elements': 'str', 'default': []},
            'tail': {'type': 'int', 'default': 40},
            'max_chars': {'type': 'int', 'default': 20000},
        },
        supports_check_mode=True,
    )
    p = module.params
    if p['max_chars'] < 1 or p['tail'] < 1:
        module.fail_json(msg='tail and max_chars must be positive')
    if p['services'] and not p['compose_cli']:
        module.fail_json(msg='services needs compose_cli (the docker compose command line of the project)')
    values = known_values(p['store_path'])
    logs, total = [], 0
    for name, argv in commands(p):
        rc, out, err = module.run_command(argv)
        text = '\n'.join(part for part in ((out or '').rstrip('\n'), (err or '').rstrip('\n')) if part)
        text, count = redact(text, values)
        total += count
        logs.append({'name': name, 'rc': rc, 'text': text[-p['max_chars']:]})
    module.exit_json(changed=False, logs=logs, redacted=total)


if __name__ == '__main__':
    main()
