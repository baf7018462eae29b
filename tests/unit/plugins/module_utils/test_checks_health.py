# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_checks_health: the judgements of a working stack on measured facts (seeded defects)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from ansible_collections.caracal.hardened.plugins.module_utils import _checks_health as health  # noqa: E402
from ansible_collections.caracal.hardened.plugins.module_utils._contract import get_profile  # noqa: E402

from test_checks_fixtures import containers  # noqa: E402

PROFILE = get_profile('2026.07')
STREAM = PROFILE['audit_stream']


def facts(groups):
    return {'types': {STREAM: 'stream'}, 'lengths': {STREAM: 10}, 'groups': {STREAM: groups}}


def test_pending_entries_within_the_bound_pass():
    rec = health.check_pending(PROFILE, facts([{'name': 'caracal-audit', 'pending': 12, 'consumers': 1}]), 'x:1', 1000)
    assert rec['status'] == 'pass' and rec['evidence']['groups'][0]['pending'] == 12


def test_consumers_falling_behind_fail():
    rec = health.check_pending(PROFILE, facts([{'name': 'caracal-audit', 'pending': 1001, 'consumers': 1}]), 'x:1', 1000)
    assert rec['findings'] == ['consumer group caracal-audit of %s has 1001 pending entries (bound 1000): its consumers '
                               'are not keeping up' % STREAM]


def test_a_stream_nobody_consumes_fails():
    assert health.check_pending(PROFILE, facts([]), 'x:1', 1000)['findings'] == [
        '%s has no consumer group: nothing consumes the audit events' % STREAM]
    missing = {'types': {STREAM: 'none'}, 'lengths': {}, 'groups': {}}
    assert health.check_pending(PROFILE, missing, 'x:1', 1000)['status'] == 'fail'
    assert health.check_pending(PROFILE, {'error': 'WRONGPASS'}, 'x:1', 1000)['findings'] == [
        'cannot read %s at x:1: WRONGPASS' % STREAM]


def test_readiness_without_any_engine_is_not_applicable_but_a_stopped_stack_fails():
    assert health.check_ready(PROFILE, [], {}, engines=[])['status'] == 'not_applicable'
    rec = health.check_ready(PROFILE, [], {}, engines=['docker'])
    assert rec['status'] == 'fail' and len(rec['findings']) == len(PROFILE['services'])


def test_readiness_of_the_compliant_stack_passes_and_a_probe_error_fails():
    ctrs = containers()
    probes = dict((c['name'], {'status': 200}) for c in ctrs)
    assert health.check_ready(PROFILE, ctrs, probes, engines=['docker'])['status'] == 'pass'
    probes['caracal-sts-1'] = {'error': 'timed out'}
    assert health.check_ready(PROFILE, ctrs, probes, engines=['docker'])['findings'] == [
        'sts: /ready did not answer (timed out)']
    probes['caracal-sts-1'] = None
    assert health.check_ready(PROFILE, ctrs, probes, engines=['docker'])['findings'] == [
        'sts: no address to reach /ready from the host (container caracal-sts-1)']


def test_no_credential_to_try_is_a_failure_not_a_pass():
    rec = health.check_credentials([], {'postgres': '10.0.0.2:5432', 'redis': '10.0.0.3:6379'})
    assert rec['status'] == 'fail'


def test_credentials_are_read_from_the_views_urls():
    snapshot = {'views': {'services': {
        'api': {'files': {'databaseUrl': {'value': 'postgres://caracal:pw%40x@postgres:5432/caracal\n'},
                          'redisUrl': {'value': 'redis://:rpw@redis:6379/0'},
                          'metricsBearer': {'value': 'ab' * 32}}},
        'redis': {'files': {'redisPassword': {'value': 'rpw\n'}}}}}}
    assert health.credentials_to_try(PROFILE, snapshot) == [
        ('api', 'databaseUrl', 'postgres', 'caracal', 'pw@x', 'caracal'),
        ('api', 'redisUrl', 'redis', '', 'rpw', '0'),
        ('redis', 'redisPassword', 'redis', '', 'rpw', ''),
    ]


def test_a_dlq_that_grew_since_the_last_verification_fails():
    from ansible_collections.caracal.hardened.plugins.module_utils._checks_audit import check_dlq
    dlq = PROFILE['audit_dlq']
    grown = {'types': {dlq: 'stream'}, 'lengths': {dlq: 7}}
    assert check_dlq(PROFILE, grown, 'x:1', 10)['status'] == 'pass'
    assert check_dlq(PROFILE, grown, 'x:1', 10, previous=7)['status'] == 'pass'
    rec = check_dlq(PROFILE, grown, 'x:1', 10, previous=3)
    assert rec['findings'] == ['%s grew from 3 to 7 entries since the last verification: audit events are failing now'
                               % dlq]
    assert rec['evidence']['previous_length'] == 3


@pytest.mark.parametrize('body, expected', [
    # caracal-go
    ('{"ok": false, "ready": false, "reason": "redis: connection refused"}', 'redis: connection refused'),
    # caracal-node: error and dependency
    ('{"ok": false, "error": "database unavailable", "dependency": "postgres"}', 'database unavailable, postgres'),
    # caracal-web: status only
    ('{"status": "draining"}', 'draining'),
    ('not json s3cr3t', 'not json <redacted>'),
])
def test_the_reason_of_each_image_shape_is_shown_redacted(body, expected):
    from ansible_collections.caracal.hardened.plugins.module_utils._checks_host import _reason
    assert _reason(body, ['s3cr3t']) == expected
