# -*- coding: utf-8 -*-
"""Make ``ansible_collections.caracal.hardened`` importable from a plain checkout.

ansible-test puts the collection root on ``sys.path`` itself; plain pytest (the test
command's unit phase) gets it from ANSIBLE_COLLECTIONS_PATH, set by tests/platform/env.sh.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sys

for _root in reversed(os.environ.get('ANSIBLE_COLLECTIONS_PATH', '').split(os.pathsep)):
    if _root and os.path.isdir(os.path.join(_root, 'ansible_collections', 'caracal', 'hardened')) and _root not in sys.path:
        sys.path.insert(0, _root)
