# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""caracal.hardened.report_files: write files on the controller, in the controller's own process.

A directory and the files in it, in one task and without running a module: no connection,
no temporary directory, no Python started (a copy or template task runs two modules each,
a file task one). Each file is written to a temporary file in the same directory and moved
into place (readers never see half a file); modes are enforced on every run.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat
import tempfile

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_bytes, to_native
from ansible.plugins.action import ActionBase

ARGUMENT_SPEC = {
    'dest': {'type': 'path', 'required': True},
    'files': {'type': 'dict', 'required': True},
    'mode': {'type': 'raw', 'default': '0640'},
    'directory_mode': {'type': 'raw', 'default': '0750'},
}


def parse_mode(value, option):
    """An octal mode (``'0640'``, ``'640'`` or an int) as an int."""
    try:
        mode = value if isinstance(value, int) and not isinstance(value, bool) else int(str(value), 8)
    except ValueError:
        raise AnsibleActionFail('%s must be an octal mode such as "0640", got %r' % (option, value)) from None
    if not 0 <= mode <= 0o7777:
        raise AnsibleActionFail('%s must be an octal mode such as "0640", got %r' % (option, value))
    return mode


def ensure_directory(path, mode, check):
    """Create ``path`` and its missing parents with ``mode``, or set ``mode`` on it; whether that changed anything."""
    missing = []
    current = path
    while not os.path.lexists(current):
        missing.append(current)
        current = os.path.dirname(current)
    if not os.path.isdir(current):
        raise AnsibleActionFail('%s is not a directory' % current)
    changed = True if missing else stat.S_IMODE(os.stat(path).st_mode) != mode
    if check:
        return changed
    for directory in reversed(missing):
        os.mkdir(directory, mode)
        os.chmod(directory, mode)  # mkdir's mode is masked by the umask
    if not missing and changed:
        os.chmod(path, mode)
    return changed


def write_file(path, data, mode, check):
    """Write ``data`` to ``path`` with ``mode`` unless it already holds both; whether that changed anything."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise AnsibleActionFail('%s is a directory' % path)
    regular = st is not None and stat.S_ISREG(st.st_mode)
    same_mode = regular and stat.S_IMODE(st.st_mode) == mode
    if regular and st.st_size == len(data):
        with open(path, 'rb') as handle:
            same_data = handle.read() == data
    else:
        same_data = False
    if same_data and same_mode:
        return False
    if check:
        return True
    if same_data:
        os.chmod(path, mode)
        return True
    fd, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix='.%s.' % os.path.basename(path))
    try:
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data)
        os.chmod(temporary, mode)
        if regular:
            try:
                os.chown(temporary, st.st_uid, st.st_gid)  # keep the owner of the file it replaces
            except OSError:
                pass
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
    return True


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        dummy, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        dest = os.path.abspath(args['dest'])
        mode = parse_mode(args['mode'], 'mode')
        directory_mode = parse_mode(args['directory_mode'], 'directory_mode')
        for name, content in args['files'].items():
            if name in ('', '.', '..') or os.path.basename(name) != name:
                raise AnsibleActionFail('files: %r is not a file name (no directory part)' % (name,))
            if not isinstance(content, str):
                raise AnsibleActionFail('files: the content of %s must be a string' % name)
        check = bool(self._task.check_mode)
        paths = [os.path.join(dest, name) for name in args['files']]
        try:
            changed = ensure_directory(dest, directory_mode, check)
            for path, content in zip(paths, args['files'].values()):
                if not check or os.path.isdir(dest):
                    changed = write_file(path, to_bytes(content, errors='surrogate_or_strict'), mode, check) or changed
                else:
                    changed = True
        except OSError as exc:
            raise AnsibleActionFail('cannot write the files in %s: %s' % (dest, to_native(exc))) from None
        result.update(changed=changed, dest=dest, files=paths)
        return result
