# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""caracal.hardened.digest: stable over key order, sensitive to every value and every file."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.caracal.hardened.plugins.filter.digest import FilterModule

digest = FilterModule().filters()['digest']


def test_key_order_does_not_matter_and_values_do():
    a = digest({'x': 1, 'y': [1, 2], 'z': {'b': True, 'a': None}})
    assert a == digest({'z': {'a': None, 'b': True}, 'y': [1, 2], 'x': 1})
    assert a != digest({'x': 1, 'y': [2, 1], 'z': {'b': True, 'a': None}})
    assert a != digest({'x': '1', 'y': [1, 2], 'z': {'b': True, 'a': None}})
    assert len(a) == 64 and int(a, 16) >= 0


def test_files_count_by_content_and_relative_path(tmp_path):
    role = tmp_path / 'role'
    (role / 'tasks').mkdir(parents=True)
    (role / 'tasks' / 'main.yml').write_text(u'---\n')
    (role / '__pycache__').mkdir()
    (role / '__pycache__' / 'x.pyc').write_bytes(b'\0')
    first = digest({}, paths=[str(role)])
    assert first != digest({})
    (role / '__pycache__' / 'x.pyc').write_bytes(b'\1')
    assert digest({}, paths=[str(role)]) == first
    (role / 'tasks' / 'main.yml').write_text(u'--- # changed\n')
    assert digest({}, paths=[str(role)]) != first
    (role / 'tasks' / 'main.yml').write_text(u'---\n')
    (role / 'tasks' / 'main.yml').rename(role / 'tasks' / 'other.yml')
    assert digest({}, paths=[str(role)]) != first


def test_a_missing_path_fails_clearly(tmp_path):
    with pytest.raises(AnsibleFilterError, match='does not exist on the controller'):
        digest({}, paths=[str(tmp_path / 'missing')])


def test_other_values_count_by_their_text():
    moment = datetime.datetime(2026, 11, 23, 12, 0, 0)
    assert digest({'at': moment}) == digest({'at': '2026-11-23 12:00:00'})
    assert digest({'set': {1, 2}}) == digest({'set': {2, 1}})


def test_the_roles_run_to_run_facts_are_left_out_by_default():
    base = {'caracal_web_url': 'https://caracal.test', 'host': 'h1'}
    assert digest(dict(base, caracal_secrets_result={'x': 1}, caracal_rotate_summary='s',
                       caracal_verify_report={'at': 'now'})) == digest(base)
    # Only the whole name counts: a variable that merely starts like one is kept.
    assert digest(dict(base, caracal_secrets_rotate_days=3)) != digest(base)
    assert digest(dict(base, caracal_secrets_result={'x': 1}), exclude=[]) != digest(base)


def test_the_open_rotation_journal_is_not_an_input():
    # A journal is finished by the backends' own rule (an open journal forces their full run); as
    # a stamp input it would make the run after a fresh deploy a full one for every role.
    from ansible_collections.caracal.hardened.plugins.filter.digest import digest
    base = {'caracal_web_url': 'https://console.example.com'}
    assert digest(dict(base, caracal_secrets_journal={'id': 'j1'})) == digest(dict(base, caracal_secrets_journal=None))
