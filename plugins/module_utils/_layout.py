# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The on-disk layout of a host's secret inventory, defined once.

``caracal.hardened.secret_files`` (the writer), ``caracal.hardened.rotation_journal`` and the
verification checks (the readers) import these names; none of them restates a mode or a file
name.

- the store: a directory ``0700`` root, one file ``0600`` root per secret (its contract name);
- the views: ``<views>/<service>/`` ``0750`` root:<gid>, files ``0440`` root:<gid> by default
  (owner read/write and group read at most);
- the archive: a directory ``0700`` root holding ``<secret>/<UTC stamp>-<fingerprint>``
  (``0600``), ``state.json`` (each secret's creation time, fingerprint and source; each archived
  value's rollback window), the open rotation journal ``journal.json`` and the closed journals,
  one JSON line each, in ``journals.jsonl``;
- the evidence log: JSON lines, ``0600`` root.

This is a private module_utils (leading underscore): its API may change between minor
releases of the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

ROOT = 0
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
VIEW_DIR_MODE = 0o750
# The view files may grant owner read/write and group read, nothing else.
VIEW_MODE_ALLOWED = 0o640
DEFAULT_VIEW_MODE = 0o440
# Temporary files of atomic writes start with this prefix (never a contract name).
TMP_PREFIX = '.caracal-'

STATE_FILE = 'state.json'
STATE_VERSION = 1
JOURNAL_FILE = 'journal.json'
JOURNAL_HISTORY_FILE = 'journals.jsonl'
JOURNAL_VERSION = 1


def state_path(archive_path):
    return os.path.join(archive_path, STATE_FILE)


def journal_path(archive_path):
    """The open rotation journal: present while a change of values is not yet live everywhere."""
    return os.path.join(archive_path, JOURNAL_FILE)


def journal_history_path(archive_path):
    """Closed journals, one JSON line each (names and fingerprints only)."""
    return os.path.join(archive_path, JOURNAL_HISTORY_FILE)
