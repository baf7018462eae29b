# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine of ``caracal.hardened.secret_files``: the store, the views, the archive, the journal.

``SecretFiles(module).plan()`` reads the host and decides everything (values, archive, views,
state, evidence, the rotation journal) without writing: every refusal happens there. Its
``tree`` then applies the plan, journal first, in an order that a run killed at any point leaves
recoverable (see ``_plan_tree``). The on-disk layout comes from ``_layout``.

This is a private module_utils (leading underscore): its API may change between minor
releases of the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import grp
import json
import os
import pwd
import shutil
import stat
import tempfile

from ansible.module_utils.common.text.converters import to_native
from ansible.module_utils.common.validation import check_type_int

from ansible_collections.caracal.hardened.plugins.module_utils._contract import (
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
    validate_supplied,
)
from ansible_collections.caracal.hardened.plugins.module_utils._layout import (
    PRIVATE_DIR_MODE,
    PRIVATE_FILE_MODE,
    ROOT,
    STATE_VERSION,
    TMP_PREFIX,
    VIEW_DIR_MODE,
    VIEW_MODE_ALLOWED,
    JOURNAL_VERSION,
    journal_history_path,
    journal_path,
    state_path,
)

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
        self.state_path = state_path(p['archive_path'])
        self.journal_path = journal_path(p['archive_path'])
        self.journal = self.next_journal = None
        self.recovered = []         # secrets whose interrupted write this run completed
        self.recovery_removals = []  # archive files of writes that never landed
        self.revert = {}
        self.value_writes = False
        self.view_files, self.view_removals, self.touched_secrets = [], [], []
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
        self.journal = load_journal(self.journal_path)
        if self.journal is not None and self.journal.get('phase') == 'prepared':
            self._recover_prepared()
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
        self._plan_views()
        self._plan_journal()
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
            supplied = validate_supplied(name, self.supplied[name], spec)
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
        """The archived value of ``name`` to put back: the one before the open journal's change when
        the journal records one, else the most recent archived value that differs from ``current``."""
        cur_fp = None if current is None else fingerprint(current)
        entries = self.state['archive'].get(name) or []
        before = ((self.journal or {}).get('secrets', {}).get(name) or {}).get('old_fingerprint')
        if before and before != cur_fp:
            entries = [e for e in entries if e['fingerprint'] == before] or entries
        for entry in reversed(entries):
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
        """Declare every path in write order, so that a run killed at any point is recoverable.

        The journal (phase ``prepared``, with the planned state and evidence) comes first; then
        the archive (an old value is safe on disk before its replacement is written), the store,
        the views, removals, ``state.json``, the evidence; last the journal again (phase
        ``applied``: only the consumers are owed).
        """
        p, tree = self.params, self.tree
        tree.directory(p['store_path'], ROOT, ROOT, PRIVATE_DIR_MODE)
        tree.directory(p['archive_path'], ROOT, ROOT, PRIVATE_DIR_MODE)
        if self.next_journal is not None and self.value_writes:
            tree.file(self.journal_path, journal_bytes(dict(self.next_journal, phase='prepared', planned={
                'state': self.next_state, 'evidence': self.records, 'revert': self.revert})),
                ROOT, ROOT, PRIVATE_FILE_MODE, secret=False)
        for path in self.recovery_removals:
            tree.remove(path)
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
        tree.directory(p['views_path'], ROOT, self.gid, VIEW_DIR_MODE)
        for service in self.services:
            tree.directory(self.view_dir(service), ROOT, self.gid, VIEW_DIR_MODE)
        for args in self.view_files:
            tree.file(*args)
        for path in self.view_removals + self.archive_removals:
            tree.remove(path)
        state = (json.dumps(self.next_state, indent=2, sort_keys=True) + '\n').encode('utf-8')
        tree.file(self.state_path, state, ROOT, ROOT, PRIVATE_FILE_MODE, secret=False)
        evidence = ''.join(json.dumps(r, sort_keys=True) + '\n' for r in self.records).encode('utf-8')
        tree.append(p['evidence_path'], evidence, ROOT, ROOT, PRIVATE_FILE_MODE)
        if self.next_journal is not None:
            tree.file(self.journal_path, journal_bytes(dict(self.next_journal, phase='applied')),
                      ROOT, ROOT, PRIVATE_FILE_MODE, secret=False)

    def _plan_views(self):
        """Which view files each listed service gets; which services must restart (roll order).

        Only decides, reading the host: ``_plan_tree`` declares the writes after the store's.
        """
        self.view_files, self.view_removals = [], []
        touched_services, touched_secrets = set(), set()
        for service in self.services:
            reads = self.profile['services'][service]['secrets']
            directory = self.view_dir(service)
            if lstat(directory) is not None and not os.path.isdir(directory):
                raise PlanError('%s exists and is not a directory' % directory)
            for name in [n for n in reads if n in self.names]:
                value = self.finals[name]
                path = os.path.join(directory, name)
                before = None if lstat(directory) is None else read_file(path)[0]
                self.view_files.append((path, value.encode('utf-8'), ROOT, self.gid, self.view_mode))
                if as_value(before) != value:
                    touched_services.add(service)
                    touched_secrets.add(name)
            if os.path.isdir(directory):
                for entry in sorted(os.listdir(directory)):
                    if entry not in reads:
                        self.view_removals.append(os.path.join(directory, entry))
        for service in self.profile['services']:
            if service not in self.services:
                self.view_removals.append(self.view_dir(service))
        self.touched_secrets = [n for n in secret_names(self.profile) if n in touched_secrets]
        self.restart = [s for s in roll_order(self.profile, self.touched_secrets) if s in touched_services]

    # -- the rotation journal

    def _recover_prepared(self):
        """A run was killed while it wrote: keep what landed in the store, undo what did not.

        The journal's ``planned`` part holds the state, evidence and archive entries that run
        meant to write. A secret whose store file holds the planned fingerprint landed: its
        state record, archive entry and evidence are completed now. One whose file still holds
        the old value did not (the new value existed only in that run's memory): its record
        stays, an archive copy it left is removed, and it leaves the journal.
        """
        journal, planned = self.journal, self.journal.get('planned') or {}
        planned_state = planned.get('state') or {'secrets': {}, 'archive': {}}
        revert = planned.get('revert') or {}
        landed, lost = [], []
        for name, entry in sorted(journal['secrets'].items()):
            data, dummy = read_file(self.store_file(name))
            held = None if data is None else fingerprint(as_value(data))
            (landed if held == entry['new_fingerprint'] else lost).append(name)
        state = copy.deepcopy(self.state)
        for name in landed:
            if name in planned_state['secrets']:
                state['secrets'][name] = planned_state['secrets'][name]
            if name in planned_state['archive'] or name in state['archive']:
                state['archive'][name] = [e for e in planned_state['archive'].get(name, [])
                                          if os.path.lexists(os.path.join(self.archive_dir(name), e['file']))]
        for name in lost:
            for entry_file in (revert.get(name) or {}).get('archive') or []:
                path = os.path.join(self.archive_dir(name), entry_file)
                if os.path.lexists(path) and entry_file not in [e['file'] for e in state['archive'].get(name, [])]:
                    self.recovery_removals.append(path)
            del journal['secrets'][name]
        # Archived values the interrupted run retired (their window had passed) and removed.
        retired = set()
        for name, entries in state['archive'].items():
            keep = [e['file'] for e in planned_state['archive'].get(name, [])]
            for entry in list(entries):
                if entry['file'] not in keep and not os.path.lexists(os.path.join(self.archive_dir(name), entry['file'])):
                    entries.remove(entry)
                    retired.add(name)
        self.state = state
        logged = self._evidence_journal_records(journal['id'])
        self.records.extend(r for r in planned.get('evidence') or []
                            if (r.get('secret') in landed or (r.get('action') == 'retired' and r.get('secret') in retired))
                            and (r.get('secret'), r.get('action')) not in logged)
        self.recovered = landed
        journal.pop('planned', None)
        journal['steps'] = journal.get('steps', []) + [{
            'ts': format_ts(self.now), 'step': 'recovered', 'landed': landed, 'lost': lost}]

    def _evidence_journal_records(self, journal_id):
        data, dummy = read_file(self.params['evidence_path'])
        found = set()
        for line in (data or b'').splitlines():
            try:
                record = json.loads(line.decode('utf-8'))
            except (ValueError, AttributeError):
                continue
            if isinstance(record, dict) and record.get('journal') == journal_id:
                found.add((record.get('secret'), record.get('action')))
        return found

    def _plan_journal(self):
        """Open (or extend) the journal when values change or consumers must restart.

        The journal lists every secret of the unfinished change with its fingerprint before the
        change and after it, the consumers to roll (roll order) and the datastore passwords to
        apply. It stays open until the backend has every consumer ready
        (``caracal.hardened.rotation_journal``), so a run killed at any point leaves the next
        run the whole list of what is owed.
        """
        value_changes = list(self.changed_secrets)
        self.value_writes = bool(value_changes or self.recovery_removals or self.records)
        if self.journal is None and not value_changes and not self.restart:
            return
        baseline = dict((k, v) for k, v in (self.journal or {}).items() if k not in ('phase', 'planned'))
        journal = copy.deepcopy(baseline) if self.journal else {
            'version': JOURNAL_VERSION, 'id': '%s-%s' % (stamp(self.now), os.urandom(4).hex()),
            'opened': format_ts(self.now), 'profile': self.profile['name'], 'actor': self.actor,
            'secrets': {}, 'restart': [], 'sync': [], 'steps': [{'ts': format_ts(self.now), 'step': 'opened'}]}
        self.revert = {}
        for name in value_changes:
            prior = self.state['secrets'].get(name)
            entry = journal['secrets'].get(name)
            self.revert[name] = {'archive': [e['file'] for e in self.next_state['archive'].get(name, [])
                                             if e not in self.state['archive'].get(name, [])]}
            journal['secrets'][name] = {
                'old_fingerprint': entry['old_fingerprint'] if entry else (prior or {}).get('fingerprint'),
                'new_fingerprint': self.results[name]['fingerprint'],
                'action': self.results[name]['action'], 'reason': self._reason(name),
            }
        names = [n for n in secret_names(self.profile) if n in journal['secrets'] or n in self.touched_secrets]
        wanted = set(journal['restart']) | set(self.restart)
        order = roll_order(self.profile, names)
        journal['restart'] = [s for s in order if s in wanted] + sorted(wanted - set(order))
        # A password that replaced an earlier one must reach its datastore; a first one is the datastore's own.
        journal['sync'] = [n for n in names if n in journal['secrets'] and self.specs[n].get('kind') == 'password'
                           and journal['secrets'][n]['old_fingerprint']]
        if value_changes or self.recovered:
            journal['steps'].append({'ts': format_ts(self.now), 'step': 'written', 'secrets': value_changes})
        if journal != baseline:
            journal['updated'] = format_ts(self.now)
        for record in self.records:
            record['journal'] = journal['id']
        self.next_journal = journal
        self.restart = [s for s in journal['restart'] if s in self.services]

    def _reason(self, name):
        for record in reversed(self.records):
            if record.get('secret') == name:
                return record['reason']
        return None

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
            'journal': journal_summary(self.next_journal),
            'recovered': self.recovered,
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


# ---------------------------------------------------------------- the journal file

def load_journal(path):
    """The open journal (a dict), or ``None``; a journal that cannot be read fails the run."""
    data, dummy = read_file(path)
    if data is None:
        return None
    try:
        journal = json.loads(data.decode('utf-8'))
        if not isinstance(journal, dict) or not isinstance(journal.get('secrets'), dict):
            raise ValueError('no secrets table')
        str(journal['id'])
        for entry in journal['secrets'].values():
            str(entry['new_fingerprint'])
        list(journal.get('restart') or [])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PlanError('%s is not a valid rotation journal (%s: %s). It records an unfinished change of secret '
                        'values: compare it with state.json and the evidence log, then move it aside and run '
                        'again. Nothing was changed.' % (path, type(exc).__name__, exc)) from exc
    return journal


def journal_bytes(journal):
    return (json.dumps(journal, indent=2, sort_keys=True) + '\n').encode('utf-8')


def journal_summary(journal):
    """What the journal says, for the result and the roles: names, fingerprints, services.

    ``restorable`` lists the secrets a rollback puts back to their value before the change
    (generated or supplied ones that had an earlier value; derived ones follow their passwords).
    """
    if journal is None:
        return None
    summary = dict((k, copy.deepcopy(journal.get(k))) for k in (
        'id', 'opened', 'updated', 'profile', 'secrets', 'restart', 'sync'))
    summary['restorable'] = sorted(
        name for name, entry in journal['secrets'].items()
        if entry.get('old_fingerprint') and entry['old_fingerprint'] != entry['new_fingerprint']
        and entry.get('action') != 'derived')
    return summary


def journal_outcome(journal):
    """``rolled-back`` when the change put every secret back (it holds its value from before the
    change, or the change was a restore), else ``completed``."""
    entries = [e for e in journal['secrets'].values() if e.get('old_fingerprint') and e.get('action') != 'derived']
    if entries and all(e['old_fingerprint'] == e['new_fingerprint'] or e.get('action') == 'restored' for e in entries):
        return 'rolled-back'
    return 'completed'


def close_journal(archive_path, journal_id=None, outcome=None, now=None, check_mode=False):
    """Close the open journal: append it to the history (one JSON line) and remove it.

    ``journal_id``, when given, must be the open journal's id (a run closes only the journal it
    finished, never one a later run opened). Returns the closed journal's summary, or ``None``
    when no journal is open. Refuses to close a journal still in its ``prepared`` phase: its
    files may be half-written, and only ``secret_files`` can finish them.
    """
    path = journal_path(archive_path)
    journal = load_journal(path)
    if journal is None:
        return None
    if journal_id and journal['id'] != journal_id:
        raise PlanError('the open rotation journal is %s, not %s: a later run opened it; run the deployment again to '
                        'finish it. Nothing was changed.' % (journal['id'], journal_id))
    if journal.get('phase') != 'applied':
        raise PlanError('the rotation journal %s is still being written (phase %s): run caracal.hardened.secret_files '
                        '(the secrets role) first, it finishes the files. Nothing was changed.'
                        % (journal['id'], journal.get('phase')))
    summary = journal_summary(journal)
    outcome = outcome or journal_outcome(journal)
    summary['outcome'] = outcome
    if check_mode:
        return summary
    closed = dict(summary, closed=format_ts(now or utcnow()), outcome=outcome,
                  steps=journal.get('steps', []) + [{'ts': format_ts(now or utcnow()), 'step': 'closed', 'outcome': outcome}])
    history = journal_history_path(archive_path)
    fd = os.open(history, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_FILE_MODE)
    try:
        os.write(fd, (json.dumps(closed, sort_keys=True) + '\n').encode('utf-8'))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chown(history, ROOT, ROOT)
    os.chmod(history, PRIVATE_FILE_MODE)
    os.unlink(path)
    fsync_dir(archive_path)
    return summary
