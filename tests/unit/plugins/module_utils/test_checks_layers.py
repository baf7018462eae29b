# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The layers of the verification code, read from the source.

``_checks_host`` is the only ``_checks_*`` file that reads the host (commands, sockets,
files of host state, the group database); the checks judge what it measured, and
``_checks_groups`` hands one to the other. Imports go one way: contract, then stack
model, then checks; the pure checks never import the host I/O or the glue.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast
import os

import pytest

MODULE_UTILS = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'plugins', 'module_utils')
PREFIX = 'ansible_collections.caracal.hardened.plugins.module_utils.'

PURE = ['_checks', '_checks_audit', '_checks_health', '_checks_network', '_checks_runtime', '_checks_secrets',
        '_checks_tls']
GLUE = '_checks_groups'
HOST = '_checks_host'

# What reads the host: a module (any use of it) or a call (by its last names).
HOST_MODULES = {'grp', 'pwd', 'subprocess', 'http.client', 'urllib.request'}
# The collection's own module_utils that log in to the datastores.
HOST_UTILS = {'_datastores'}
HOST_CALLS = {'open', 'create_connection', 'run_command', 'get_bin_path', 'listdir', 'scandir', 'walk', 'lstat',
              'stat', 'fstat', 'isdir', 'isfile', 'exists', 'lexists', 'getgrnam', 'getpwnam', 'urlopen'}


def tree(name):
    with open(os.path.join(MODULE_UTILS, name + '.py')) as handle:
        return ast.parse(handle.read())


def imported(name):
    """The collection's module_utils that ``name`` imports, and every other module it imports."""
    ours, others = set(), set()
    for node in ast.walk(tree(name)):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith(PREFIX):
                ours.add(node.module[len(PREFIX):])
            elif node.module == PREFIX.rstrip('.'):
                ours.update(alias.name for alias in node.names)
            else:
                others.add(node.module)
        elif isinstance(node, ast.Import):
            others.update(alias.name for alias in node.names)
    return ours, others


def host_reads(name):
    found = []
    for node in ast.walk(tree(name)):
        if isinstance(node, ast.Call):
            func = node.func
            last = func.attr if isinstance(func, ast.Attribute) else getattr(func, 'id', None)
            if last in HOST_CALLS:
                found.append('line %d: %s()' % (node.lineno, last))
    ours, others = imported(name)
    found.extend('imports %s' % m for m in sorted((others & HOST_MODULES) | (ours & HOST_UTILS)))
    return found


@pytest.mark.parametrize('name', PURE + [GLUE])
def test_only_checks_host_reads_the_host(name):
    assert host_reads(name) == []


def test_checks_host_does_read_the_host():
    # the scan above sees the reads where they are
    reads = host_reads(HOST)
    assert {'imports grp', 'imports _datastores'} <= set(reads) and any('run_command' in r for r in reads)


@pytest.mark.parametrize('name', PURE)
def test_pure_checks_import_neither_the_host_nor_the_glue(name):
    ours, _others = imported(name)
    assert not ours & {HOST, GLUE}


def test_the_host_io_does_not_import_the_glue():
    assert GLUE not in imported(HOST)[0]


def test_contract_and_stack_model_import_no_checks():
    assert imported('_contract')[0] == set()
    assert imported('_stack')[0] <= {'_contract'}
