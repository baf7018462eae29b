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
    RV(changed_secrets) holds a password, apply it to the datastore (C(ALTER ROLE), C(requirepass)) before
    restarting the services in RV(restart), in that order.
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

import copy
import grp
import json
import os
import pwd
import shutil
import stat
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native
from ansible.module_utils.common.validation import check_type_int

from ansible_collections.caracal.hardened.plugins.module_utils._contract import (
    DEFAULT_PROFILE,
    ContractError,
    get_profile,
    roll_order,
    secret_names,
)
from ansible_collections.caracal.hardened.plugins.module_utils._secrets import (
    SecretValidationError,
    age_days,
    derive,
    evidence_record,
    fingerprint,
    format_ts,
    from_epoch,
    generate,
    is_derived,
    is_destructive,
    is_due,
    is_expired,
    parse_ts,
    policy,
    retire_after,
    stamp,
    trim,
    utcnow,
    validate,
)
from ansible_collections.caracal.hardened.plugins.module_utils._stamp import check as check_stamp, validated_watch

ROOT = 0
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
VIEW_DIR_MODE = 0o750
VIEW_MODE_ALLOWED = 0o640
STATE_FILE = 'state.json'
STATE_VERSION = 1
TMP_PREFIX = '.caracal-'
POLICY_KEYS = ('max_age_days', 'rollback_days')


class PlanError(Exception):
    """A request the module refuses before it changes anything."""

    def __init__(self, msg, errors=None):
        super(PlanError, self).__init__(msg)
        self.errors = errors or []


class ApplyError(Exception):
    """Writing the planned state failed half-way (a disk or permission problem)."""


# ---------------------------------------------------------------- small helpers

def default_actor():
    for var in ('AWX_JOB_ID', 'TOWER_JOB_ID'):
        if os.environ.get(var):
            return 'awx-job-%s' % os.environ[var]
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return 'uid-%d' % os.geteuid()


def resolve_group(group, default_gid):
    if group is None:
        return default_gid
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise PlanError('group %s does not exist on this host' % group) from None


def parse_mode(mode):
    try:
        value = mode if isinstance(mode, int) and not isinstance(mode, bool) else int(str(mode), 8)
    except ValueError:
        raise PlanError('mode %r is not an octal mode' % (mode,)) from None
    if value & ~VIEW_MODE_ALLOWED or not value & 0o040:
        raise PlanError('mode %04o must grant group read and nothing beyond owner read/write and group read (%04o)'
                        % (value, VIEW_MODE_ALLOWED))
    return value


def lstat(path):
    """``os.lstat`` or ``None``; symbolic links are refused."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        raise PlanError('%s is a symbolic link; refusing to follow it' % path)
    return st


def regular_file(path):
    """``lstat`` of a regular file, or ``None``; anything else in the way is refused."""
    st = lstat(path)
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise PlanError('%s exists and is not a regular file' % path)
    return st


def read_file(path):
    """``(bytes, stat)`` of a regular file, or ``(None, None)`` when it does not exist."""
    st = regular_file(path)
    if st is None:
        return None, None
    with open(path, 'rb') as handle:
        return handle.read(), st


def as_value(data):
    return None if data is None else trim(data.decode('utf-8', 'replace'))


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------- the file tree

class Tree(object):
    """The wanted state of every path, compared with the host before anything is written.

    Callers declare directories, files, removals and appends in the order they must be
    applied.  Each declaration inspects the host at once (refusing symbolic links and
    wrong file types), so a run that cannot complete fails before its first write; only
    what differs becomes an operation.  The diff holds owners, modes and fingerprints.
    """

    def __init__(self, module):
        self.module = module
        self.ops = []
        self.before = {}
        self.after = {}

    def directory(self, path, uid, gid, mode):
        st = lstat(path)
        if st is not None and not stat.S_ISDIR(st.st_mode):
            raise PlanError('%s exists and is not a directory' % path)
        self._note(path, st, uid, gid, mode)
        if st is None:
            self.ops.append(('mkdir', path, (uid, gid, mode)))
        else:
            self._attrs(path, st, uid, gid, mode)

    def file(self, path, data, uid, gid, mode, secret=True):
        """Want ``data`` (bytes; ``None`` keeps the content) in ``path``; return the current bytes.

        The diff shows the fingerprint of a ``secret`` file's value, never the value.
        """
        current, st = read_file(path)
        wanted = current if data is None else data
        if secret:
            self._note(path, st, uid, gid, mode, as_value(current), as_value(wanted))
        else:
            self._note(path, st, uid, gid, mode)
        if data is not None and current != data:
            self.ops.append(('write', path, (data, uid, gid, mode)))
        elif st is not None:
            self._attrs(path, st, uid, gid, mode)
        return current

    def remove(self, path):
        try:
            st = os.lstat(path)  # a symbolic link in the way is removed, not followed
        except FileNotFoundError:
            return
        self.before[path] = self._meta(st.st_uid, st.st_gid, st.st_mode)
        self.ops.append(('remove', path, None))

    def append(self, path, data, uid, gid, mode):
        st = regular_file(path)
        if st is not None or data:
            self._note(path, st, uid, gid, mode)
        if data:
            self.ops.append(('append', path, (data, uid, gid, mode)))
        elif st is not None:
            self._attrs(path, st, uid, gid, mode)

    def _attrs(self, path, st, uid, gid, mode):
        if (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) != (uid, gid, mode):
            self.ops.append(('attrs', path, (uid, gid, mode)))

    @staticmethod
    def _meta(uid, gid, mode, value=None):
        meta = {'owner': uid, 'group': gid, 'mode': '%04o' % stat.S_IMODE(mode)}
        if value is not None:
            meta['fingerprint'] = fingerprint(value)
        return meta

    def _note(self, path, st, uid, gid, mode, before_value=None, after_value=None):
        if st is not None:
            self.before[path] = self._meta(st.st_uid, st.st_gid, st.st_mode, before_value)
        self.after[path] = self._meta(uid, gid, mode, after_value)

    def diff(self):
        return {'before': dict(sorted(self.before.items())), 'after': dict(sorted(self.after.items()))}

    # -- applying

    def apply(self):
        for op, path, args in self.ops:
            try:
                getattr(self, '_do_' + op)(path, args)
            except Exception as exc:  # atomic_move raises plain Exception
                raise ApplyError('%s of %s failed: %s. Earlier steps of this run are in place; fix the cause and '
                                 'run again.' % (op, path, to_native(exc))) from exc

    @staticmethod
    def _set_attrs(path, uid, gid, mode):
        os.chown(path, uid, gid)
        os.chmod(path, mode)

    def _do_attrs(self, path, args):
        self._set_attrs(path, *args)

    def _do_mkdir(self, path, args):
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            os.makedirs(parent)
        os.mkdir(path, PRIVATE_DIR_MODE)
        self._set_attrs(path, *args)

    def _do_write(self, path, args):
        data, uid, gid, mode = args
        directory = os.path.dirname(path)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=TMP_PREFIX)
        try:
            with os.fdopen(fd, 'wb') as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            self._set_attrs(tmp, uid, gid, mode)
            # atomic_move gives a new file the umask's default mode: keep even that moment private.
            umask = os.umask(0o077)
            try:
                self.module.atomic_move(tmp, path, unsafe_writes=False, keep_dest_attrs=False)
            finally:
                os.umask(umask)
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)
        self._set_attrs(path, uid, gid, mode)
        fsync_dir(directory)

    def _do_remove(self, path, dummy):
        if stat.S_ISDIR(os.lstat(path).st_mode):
            shutil.rmtree(path)
        else:
            os.unlink(path)

    def _do_append(self, path, args):
        data, uid, gid, mode = args
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            os.makedirs(parent)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, 'O_NOFOLLOW', 0), PRIVATE_FILE_MODE)
        with os.fdopen(fd, 'ab') as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        self._set_attrs(path, uid, gid, mode)


# ---------------------------------------------------------------- the inventory

class SecretFiles(object):
    """Plans a run over the host's whole secret inventory; ``tree`` then applies it.

    ``plan()`` reads the host and decides everything (values, archive, views, state,
    evidence) without writing: every refusal happens there.
    """

    def __init__(self, module):
        p = module.params
        self.module = module
        self.params = p
        self.now = utcnow()
        self.profile = get_profile(p['profile'])
        self.specs = self.profile['secrets']
        self.actor = p['actor'] or default_actor()
        self.gid = resolve_group(p['group'], self.profile['gid'])
        self.view_mode = parse_mode(p['mode'])
        for key in ('default_max_age_days', 'default_rollback_days'):
            if p[key] < 0:
                raise PlanError('%s must not be negative' % key)
        self.services = self._known('services', p['services'], self.profile['services'])
        self.names = self._closure(self._known('names', p['names'], self.specs))
        self.supplied = p['values'] or {}
        self.rotate = p['rotate'] or []
        self.restore = p['restore'] or []
        self.policies = self._policies(p['policies'] or {})
        self._check_requests()
        self.state_path = os.path.join(p['archive_path'], STATE_FILE)
        self.tree = Tree(module)
        self.state = self.next_state = None
        self.finals = {}            # name -> value after the run
        self.results = {}
        self.records = []
        self.changed_secrets = []
        self.blocked = []
        self.retired = []
        self.restart = []
        self.archive_writes = {}    # archive file -> value
        self.archive_removals = []

    # -- parameter checks (no host access)

    def _known(self, option, requested, known):
        if requested is None:
            return list(known)
        unknown = [n for n in requested if n not in known]
        if unknown:
            raise PlanError('%s: unknown in profile %s: %s (known: %s)'
                            % (option, self.profile['name'], ', '.join(unknown), ', '.join(known)))
        return [n for n in known if n in requested]

    def _closure(self, names):
        """Add the sources of named derived secrets and the derived secrets of named sources."""
        wanted = set(names)
        for name, spec in self.specs.items():
            sources = spec.get('derived_from') or []
            if name in wanted or wanted.intersection(sources):
                wanted.add(name)
                wanted.update(sources)
        return [n for n in secret_names(self.profile) if n in wanted]

    def _policies(self, policies):
        checked = {}
        for name, entry in policies.items():
            if name not in self.specs:
                raise PlanError('policies: unknown secret %s' % name)
            if not isinstance(entry, dict) or set(entry) - set(POLICY_KEYS):
                raise PlanError('policies: %s must be a dictionary with keys among %s' % (name, ', '.join(POLICY_KEYS)))
            if is_derived(self.specs[name]) and entry.get('max_age_days'):
                raise PlanError('policies: %s is derived and ages with the secrets it embeds' % name)
            checked[name] = {}
            for key, value in entry.items():
                try:
                    value = check_type_int(value)
                except TypeError:
                    raise PlanError('policies: %s.%s must be an integer' % (name, key)) from None
                if value < 0:
                    raise PlanError('policies: %s.%s must not be negative' % (name, key))
                checked[name][key] = value
        return checked

    def _check_requests(self):
        seen = {}
        for option, names in (('values', list(self.supplied)), ('rotate', self.rotate), ('restore', self.restore)):
            for name in names:
                if name not in self.specs:
                    raise PlanError('%s: unknown secret %s' % (option, name))
                if name not in self.names:
                    raise PlanError('%s: %s is not managed by this call (see names)' % (option, name))
                if is_derived(self.specs[name]):
                    raise PlanError('%s: %s is derived from %s; name that instead'
                                    % (option, name, ', '.join(self.specs[name]['derived_from'])))
                if seen.setdefault(name, option) != option:
                    raise PlanError('%s is named in both %s and %s' % (name, seen[name], option))

    # -- paths

    def store_file(self, name):
        return os.path.join(self.params['store_path'], name)

    def view_dir(self, service):
        return os.path.join(self.params['views_path'], service)

    def archive_dir(self, name):
        return os.path.join(self.params['archive_path'], name)

    def archive_file(self, name, entry):
        return os.path.join(self.archive_dir(name), entry['file'])

    # -- reading the host

    def _load_state(self):
        data, dummy = read_file(self.state_path)
        if data is None:
            return {'version': STATE_VERSION, 'secrets': {}, 'archive': {}}
        try:
            state = json.loads(data.decode('utf-8'))
            for record in state['secrets'].values():
                parse_ts(record['created'])
                str(record['fingerprint'])
            for entries in state['archive'].values():
                for entry in entries:
                    parse_ts(entry['retire_after'])
                    if os.path.basename(entry['file']) != entry['file'] or entry['file'] in ('', '.', '..'):
                        raise ValueError('archive file name %r' % entry['file'])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise PlanError('%s is not a valid state file (%s: %s); fix it or restore it from backup'
                            % (self.state_path, type(exc).__name__, exc)) from exc
        return state

    def _evidence_mentions(self, name):
        data, dummy = read_file(self.params['evidence_path'])
        for line in (data or b'').splitlines():
            try:
                if json.loads(line.decode('utf-8')).get('secret') == name:
                    return True
            except (ValueError, AttributeError):
                continue
        return False

    # -- planning

    def plan(self):
        self.state = self._load_state()
        self.next_state = copy.deepcopy(self.state)
        errors = []
        hex_first = sorted(self.names, key=lambda n: is_derived(self.specs[n]))
        for name in hex_first:
            spec = self.specs[name]
            if is_derived(spec) and not all(src in self.finals for src in spec['derived_from']):
                continue  # its source failed: already reported
            try:
                self._plan_secret(name, spec)
            except (SecretValidationError, PlanError) as exc:
                errors.append(exc)
        if errors:
            raise PlanError('; '.join(to_native(e) for e in errors), errors=[
                {'msg': to_native(e), 'secret': getattr(e, 'secret', None), 'rule': getattr(e, 'rule', None)}
                for e in errors])
        self._plan_retirement()
        self._plan_tree()
        return self

    def _plan_secret(self, name, spec):
        path = self.store_file(name)
        data, st = read_file(path)
        current = as_value(data)
        if current is not None and not is_derived(spec):
            current = validate(name, current, spec)  # an invalid existing value fails the run
        record = self.state['secrets'].get(name)
        cur_fp = None if current is None else fingerprint(current)
        known = record is not None and record['fingerprint'] == cur_fp
        created = parse_ts(record['created']) if known else (from_epoch(st.st_mtime) if st else None)
        max_age, rollback = policy(spec, self.policies, self.params['default_max_age_days'],
                                   self.params['default_rollback_days'])

        new, action, reason = self._decide(name, spec, current, record, created, max_age)
        if new == current and not known:
            action, reason = 'adopted', 'initial' if record is None else 'source-changed'
            if record is not None:
                self.module.warn('%s changed outside this module (fingerprint %s, recorded %s); adopting it'
                                 % (name, cur_fp, record['fingerprint']))
        new_fp = fingerprint(new)
        self._guard_destructive(name, spec, action, cur_fp or (record or {}).get('fingerprint'), new_fp)

        rollback_until = None
        if new != current:
            created = self.now
            self.changed_secrets.append(name)
            if current is not None and not is_derived(spec):  # derived values are rebuilt, not archived
                rollback_until = self._archive(name, current, cur_fp, rollback)
            if action == 'restored':
                self._unarchive(name, new_fp)
        if action:
            source = 'supplied' if name in self.supplied else {'rotated': 'generated'}.get(action, action)
            self.next_state['secrets'][name] = {'created': format_ts(created), 'fingerprint': new_fp, 'source': source}
            self.records.append(evidence_record(
                self.now, self.actor, action, reason, name, self.profile['name'], path,
                old_fingerprint=cur_fp, new_fingerprint=new_fp, rollback_until=rollback_until))
        self.finals[name] = new
        self.results[name] = {
            'fingerprint': new_fp, 'created': format_ts(created), 'age_days': age_days(created, self.now),
            'max_age_days': max_age, 'due': is_due(created, max_age, self.now), 'path': path,
            'action': action or 'unchanged',
        }

    def _decide(self, name, spec, current, record, created, max_age):
        """``(new value, action, reason)``; action ``None`` keeps the current value."""
        if is_derived(spec):
            new = derive(spec, self.finals)
            if new == current:
                return current, None, None
            return new, 'derived', 'initial' if current is None else 'source-changed'
        if name in self.restore:
            return self._restorable(name, current), 'restored', 'rollback'
        if name in self.supplied:
            supplied = validate(name, self.supplied[name], spec)
            if current is None:
                return supplied, 'adopted', 'initial'
            if supplied == current:
                return current, None, None
            return supplied, 'rotated', 'source-changed'
        if current is None:
            self._refuse_lost_kek(name, spec, record)
            if record is not None:
                self.module.warn('%s (fingerprint %s) was missing from the store and is generated anew'
                                 % (name, record['fingerprint']))
            return generate(spec), 'generated', 'initial'
        if name in self.rotate:
            return generate(spec), 'rotated', self.params['rotate_reason']
        if is_due(created, max_age, self.now):
            if is_destructive(spec) and not self.params['allow_destructive_kek_rotation']:
                self.blocked.append(name)
                self.module.warn('%s is older than its %d-day policy, but rotating it is destructive: it is left '
                                 'alone unless allow_destructive_kek_rotation=true' % (name, max_age))
                return current, None, None
            return generate(spec), 'rotated', 'age'
        return current, None, None

    def _guard_destructive(self, name, spec, action, prior_fp, new_fp):
        if is_destructive(spec) and prior_fp and new_fp != prior_fp \
                and not self.params['allow_destructive_kek_rotation']:
            raise PlanError('%s: replacing the KEK (%s, fingerprint %s -> %s) makes every zone key in the database '
                            'undecryptable; set allow_destructive_kek_rotation=true to acknowledge that. '
                            'Nothing was changed.' % (name, action, prior_fp, new_fp))

    def _refuse_lost_kek(self, name, spec, record):
        if not is_destructive(spec):
            return
        signs = []
        if self.params['data_present']:
            signs.append('data_present is set')
        holding = data_in(self.params['data_paths'])
        if holding:
            signs.append('%s holds data' % holding)
        if record is not None or self.state['archive'].get(name):
            signs.append('%s records it' % self.state_path)
        if self._evidence_mentions(name):
            signs.append('the evidence log %s records it' % self.params['evidence_path'])
        if signs:
            raise PlanError(
                '%s is missing from %s, but a KEK existed on this host (%s). A new KEK cannot decrypt the zone keys '
                'in the database, so a lost KEK is never regenerated. Restore the KEK%s from the backup taken '
                'together with the database: put it back at %s (mode 0600, owner root), or pass it in values, then '
                'run again. Nothing was changed.'
                % (name, self.params['store_path'], '; '.join(signs),
                   ' (fingerprint %s)' % record['fingerprint'] if record else '', self.store_file(name)))

    def _restorable(self, name, current):
        """The most recent archived value of ``name`` that differs from ``current``."""
        cur_fp = None if current is None else fingerprint(current)
        for entry in reversed(self.state['archive'].get(name) or []):
            if entry['fingerprint'] == cur_fp:
                continue
            data, dummy = read_file(self.archive_file(name, entry))
            if data is None:
                raise PlanError('restore: the archived value %s of %s is missing' % (entry['fingerprint'], name))
            return validate(name, as_value(data), self.specs[name])
        raise PlanError('restore: %s has no archived value to restore' % name)

    def _archive(self, name, value, fp, rollback_days):
        until = retire_after(self.now, rollback_days)
        entry = {'file': '%s-%s' % (stamp(self.now), fp), 'fingerprint': fp,
                 'archived_at': format_ts(self.now), 'retire_after': format_ts(until)}
        self.next_state['archive'].setdefault(name, []).append(entry)
        self.archive_writes[self.archive_file(name, entry)] = value
        return until

    def _unarchive(self, name, fp):
        """The restored value is live again: it leaves the archive."""
        entries = self.next_state['archive'][name]
        entry = [e for e in entries if e['fingerprint'] == fp][-1]  # the one _restorable picked
        entries.remove(entry)
        self.archive_removals.append(self.archive_file(name, entry))

    def _plan_retirement(self):
        for name in self.names:
            entries = self.next_state['archive'].get(name) or []
            for entry in [e for e in entries if is_expired(parse_ts(e['retire_after']), self.now)]:
                entries.remove(entry)
                path = self.archive_file(name, entry)
                self.archive_removals.append(path)
                self.retired.append({'secret': name, 'fingerprint': entry['fingerprint']})
                self.records.append(evidence_record(
                    self.now, self.actor, 'retired', 'window-expired', name, self.profile['name'], path,
                    old_fingerprint=entry['fingerprint']))

    def _plan_tree(self):
        """Declare every path in write order: archive, store, views, removals, state, evidence."""
        p, tree = self.params, self.tree
        tree.directory(p['store_path'], ROOT, ROOT, PRIVATE_DIR_MODE)
        tree.directory(p['archive_path'], ROOT, ROOT, PRIVATE_DIR_MODE)
        # The archive first: an old value is safe on disk before its replacement is written.
        for name in self.names:
            entries = self.next_state['archive'].get(name) or []
            if entries or os.path.lexists(self.archive_dir(name)):
                tree.directory(self.archive_dir(name), ROOT, ROOT, PRIVATE_DIR_MODE)
            for entry in entries:
                path = self.archive_file(name, entry)
                value = self.archive_writes.get(path)
                if value is None and not os.path.lexists(path):
                    self.module.warn('the archived value %s of %s is missing (%s)' % (entry['fingerprint'], name, path))
                tree.file(path, None if value is None else value.encode('utf-8'), ROOT, ROOT, PRIVATE_FILE_MODE)
        for name in self.names:
            tree.file(self.store_file(name), self.finals[name].encode('utf-8'), ROOT, ROOT, PRIVATE_FILE_MODE)
        self._plan_views()
        for path in self.archive_removals:
            tree.remove(path)
        state = (json.dumps(self.next_state, indent=2, sort_keys=True) + '\n').encode('utf-8')
        tree.file(self.state_path, state, ROOT, ROOT, PRIVATE_FILE_MODE, secret=False)
        evidence = ''.join(json.dumps(r, sort_keys=True) + '\n' for r in self.records).encode('utf-8')
        tree.append(p['evidence_path'], evidence, ROOT, ROOT, PRIVATE_FILE_MODE)

    def _plan_views(self):
        """One directory per listed service with exactly the files it reads; restarts follow."""
        tree = self.tree
        tree.directory(self.params['views_path'], ROOT, self.gid, VIEW_DIR_MODE)
        touched_services, touched_secrets = set(), set()
        for service in self.services:
            reads = self.profile['services'][service]['secrets']
            directory = self.view_dir(service)
            tree.directory(directory, ROOT, self.gid, VIEW_DIR_MODE)
            for name in [n for n in reads if n in self.names]:
                value = self.finals[name]
                before = tree.file(os.path.join(directory, name), value.encode('utf-8'), ROOT, self.gid, self.view_mode)
                if as_value(before) != value:
                    touched_services.add(service)
                    touched_secrets.add(name)
            if os.path.isdir(directory):
                for entry in sorted(os.listdir(directory)):
                    if entry not in reads:
                        tree.remove(os.path.join(directory, entry))
        for service in self.profile['services']:
            if service not in self.services:
                tree.remove(self.view_dir(service))
        touched = [n for n in secret_names(self.profile) if n in touched_secrets]
        self.restart = [s for s in roll_order(self.profile, touched) if s in touched_services]

    # -- the result

    def result(self):
        result = {
            'changed': bool(self.tree.ops),
            'secrets': self.results,
            'changed_secrets': self.changed_secrets,
            'restart': self.restart,
            'retired': self.retired,
            'evidence': self.records,
            'due': self.blocked,
        }
        if self.module._diff:
            result['diff'] = self.tree.diff()
        return result


def data_in(paths):
    """The first of ``paths`` that is a directory with an entry (the database holds data), else None."""
    for path in paths or []:
        try:
            with os.scandir(path) as entries:
                if any(True for _entry in entries):
                    return path
        except (IOError, OSError):  # missing, not a directory or unreadable: no proof of data
            continue
    return None


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
