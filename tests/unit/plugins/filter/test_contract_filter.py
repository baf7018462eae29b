# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.caracal.hardened.plugins.filter.contract import (
    FilterModule,
    contract,
    contract_image,
    contract_roll_order,
)


def test_filters_are_registered():
    assert set(FilterModule().filters()) == {'contract', 'contract_roll_order', 'contract_image'}


def test_contract_filter_rejects_unknown_profile():
    with pytest.raises(AnsibleFilterError, match='unknown Caracal release profile'):
        FilterModule().filters()['contract']('9.9')


def test_roll_order_limited_to_host_services():
    assert contract_roll_order('2026.07', ['caracalAdminToken'], ['web', 'api']) == ['api', 'web']


def test_image_default_and_override():
    assert contract_image('2026.07', 'sts') == 'ghcr.io/garudex-labs/caracal-go:v2026.07.03-rc.1'
    assert contract_image('2026.07', 'web', registry='mirror.example/caracal', release='2026.06.25-rc.1') == \
        'mirror.example/caracal/caracal-web:v2026.06.25-rc.1'


def test_image_digest_pinning():
    digest = 'sha256:' + 'a' * 64
    assert contract_image('2026.07', 'api', digests={'caracal-node': digest}).endswith('caracal-node:v2026.07.03-rc.1@' + digest)
    with pytest.raises(AnsibleFilterError, match='sha256'):
        contract_image('2026.07', 'api', digests={'caracal-node': 'latest'})


def test_image_unknown_release_or_service():
    with pytest.raises(AnsibleFilterError, match='not part of profile'):
        contract_image('2026.07', 'api', release='1.0.0')
    with pytest.raises(AnsibleFilterError, match='no service'):
        contract_image('2026.07', 'nope')


def test_contract_filter_returns_profile_1_0_and_its_deployable_flag():
    assert contract('1.0')['deployable'] is False
    assert contract(None)['deployable'] is True
    assert contract('1.0')['services']['api']['secret_targets']['apiDatabaseUrl'] == 'databaseUrl'
    assert contract_roll_order('1.0', ['secretStoreKek']) == ['sts', 'api']
    assert contract_image('1.0', 'web') == 'ghcr.io/garudex-labs/caracal-web:v1.0.0'
