# -*- coding: utf-8 -*-
# Copyright: caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Role stamps: a fingerprint of what a role's full run left on the host (see the host_stamp module).

Shared by ``host_stamp`` and by modules that compare a stamp in the same call as their own work
(``secret_files``), so that a role needs one module call on a run that finds nothing to do.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import datetime
import hashlib
import json
import os
import re
import stat
import time

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
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


# The argument spec of a stamp's watch list (host_stamp's O(watch), secret_files' O(stamp.watch)).
WATCH_OPTIONS = dict(
    paths=dict(type='list', elements='path', default=[]),
    trees=dict(type='list', elements='path', default=[]),
    units=dict(type='list', elements='str', default=[]),
    packages=dict(type='list', elements='str', default=[]),
    commands=dict(type='list', elements='dict', default=[], options=dict(
        argv=dict(type='list', elements='str', required=True),
        ignore=dict(type='list', elements='str', default=[]),
    )),
)


def validated_watch(module, watch, name='watch'):
    """``watch`` checked and converted against WATCH_OPTIONS, for a module that takes it as a plain dict."""
    result = ArgumentSpecValidator(copy.deepcopy(WATCH_OPTIONS)).validate(dict(watch or {}))
    if result.error_messages:
        module.fail_json(msg='%s: %s' % (name, '; '.join(result.error_messages)))
    return result.validated_parameters


def check(module, path, inputs, watch, max_age):
    """Compare the host with the stamp at ``path``; a stamp that no longer matches is removed
    (not in check mode): only a run that completes in full may write one again.

    Returns ``{'changed', 'converged', 'reasons', 'items'}``.
    """
    if max_age < 0:
        module.fail_json(msg='max_age must be 0 (no limit) or a number of seconds, not %d' % max_age)
    items = Fingerprint(module).items(watch or {})
    reasons = compare(read_stamp(path), inputs, items, time.time(), max_age)
    changed = False
    if reasons and os.path.lexists(path):
        changed = True
        if not module.check_mode:
            remove_stamp(path)
    return dict(changed=changed, converged=not reasons, reasons=reasons, items=len(items))
