# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The supplied-value rules (secret_problems filter, _secrets.validate_supplied) and the image inputs."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import secrets

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.caracal.hardened.plugins.filter.contract import contract_image
from ansible_collections.caracal.hardened.plugins.filter.secret_problems import secret_problems
from ansible_collections.caracal.hardened.plugins.module_utils._contract import get_profile
from ansible_collections.caracal.hardened.plugins.module_utils._secrets import (
    SecretValidationError,
    generate,
    validate,
    validate_supplied,
)

PROFILE = get_profile('2026.07')
HEX_SECRETS = [n for n, s in PROFILE['secrets'].items() if s['format'] == 'hex']


@pytest.mark.parametrize('value, rule', [
    ('00' * 32, 'weak-all-zeros'),
    ('ab' * 32, 'weak-repeated-byte'),
    ('abcd' * 16, 'weak-alternating'),
    ('deadbeef' * 8, 'weak-pattern'),
    ('0123456789abcdef' * 4, 'weak-pattern'),
    (''.join('%02x' % i for i in range(32)), 'weak-ascending'),
    ('5f3a9c' + ''.join('%02x' % i for i in range(40, 69)), 'weak-ascending-run'),
    ('5f3a9c' + ''.join('%02x' % (200 - i) for i in range(29)), 'weak-descending-run'),
])
@pytest.mark.parametrize('name', HEX_SECRETS)
def test_weak_supplied_values_are_refused_for_every_hex_secret(name, value, rule):
    spec = PROFILE['secrets'][name]
    value = value[:2 * (spec.get('max_bytes') or 32)]
    with pytest.raises(SecretValidationError) as info:
        validate_supplied(name, value, spec)
    assert info.value.rule == rule and info.value.secret == name
    assert value not in str(info.value)


def test_caracal_itself_accepts_what_only_the_collection_refuses():
    # The stand-in honours Caracal's contract: an all-zero HMAC key passes Caracal's own rules.
    assert validate('auditHmacKey', '00' * 32, PROFILE['secrets']['auditHmacKey']) == '00' * 32


@pytest.mark.parametrize('name', HEX_SECRETS)
def test_random_values_pass(name):
    spec = dict(PROFILE['secrets'][name], name=name)
    for dummy in range(50):
        value = generate(spec)
        assert validate_supplied(name, value, spec) == value
    assert validate_supplied(name, secrets.token_hex(spec['bytes']).upper(), spec)


def test_the_filter_names_secrets_and_rules_never_values():
    values = {'auditHmacKey': '00' * 32, 'caracalAdminToken': 'ab' * 32, 'metricsBearer': secrets.token_hex(32),
              'databaseUrl': 'postgres://x', 'noSuchSecret': 'x', 'streamsHmacKey': 'zz'}
    problems = secret_problems(values, profile='2026.07')
    assert [p.split(':', 2)[:2] for p in problems] == [
        ['auditHmacKey', ' weak-all-zeros'], ['caracalAdminToken', ' weak-repeated-byte'],
        ['databaseUrl', ' derived'], ['noSuchSecret', ' unknown'], ['streamsHmacKey', ' hex']]
    text = ' '.join(problems)
    for value in values.values():
        assert value not in text or value == 'x'
    assert secret_problems({'metricsBearer': secrets.token_hex(32)}) == []
    with pytest.raises(AnsibleFilterError):
        secret_problems(['not', 'a', 'mapping'])


@pytest.mark.parametrize('registry', ['evil registry', 'registry.example.com"x', 'https://registry.example.com',
                                      'Registry.Example.com', 'registry.example.com/caracal\n'])
def test_registry_names_that_could_break_a_generated_file_are_refused(registry):
    with pytest.raises(AnsibleFilterError, match='caracal_registry'):
        contract_image('2026.07', 'api', registry=registry)


@pytest.mark.parametrize('registry', ['registry.example.com', 'registry.example.com:5000/caracal/',
                                      'localhost:5000', 'ghcr.io/garudex-labs'])
def test_registry_names_are_accepted(registry):
    assert contract_image('2026.07', 'api', registry=registry).startswith(registry.rstrip('/') + '/')


@pytest.mark.parametrize('digest', ['sha256:' + 'A' * 64, 'sha256:' + 'a' * 63, 'sha512:' + 'a' * 64,
                                    'sha256:' + 'a' * 63 + '\n'])
def test_digests_must_be_sha256_and_64_lower_case_hex_digits(digest):
    image = PROFILE['services']['api']['image']
    with pytest.raises(AnsibleFilterError, match='caracal_image_digests'):
        contract_image('2026.07', 'api', digests={image: digest})
    assert contract_image('2026.07', 'api', digests={image: 'sha256:' + 'a' * 64}).endswith('@sha256:' + 'a' * 64)


def test_profile_1_0_refuses_a_weak_secret_store_kek_and_a_derived_url():
    problems = secret_problems({'secretStoreKek': 'a55a' * 16, 'apiDatabaseUrl': 'postgres://x'}, profile='1.0')
    assert problems == ['apiDatabaseUrl: derived: built from apiDbPassword, it cannot be supplied',
                        'secretStoreKek: weak-alternating: value is a two-byte alternating pattern']
