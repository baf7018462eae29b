# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""caracal.hardened.caracal_checklist_info: records folded into the checklist rows."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'module_utils'))

from ansible_collections.caracal.hardened.plugins.module_utils._checks import CHECKLIST, CHECKS, judged  # noqa: E402
from ansible_collections.caracal.hardened.plugins.modules import caracal_checklist_info as mod  # noqa: E402

from test_checks_fixtures import run_module  # noqa: E402


def passing():
    return [judged(cid, []) for cid in CHECKS]


def test_all_passing_records(monkeypatch):
    kind, result = run_module(monkeypatch, mod.main, {'records': passing()}, check=True)
    assert kind == 'exit' and result['changed'] is False and result['summary']['passed']
    assert len(result['checklist']) == len(CHECKLIST)
    assert result['summary']['rows'] == {'pass': len(CHECKLIST) - 3, 'fail': 0, 'not_applicable': 3}


def test_a_failed_required_check_fails_its_rows(monkeypatch):
    records = [r if r['id'] != 'secrets.permissions' else judged('secrets.permissions', ['x: world-readable'])
               for r in passing()]
    kind, result = run_module(monkeypatch, mod.main, {'records': records})
    assert not result['summary']['passed'] and result['summary']['failed_required'] == ['secrets.permissions']
    failed_rows = sorted(r['row'] for r in result['checklist'] if r['status'] == 'fail')
    assert failed_rows == ['Admin/Coordinator tokens', 'Runtime profiles', 'Secret delivery', 'Zone KEK']


def test_missing_records_fail(monkeypatch):
    records = [r for r in passing() if not r['id'].startswith('tls.')]
    kind, result = run_module(monkeypatch, mod.main, {'records': records})
    assert not result['summary']['passed']
    row = [r for r in result['checklist'] if r['row'] == 'External TLS'][0]
    assert row['missing'] == ['tls.protocols', 'tls.certificate', 'tls.headers', 'tls.redirect']


def test_garbage_is_refused(monkeypatch):
    kind, result = run_module(monkeypatch, mod.main, {'records': [{'id': 'nope', 'status': 'pass'}]})
    assert kind == 'fail' and 'not a check record' in result['msg']
