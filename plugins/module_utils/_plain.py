# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Template results as plain data, for the filters of the collection.

This is a private module_utils (leading underscore): its API may change between minor
releases of the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.common.text.converters import to_native


def plain(value):
    """Template results (lazy containers, AnsibleUnsafe strings) as plain JSON data (sets sorted).

    Also what filters use to avoid deep-copying Ansible's lazy containers, which is slow."""
    if isinstance(value, dict):
        return dict((to_native(k), plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [plain(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, (set, frozenset)) else items
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return to_native(value)
