# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The checklist catalogue: every seed row is covered, every check is implemented."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.caracal.hardened.plugins.module_utils import _checks
from ansible_collections.caracal.hardened.plugins.module_utils._checks import (
    CHECKLIST,
    CHECKS,
    FAIL,
    NOT_APPLICABLE,
    PASS,
    add_findings,
    checklist_report,
    classify_address,
    judged,
    not_applicable,
    record,
    select,
    summary,
)
from ansible_collections.caracal.hardened.plugins.modules import (
    caracal_audit_info,
    caracal_network_info,
    caracal_runtime_info,
    caracal_secrets_info,
    caracal_tls_info,
)

# The rows of the two seed pages' checklist tables, as published.
SEED_ROWS = {
    ('Harden Security Posture', 'Deployment Mode'): ['Mode', 'Ports', 'Network', 'Containers'],
    ('Harden Security Posture', 'Secrets and Keys'): ['Secret delivery', 'HMAC keys', 'Zone KEK',
                                                      'Admin/Coordinator tokens', 'Runtime profiles'],
    ('Harden Security Posture', 'Access Enforcement'): ['STS', 'Gateway', 'Control', 'Resource servers'],
    ('Harden Security Posture', 'Audit and Recovery'): ['Audit stream', 'Tamper checks', 'Backups', 'Replay'],
    ('Harden Production', 'Hardening Checklist'): ['External TLS', 'Internal services', 'Secrets', 'Containers',
                                                   'NetworkPolicy', 'Gateway upstreams', 'Runtime CLI'],
}

MODULES = [caracal_runtime_info, caracal_secrets_info, caracal_network_info, caracal_tls_info, caracal_audit_info]


def test_every_seed_row_is_a_check_or_explicitly_not_applicable():
    rows = dict(((r['ref']['page'], r['ref']['section'], r['ref']['row']), r) for r in CHECKLIST)
    for (page, section), names in SEED_ROWS.items():
        for name in names:
            row = rows[(page, section, name)]
            assert row.get('checks') or row.get('not_applicable'), name
            assert not (row.get('checks') and row.get('not_applicable')), name
            if row.get('not_applicable'):
                assert len(row['not_applicable']) > 60, 'a not-applicable row needs a real reason: %s' % name


def test_rows_name_known_checks_and_every_check_proves_a_row():
    named = set()
    for row in CHECKLIST:
        for cid in row.get('checks') or []:
            assert cid in CHECKS, cid
            named.add(cid)
    assert named == set(CHECKS)


def test_every_check_is_run_by_exactly_one_module():
    seen = {}
    for module in MODULES:
        for cid in module.CHECK_IDS:
            assert cid not in seen, '%s runs in %s and %s' % (cid, seen.get(cid), module.__name__)
            seen[cid] = module.__name__
    assert set(seen) == set(CHECKS)


def test_record_is_uniform_and_maps_to_rows():
    rec = judged('containers.capabilities', ['api: adds NET_ADMIN'], {'x': 1})
    assert set(rec) == {'id', 'title', 'group', 'required', 'checklist', 'status', 'detail', 'findings', 'evidence',
                        'remediation'}
    assert rec['status'] == FAIL and rec['group'] == 'containers' and rec['remediation']
    rows = [(r['page'], r['row']) for r in rec['checklist']]
    assert ('Harden Security Posture', 'Containers') in rows and ('Harden Production', 'Containers') in rows
    ok = judged('containers.capabilities', [])
    assert ok['status'] == PASS and ok['remediation'] == '' and ok['findings'] == []


def test_record_refuses_nonsense():
    with pytest.raises(KeyError):
        record('no.such', PASS)
    with pytest.raises(ValueError):
        record('mode.fail_open', 'maybe')
    with pytest.raises(ValueError):
        record('mode.fail_open', PASS, findings=['x'])


def test_not_applicable_carries_its_reason():
    rec = not_applicable('audit.dlq', 'Redis does not run on this host')
    assert rec['status'] == NOT_APPLICABLE and rec['detail'] == 'Redis does not run on this host'


def test_add_findings_turns_a_pass_into_a_failure():
    rec = add_findings(judged('ports.public', []), ['cannot measure: ss failed'])
    assert rec['status'] == FAIL and rec['remediation'] and rec['findings'] == ['cannot measure: ss failed']
    same = add_findings(judged('ports.public', []), [])
    assert same['status'] == PASS


def test_advisory_checks_do_not_fail_the_summary():
    recs = [judged('access.gateway_allowlist', ['empty']), judged('mode.fail_open', [])]
    result = summary(recs)
    assert result['failed'] == ['access.gateway_allowlist'] and result['failed_required'] == [] and result['passed']
    recs.append(judged('mode.caracal_mode', ['api: dev']))
    assert not summary(recs)['passed'] and summary(recs)['counts'] == {PASS: 1, FAIL: 2, NOT_APPLICABLE: 0}


def test_select_by_id_and_group():
    ids = caracal_runtime_info.CHECK_IDS
    assert select(None, ids) == ids
    assert select(['containers'], ids) == [i for i in ids if i.startswith('containers.')]
    assert select(['metrics.bearer', 'mode'], ids) == ['mode.caracal_mode', 'mode.fail_open', 'metrics.bearer']
    with pytest.raises(ValueError, match='unknown checks tls'):
        select(['tls'], ids)


def _all(status):
    return [record(cid, status, findings=['x'] if status == FAIL else None,
                   detail='nothing here' if status == NOT_APPLICABLE else None) for cid in CHECKS]


def test_checklist_report_folds_checks_into_rows():
    rows = checklist_report(_all(PASS))
    assert len(rows) == len(CHECKLIST)
    na_rows = [r for r in rows if r['status'] == NOT_APPLICABLE]
    assert sorted(r['row'] for r in na_rows) == ['Resource servers', 'Runtime CLI', 'Tamper checks']
    assert all(r['reason'] for r in na_rows)
    assert all(r['status'] == PASS for r in rows if r not in na_rows)


def test_checklist_report_fails_a_row_with_one_failed_check():
    recs = _all(PASS)
    recs[[r['id'] for r in recs].index('keys.kek')] = judged('keys.kek', ['zoneKek: weak-ascending'])
    rows = dict((r['row'], r) for r in checklist_report(recs))
    assert rows['Zone KEK']['status'] == FAIL
    assert rows['ZONE_KEK']['status'] == FAIL
    assert rows['HMAC keys']['status'] == PASS


def test_checklist_report_fails_a_row_that_was_not_measured():
    recs = [r for r in _all(PASS) if r['id'] != 'tls.headers']
    rows = dict((r['row'], r) for r in checklist_report(recs))
    assert rows['External TLS']['status'] == FAIL
    assert rows['External TLS']['missing'] == ['tls.headers']
    assert 'not measured' in rows['External TLS']['reason']


def test_checklist_report_row_is_not_applicable_only_when_all_checks_are():
    rows = dict((r['row'], r) for r in checklist_report(_all(NOT_APPLICABLE)))
    assert rows['Control']['status'] == NOT_APPLICABLE and rows['Control']['reason'] == 'nothing here'


@pytest.mark.parametrize('address,kind', [
    ('0.0.0.0', 'wildcard'), ('::', 'wildcard'), ('*', 'wildcard'), ('', 'wildcard'), ('[::]', 'wildcard'),
    ('127.0.0.1', 'loopback'), ('127.0.0.53%lo', 'loopback'), ('::1', 'loopback'), ('[::1]', 'loopback'),
    ('::ffff:127.0.0.1', 'loopback'), ('10.1.2.3', 'private'), ('192.168.1.1', 'private'), ('172.18.0.2', 'private'),
    ('fd00::1', 'private'), ('fe80::1%eth0', 'private'), ('8.8.8.8', 'public'), ('2001:4860::1', 'public'),
    ('not-an-ip', 'public'),
])
def test_classify_address(address, kind):
    assert classify_address(address) == kind


def test_groups_cover_every_check():
    assert set(c.split('.', 1)[0] for c in CHECKS) == set(_checks.GROUPS)
