# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""caracal.hardened.rotation_journal on a journal written as secret_files writes it."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.caracal.hardened.plugins.modules import rotation_journal


class Done(Exception):
    pass


def journal(archive, phase='applied', secrets=None, journal_id='20261202T000000Z-0a0b0c0d'):
    data = {'version': 1, 'id': journal_id, 'opened': '2026-12-02T00:00:00Z', 'profile': '2026.07', 'actor': 'test',
            'phase': phase, 'restart': ['sts', 'api'], 'sync': [], 'steps': [],
            'secrets': secrets or {'auditHmacKey': {'old_fingerprint': 'a' * 16, 'new_fingerprint': 'b' * 16,
                                                    'action': 'rotated', 'reason': 'forced'}}}
    with open(os.path.join(archive, 'journal.json'), 'w') as handle:
        json.dump(data, handle)
    return data


def call(monkeypatch, check=False, **args):
    out = {}

    def finish(self, **result):
        out.update(result)
        raise Done()
    monkeypatch.setattr(basic.AnsibleModule, 'exit_json', finish)
    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', lambda self, **r: finish(self, failed=True, **r))
    with patch_module_args(dict(args, _ansible_check_mode=check)):
        with pytest.raises(Done):
            rotation_journal.main()
    return out


def history(archive):
    with open(os.path.join(archive, 'journals.jsonl')) as handle:
        return [json.loads(line) for line in handle]


def test_closes_the_journal_and_records_it(monkeypatch, tmp_path):
    opened = journal(str(tmp_path))
    result = call(monkeypatch, archive_path=str(tmp_path), id=opened['id'])
    assert result['changed'] is True and result['journal']['id'] == opened['id']
    assert not os.path.exists(str(tmp_path / 'journal.json'))
    closed = history(str(tmp_path))
    assert [(c['id'], c['outcome']) for c in closed] == [(opened['id'], 'completed')]
    assert closed[0]['steps'][-1]['step'] == 'closed'
    assert oct(os.stat(str(tmp_path / 'journals.jsonl')).st_mode & 0o777) == '0o600'
    again = call(monkeypatch, archive_path=str(tmp_path), id=opened['id'])
    assert again['changed'] is False and again['journal'] is None


def test_check_mode_leaves_it_open(monkeypatch, tmp_path):
    opened = journal(str(tmp_path))
    result = call(monkeypatch, check=True, archive_path=str(tmp_path))
    assert result['changed'] is True and result['journal']['id'] == opened['id']
    assert os.path.exists(str(tmp_path / 'journal.json')) and not os.path.exists(str(tmp_path / 'journals.jsonl'))


@pytest.mark.parametrize('secrets, outcome', [
    ({'auditHmacKey': {'old_fingerprint': 'a' * 16, 'new_fingerprint': 'a' * 16, 'action': 'rotated', 'reason': 'x'}},
     'rolled-back'),
    ({'auditHmacKey': {'old_fingerprint': 'b' * 16, 'new_fingerprint': 'a' * 16, 'action': 'restored', 'reason': 'x'}},
     'rolled-back'),
    ({'auditHmacKey': {'old_fingerprint': None, 'new_fingerprint': 'a' * 16, 'action': 'generated', 'reason': 'x'}},
     'completed'),
])
def test_the_outcome_says_whether_the_change_was_undone(monkeypatch, tmp_path, secrets, outcome):
    journal(str(tmp_path), secrets=secrets)
    assert call(monkeypatch, archive_path=str(tmp_path))['journal']['outcome'] == outcome
    assert history(str(tmp_path))[-1]['outcome'] == outcome


def test_another_runs_journal_is_left_open(monkeypatch, tmp_path):
    journal(str(tmp_path))
    result = call(monkeypatch, archive_path=str(tmp_path), id='someone-else')
    assert result['failed'] and 'a later run opened it' in result['msg']
    assert os.path.exists(str(tmp_path / 'journal.json'))


def test_a_journal_still_being_written_is_not_closed(monkeypatch, tmp_path):
    journal(str(tmp_path), phase='prepared')
    result = call(monkeypatch, archive_path=str(tmp_path))
    assert result['failed'] and 'still being written' in result['msg']
    assert os.path.exists(str(tmp_path / 'journal.json'))
