# -*- coding: utf-8 -*-
"""The plugins import in one direction: no filter imports another filter, and in
module_utils the contract imports nothing of the collection and the stack model only the
contract (the checks build on both, never the other way round)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast
import os

import pytest

PLUGINS = os.path.join(os.path.dirname(__file__), '..', '..', '..', 'plugins')
PREFIX = 'ansible_collections.caracal.hardened.plugins.'


def collection_imports(path):
    """The collection's modules ``path`` imports, as ``'filter.contract'``, ``'module_utils._stack'``."""
    with open(path) as handle:
        tree = ast.parse(handle.read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or '').startswith(PREFIX):
            module = node.module[len(PREFIX):]
            if module == 'module_utils':
                found.update('module_utils.%s' % alias.name for alias in node.names)
            else:
                found.add(module)
        elif isinstance(node, ast.Import):
            found.update(alias.name[len(PREFIX):] for alias in node.names if alias.name.startswith(PREFIX))
    return found


def plugin_files(kind):
    folder = os.path.join(PLUGINS, kind)
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith('.py'))


@pytest.mark.parametrize('path', plugin_files('filter'), ids=os.path.basename)
def test_no_filter_imports_another_filter(path):
    assert [m for m in collection_imports(path) if m.startswith('filter.')] == []


@pytest.mark.parametrize('name,allowed', [
    ('_contract', set()),
    ('_stack', {'module_utils._contract'}),
    ('_plain', set()),
])
def test_module_utils_import_down_only(name, allowed):
    assert collection_imports(os.path.join(PLUGINS, 'module_utils', name + '.py')) <= allowed


def test_nothing_below_the_checks_imports_them():
    for path in plugin_files('module_utils'):
        if os.path.basename(path).startswith('_checks'):
            continue
        assert [m for m in collection_imports(path) if m.startswith('module_utils._checks')] == [], path
