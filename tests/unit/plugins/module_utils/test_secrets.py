# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Secret rules: validation as Caracal does it, generation, fingerprints, ages, evidence."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import re

import pytest

from ansible_collections.caracal.hardened.plugins.module_utils import _secrets as secrets
from ansible_collections.caracal.hardened.plugins.module_utils._contract import get_profile, secret_names

PROFILE = get_profile()
SPECS = PROFILE['secrets']
KEK = [n for n, s in SPECS.items() if secrets.is_destructive(s)][0]
HMAC = [n for n, s in SPECS.items() if s['kind'] == 'hmac'][0]
PASSWORD = [n for n, s in SPECS.items() if s['kind'] == 'password'][0]
DERIVED = [n for n, s in SPECS.items() if secrets.is_derived(s)]
UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 7, 3, 10, 15, 0, tzinfo=UTC)


def hex_of(values):
    return bytes(bytearray(values)).hex()


def random_like(size):
    """A fixed, non-weak value of ``size`` bytes."""
    return hex_of((i * 37 + 11) % 256 for i in range(size))


def assert_rule(name, value, spec, rule):
    with pytest.raises(secrets.SecretValidationError) as exc:
        secrets.validate(name, value, spec)
    assert exc.value.secret == name
    assert exc.value.rule == rule
    assert name in str(exc.value)
    assert rule in str(exc.value)


# ---------------------------------------------------------------- validation

@pytest.mark.parametrize('name', secret_names(PROFILE, generated_only=True))
def test_generated_values_pass_their_own_rules(name):
    spec = SPECS[name]
    value = secrets.generate(spec)
    assert len(value) == 2 * spec['bytes']
    assert secrets.validate(name, value, spec) == value


def test_upper_case_hex_is_accepted_and_kept():
    value = random_like(32).upper()
    assert secrets.validate(HMAC, value, SPECS[HMAC]) == value


def test_trailing_whitespace_is_trimmed_as_caracal_does():
    value = random_like(32)
    assert secrets.validate(HMAC, value + ' \t\r\n', SPECS[HMAC]) == value


def test_longer_hmac_key_is_accepted():
    assert secrets.validate(HMAC, random_like(64), SPECS[HMAC])


@pytest.mark.parametrize('value', [None, 42, b'00'])
def test_rule_type(value):
    assert_rule(HMAC, value, SPECS[HMAC], 'type')


@pytest.mark.parametrize('value', ['', '   ', '\n', ' \t\r\n'])
def test_rule_not_empty(value):
    assert_rule(HMAC, value, SPECS[HMAC], 'not-empty')


@pytest.mark.parametrize('value', ['zz' * 32, random_like(32)[:-2] + 'g0', ' ' + random_like(32), random_like(16) + '-' + random_like(16)])
def test_rule_hex(value):
    assert_rule(HMAC, value, SPECS[HMAC], 'hex')


def test_rule_even_length():
    assert_rule(HMAC, random_like(32) + 'a', SPECS[HMAC], 'even-length')


def test_rule_min_bytes():
    spec = SPECS[HMAC]
    assert_rule(HMAC, random_like(spec['min_bytes'] - 1), spec, 'min-bytes')
    assert secrets.validate(HMAC, random_like(spec['min_bytes']), spec)


def test_rule_min_bytes_password():
    spec = SPECS[PASSWORD]
    assert_rule(PASSWORD, random_like(spec['min_bytes'] - 1), spec, 'min-bytes')


def test_kek_must_be_exactly_its_size():
    spec = SPECS[KEK]
    assert spec['min_bytes'] == spec['max_bytes']
    assert secrets.validate(KEK, random_like(spec['max_bytes']), spec)
    assert_rule(KEK, random_like(spec['max_bytes'] + 1), spec, 'max-bytes')
    assert_rule(KEK, random_like(spec['min_bytes'] - 1), spec, 'min-bytes')


WEAK = [
    ('weak-all-zeros', hex_of([0] * 32)),
    ('weak-repeated-byte', hex_of([0xab] * 32)),
    ('weak-ascending', hex_of(range(32))),
    ('weak-ascending', hex_of((0xf0 + i) % 256 for i in range(32))),  # wraps past 0xff
    ('weak-descending', hex_of(range(32, 0, -1))),
    ('weak-descending', hex_of((0x10 - i) % 256 for i in range(32))),  # wraps past 0x00
    ('weak-alternating', hex_of([0xde, 0xad] * 16)),
]


@pytest.mark.parametrize('rule, value', WEAK)
def test_weak_kek_rules(rule, value):
    assert_rule(KEK, value, SPECS[KEK], rule)
    assert_rule(KEK, value.upper(), SPECS[KEK], rule)


@pytest.mark.parametrize('value', [
    hex_of(list(range(31)) + [0]),            # ascending but for the last byte
    hex_of([0xde, 0xad] * 15 + [0xde, 0xae]),  # alternating but for the last byte
    hex_of([0] * 31 + [1]),                    # zeros but for the last byte
])
def test_almost_weak_kek_is_accepted(value):
    assert secrets.validate(KEK, value, SPECS[KEK]) == value


def test_weak_rules_only_where_the_contract_asks():
    assert not SPECS[HMAC].get('weak_check')
    assert secrets.validate(HMAC, hex_of([0] * 32), SPECS[HMAC])


@pytest.mark.parametrize('name', DERIVED)
def test_derived_values_follow_their_template(name):
    spec = SPECS[name]
    value = secrets.derive(spec, {src: random_like(24) for src in spec['derived_from']})
    assert secrets.validate(name, value, spec) == value
    assert_rule(name, value.replace('caracal', 'other', 1) if 'caracal' in value else 'x' + value, spec, 'template')
    assert_rule(name, '', spec, 'not-empty')


# ---------------------------------------------------------------- derive and generate

@pytest.mark.parametrize('name', DERIVED)
def test_derive_embeds_the_password(name):
    spec = SPECS[name]
    values = {src: random_like(24) for src in spec['derived_from']}
    url = secrets.derive(spec, values)
    for src in spec['derived_from']:
        assert values[src] in url
    assert url == spec['template'].format(**values)


def test_derive_without_its_source_names_secret_and_rule():
    spec = SPECS[DERIVED[0]]
    with pytest.raises(secrets.SecretValidationError) as exc:
        secrets.derive(spec, {})
    assert exc.value.secret == DERIVED[0]
    assert exc.value.rule == 'derived-from'


def test_generate_draws_again_on_a_weak_value(monkeypatch):
    spec = SPECS[KEK]
    draws = iter([hex_of([0] * 32), hex_of(range(32)), random_like(32)])
    monkeypatch.setattr(secrets.secrets, 'token_hex', lambda size: next(draws))
    assert secrets.generate(spec) == random_like(32)


def test_generated_values_differ():
    spec = SPECS[HMAC]
    assert len({secrets.generate(spec) for dummy in range(20)}) == 20


# ---------------------------------------------------------------- fingerprints

def test_fingerprint_is_pinned():
    # The test stand-in image computes this same function: it must never change.
    assert secrets.fingerprint('caracal') == 'fcbc84fbb6698a5a'
    assert secrets.fingerprint('00' * 32) == 'c0da48f68d3c4589'


def test_fingerprint_is_stable_short_hex_and_distinct():
    value = random_like(32)
    fp = secrets.fingerprint(value)
    assert fp == secrets.fingerprint(value)
    assert re.match('^[0-9a-f]{16}$', fp)
    assert fp != secrets.fingerprint(random_like(33))
    assert fp != secrets.fingerprint(value.upper())
    assert fp not in value and value not in fp


def test_fingerprint_is_domain_separated():
    import hashlib
    value = random_like(32)
    assert secrets.fingerprint(value) != hashlib.sha256(value.encode()).hexdigest()[:16]


# ---------------------------------------------------------------- time

def test_timestamps_are_utc_iso_z():
    assert secrets.format_ts(NOW) == '2026-07-03T10:15:00Z'
    assert secrets.parse_ts('2026-07-03T10:15:00Z') == NOW
    assert secrets.format_ts(None) is None and secrets.parse_ts(None) is None
    later = NOW.astimezone(datetime.timezone(datetime.timedelta(hours=2)))
    assert secrets.format_ts(later) == '2026-07-03T10:15:00Z'
    assert secrets.stamp(NOW) == '20260703T101500Z'
    assert secrets.from_epoch(NOW.timestamp()) == NOW
    assert secrets.utcnow().tzinfo is not None


def test_age_days():
    assert secrets.age_days(NOW - datetime.timedelta(days=3, hours=23), NOW) == 3
    assert secrets.age_days(NOW + datetime.timedelta(days=1), NOW) == 0


def test_due_when_age_exceeds_max_age():
    day = datetime.timedelta(days=1)
    assert not secrets.is_due(NOW - 90 * day, 90, NOW)
    assert secrets.is_due(NOW - 90 * day - datetime.timedelta(seconds=1), 90, NOW)
    assert not secrets.is_due(NOW - 1000 * day, 0, NOW)
    assert not secrets.is_due(NOW - 1000 * day, None, NOW)


def test_retirement_arithmetic():
    until = secrets.retire_after(NOW, 7)
    assert until == NOW + datetime.timedelta(days=7)
    assert not secrets.is_expired(until, until)
    assert secrets.is_expired(until, until + datetime.timedelta(seconds=1))
    assert secrets.retire_after(NOW, 0) is None and secrets.retire_after(NOW, None) is None
    assert not secrets.is_expired(None, NOW + datetime.timedelta(days=10000))


def test_policy_defaults_overrides_kek_and_derived():
    assert secrets.policy(SPECS[HMAC], {}, 90, 7) == (90, 7)
    assert secrets.policy(SPECS[HMAC], {HMAC: {'rollback_days': 0}}, 90, 7) == (90, 0)
    assert secrets.policy(SPECS[HMAC], {HMAC: {'max_age_days': 30}}, 90, 7) == (30, 7)
    assert secrets.policy(SPECS[KEK], {}, 90, 7) == (0, 7)
    assert secrets.policy(SPECS[KEK], {KEK: {'max_age_days': 365}}, 90, 7) == (365, 7)
    assert secrets.policy(SPECS[DERIVED[0]], {}, 90, 7) == (0, 7)


# ---------------------------------------------------------------- evidence

def test_evidence_record_fields_and_no_value():
    value = random_like(32)
    record = secrets.evidence_record(
        NOW, 'awx-job-7', 'rotated', 'exposure', HMAC, PROFILE['name'], '/etc/caracal/secrets/' + HMAC,
        old_fingerprint=secrets.fingerprint(random_like(33)), new_fingerprint=secrets.fingerprint(value),
        rollback_until=NOW + datetime.timedelta(days=7))
    assert tuple(sorted(record)) == tuple(sorted(secrets.EVIDENCE_FIELDS))
    assert record['ts'] == '2026-07-03T10:15:00Z'
    assert record['rollback_until'] == '2026-07-10T10:15:00Z'
    assert (record['actor'], record['action'], record['reason'], record['secret']) == ('awx-job-7', 'rotated', 'exposure', HMAC)
    assert record['profile'] == PROFILE['name']
    assert value not in repr(record)


def test_evidence_record_defaults():
    record = secrets.evidence_record(NOW, 'root', 'generated', 'initial', HMAC, PROFILE['name'], '/x')
    assert record['old_fingerprint'] is None and record['new_fingerprint'] is None and record['rollback_until'] is None


@pytest.mark.parametrize('action, reason', [('deleted', 'initial'), ('rotated', 'whim')])
def test_evidence_vocabulary_is_closed(action, reason):
    with pytest.raises(ValueError):
        secrets.evidence_record(NOW, 'root', action, reason, HMAC, PROFILE['name'], '/x')
