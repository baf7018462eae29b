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

import datetime
import hashlib
import json
import os
import re
import stat
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_native

STAMP_VERSION = 1
UNIT_PROPERTIES = ('LoadState', 'ActiveState', 'SubState', 'UnitFileState', 'DropInPaths')


def _digest(value):
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(',', ':')).encode('utf-8')).hexdigest()


def _file_digest(path):
    sha = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 16), b''):
            sha.update(block)
    return sha.hexdigest()


def path_record(path):
    """What the fingerprint keeps of one path: type, mode, owner, group, content or link target."""
    try:
        st = os.lstat(path)
    except OSError:
        return {'missing': True}
    record = {'mode': stat.S_IMODE(st.st_mode), 'uid': st.st_uid, 'gid': st.st_gid}
    if stat.S_ISLNK(st.st_mode):
        record.update(type='link', target=os.readlink(path))
    elif stat.S_ISDIR(st.st_mode):
        record['type'] = 'directory'
    elif stat.S_ISREG(st.st_mode):
        record.update(type='file', content=_file_digest(path))
    else:
        record['type'] = 'other'
    return record


def tree_paths(root):
    """The root and every entry below it, sorted; links are not followed."""
    found = [root]
    for directory, dirnames, filenames in os.walk(root):
        dirnames.sort()
        found.extend(os.path.join(directory, name) for name in sorted(dirnames + filenames))
    return found


def parse_units(output, units):
    """systemctl show output (blocks in the order asked) -> {unit: {property: value}}."""
    blocks = output.strip('\n').split('\n\n') if output.strip() else []
    parsed = {}
    for unit, block in zip(units, blocks):
        props = {}
        for line in block.splitlines():
            key, sep, value = line.partition('=')
            if sep and key in UNIT_PROPERTIES:
                props[key] = value
        parsed[unit] = props
    for unit in units[len(blocks):]:
        parsed[unit] = {'unreadable': True}
    return parsed


def parse_packages(output, packages):
    """dpkg-query lines 'name status version' -> {package: 'status version'}; missing ones are 'absent'."""
    found = {}
    for line in output.splitlines():
        name, sep, rest = line.partition(' ')
        if sep:
            found[name.split(':')[0]] = rest.strip()
    return dict((package, found.get(package, 'absent')) for package in packages)


def parse_moment(value):
    """ISO-8601 (UTC) or epoch seconds -> epoch seconds (float); None for an empty value."""
    if value is None or value == '':
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = to_native(value).strip()
    if re.match(r'^\d+(\.\d+)?$', text):
        return float(text)
    text = text.replace('Z', '+00:00')
    for fmt in ('%Y-%m-%dT%H:%M:%S%z', '%Y-%m-%d %H:%M:%S%z', '%Y%m%d%H%M%S%z'):
        try:
            moment = datetime.datetime.strptime(text.replace('+00:00', '+0000'), fmt)
            return (moment - datetime.datetime(1970, 1, 1, tzinfo=moment.tzinfo)).total_seconds()
        except ValueError:
            continue
    raise ValueError('cannot read %r as a UTC moment (ISO-8601 or epoch seconds)' % (value,))


class Fingerprint(object):
    """Reads the host: one record (then one digest) per item."""

    def __init__(self, module):
        self.module = module

    def _run(self, argv, handle_exceptions=True):
        return self.module.run_command(argv, environ_update={'LC_ALL': 'C'}, handle_exceptions=handle_exceptions)

    def items(self, params):
        items = {}
        paths = list(params.get('paths') or [])
        for root in params.get('trees') or []:
            paths.extend(tree_paths(root))
        for path in paths:
            items['path %s' % path] = path_record(path)
        if params.get('units'):
            units = list(params['units'])
            rc, out, err = self._run(['systemctl', 'show', '--property=' + ','.join(UNIT_PROPERTIES), '--'] + units)
            if rc != 0:
                self.module.fail_json(msg='systemctl show failed (%d): %s' % (rc, err.strip()))
            for unit, props in parse_units(out, units).items():
                items['unit %s' % unit] = props
        if params.get('packages'):
            rc, out, err = self._run(['dpkg-query', '-W', '-f', '${Package} ${Status} ${Version}\n', '--']
                                     + list(params['packages']))
            # dpkg-query exits 1 when a package is unknown; the missing ones are recorded as absent.
            if rc not in (0, 1):
                self.module.fail_json(msg='dpkg-query failed (%d): %s' % (rc, err.strip()))
            for package, status in parse_packages(out, params['packages']).items():
                items['package %s' % package] = status
        for command in params.get('commands') or []:
            argv = [to_native(arg) for arg in command['argv']]
            try:
                rc, out, err = self._run(argv, handle_exceptions=False)
            except (IOError, OSError) as exc:  # a missing binary is a state too
                rc, out = -1, to_native(exc)
            for pattern in command.get('ignore') or []:
                out = re.sub(pattern, '', out)
            items['command %s' % ' '.join(argv)] = {'rc': rc, 'out': out}
        return dict((key, _digest(record)) for key, record in items.items())


def compare(stamp, inputs, items, now, max_age):
    """Why the host does not match the stamp (an empty list: it matches)."""
    if stamp is None:
        return ['no stamp']
    if stamp.get('version') != STAMP_VERSION:
        return ['stamp of another version']
    reasons = []
    if stamp.get('inputs') != inputs:
        reasons.append('inputs changed')
    written = stamp.get('written', 0)
    if max_age > 0 and now - written >= max_age:
        reasons.append('last full run %d s ago (max_age %d s)' % (now - written, max_age))
    valid_until = stamp.get('valid_until')
    if valid_until is not None and now >= valid_until:
        reasons.append('a recorded date has passed (renewal or rotation due)')
    recorded = stamp.get('items') or {}
    for key in sorted(set(recorded) | set(items)):
        if key not in items:
            reasons.append('%s no longer watched' % key)
        elif key not in recorded:
            reasons.append('%s not in the stamp' % key)
        elif recorded[key] != items[key]:
            reasons.append('%s changed' % key)
    return reasons


def read_stamp(path):
    try:
        with open(path, 'rb') as handle:
            return json.loads(handle.read().decode('utf-8'))
    except (IOError, OSError):
        return None
    except ValueError:
        return {'version': 'unreadable'}


def write_stamp(module, path, stamp):
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o700)
    tmp = path + '.tmp'
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'wb') as handle:
        handle.write(to_bytes(json.dumps(stamp, sort_keys=True, indent=1) + '\n'))
    module.atomic_move(tmp, path)
    os.chmod(path, 0o600)


def remove_stamp(path):
    try:
        os.unlink(path)
        return True
    except OSError:
        return False


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            state=dict(type='str', choices=['checked', 'present', 'absent'], default='checked'),
            inputs=dict(type='str', no_log=True),
            watch=dict(type='dict', default={}, options=dict(
                paths=dict(type='list', elements='path', default=[]),
                trees=dict(type='list', elements='path', default=[]),
                units=dict(type='list', elements='str', default=[]),
                packages=dict(type='list', elements='str', default=[]),
                commands=dict(type='list', elements='dict', default=[], options=dict(
                    argv=dict(type='list', elements='str', required=True),
                    ignore=dict(type='list', elements='str', default=[]),
                )),
            )),
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
    if params['max_age'] < 0:
        module.fail_json(msg='max_age must be 0 (no limit) or a number of seconds, not %d' % params['max_age'])

    items = Fingerprint(module).items(params['watch'] or {})
    now = time.time()

    if state == 'present':
        stamp = {
            'version': STAMP_VERSION,
            'inputs': params['inputs'],
            'written': now,
            'valid_until': min(moments) if moments else None,
            'items': items,
        }
        if not module.check_mode:
            write_stamp(module, path, stamp)
        module.exit_json(changed=True, converged=False, reasons=[], items=len(items))

    reasons = compare(read_stamp(path), params['inputs'], items, now, params['max_age'])
    changed = False
    if reasons and os.path.lexists(path):
        # Only a run that completes in full may write a stamp again.
        changed = True
        if not module.check_mode:
            remove_stamp(path)
    module.exit_json(changed=changed, converged=not reasons, reasons=reasons, items=len(items))


if __name__ == '__main__':
    main()
