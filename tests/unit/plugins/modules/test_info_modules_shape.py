# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The five single-group ``caracal_<group>_info`` modules document one report.

Ansible has no fragments for RETURN, so each module repeats the report keys; these tests
hold the copies identical. The attributes come from one doc fragment
(``caracal.hardened.attributes.read_only``), which every verification module declares.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib

import pytest
import yaml

from ansible_collections.caracal.hardened.plugins.doc_fragments.attributes import ModuleDocFragment as Attributes
from ansible_collections.caracal.hardened.plugins.module_utils._checks_groups import GROUPS

SINGLE = [group.name for group in GROUPS]
# What every single-group module returns, documented alike; engines: every group but tls.
SHARED = ('checks', 'summary')
FRAGMENTS = ('caracal.hardened.attributes', 'caracal.hardened.attributes.read_only', 'caracal.hardened.checks')


def module(name):
    return importlib.import_module('ansible_collections.caracal.hardened.plugins.modules.caracal_%s_info' % name)


def docs(name):
    mod = module(name)
    return yaml.safe_load(mod.DOCUMENTATION), yaml.safe_load(mod.RETURN)


def test_the_five_groups_have_their_modules():
    assert SINGLE == ['runtime', 'secrets', 'network', 'tls', 'audit']


@pytest.mark.parametrize('name', SINGLE + ['verify'])
def test_each_declares_the_shared_fragments_and_no_attributes_of_its_own(name):
    doc, _ret = docs(name)
    assert [f for f in doc['extends_documentation_fragment'] if f in FRAGMENTS] == list(FRAGMENTS)
    assert 'attributes' not in doc


def test_the_fragment_sets_a_support_level_for_every_attribute():
    described = yaml.safe_load(Attributes.DOCUMENTATION)['attributes']
    levels = yaml.safe_load(Attributes.READ_ONLY)['attributes']
    assert set(levels) == set(described)
    assert dict((k, v['support']) for k, v in levels.items()) == {
        'check_mode': 'full', 'diff_mode': 'none', 'idempotent': 'full'}


@pytest.mark.parametrize('key', SHARED)
def test_the_report_keys_are_documented_identically(key):
    first = docs(SINGLE[0])[1][key]
    for name in SINGLE[1:]:
        assert docs(name)[1][key] == first, (name, key)


def test_engines_is_documented_identically_where_the_group_returns_it():
    documented = {}
    for group in GROUPS:
        ret = docs(group.name)[1]
        assert ('engines' in ret) == group.containers, group.name
        if group.containers:
            documented[group.name] = ret['engines']
    assert len(set(yaml.safe_dump(v) for v in documented.values())) == 1, documented


@pytest.mark.parametrize('group', GROUPS, ids=SINGLE)
def test_each_module_runs_its_group(group):
    assert module(group.name).CHECK_IDS == group.check_ids


def test_the_combined_module_documents_a_part_of_the_same_record():
    single = docs(SINGLE[0])[1]['checks']
    combined = docs('verify')[1]['checks']
    assert (combined['type'], combined['elements']) == (single['type'], single['elements'])
    for key, value in combined['contains'].items():
        assert key in single['contains'], key
        assert value['type'] == single['contains'][key]['type'], key
