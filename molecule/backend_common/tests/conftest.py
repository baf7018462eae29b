# -*- coding: utf-8 -*-
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', '_shared'))
for _root in os.environ.get('ANSIBLE_COLLECTIONS_PATH', '').split(os.pathsep):
    if _root and os.path.isdir(os.path.join(_root, 'ansible_collections', 'caracal', 'hardened')):
        sys.path.insert(0, _root)
        break
