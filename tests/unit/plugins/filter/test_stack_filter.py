# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.caracal.hardened.plugins.filter.contract import contract_image
from ansible_collections.caracal.hardened.plugins.filter.stack import FilterModule, stack, stack_restart_plan

SETTINGS = {'web_url': 'https://console.example.com', 'issuer_url': 'https://sts.example.com'}


def settings(**extra):
    merged = dict(SETTINGS)
    merged.update(extra)
    return merged


def test_filters_are_registered():
    assert set(FilterModule().filters()) == {'stack', 'stack_restart_plan'}


def test_images_come_from_the_contract_image_logic():
    digest = 'sha256:' + 'b' * 64
    model = stack('2026.07', settings(registry='mirror.example/caracal', release='v2026.06.25-rc.1',
                                      digests={'caracal-go': digest}))
    for svc in model['services']:
        name = 'dbMigrate' if svc['name'] == 'replayInit' else svc['name']
        assert svc['image'] == contract_image('2026.07', name, registry='mirror.example/caracal',
                                              release='2026.06.25-rc.1', digests={'caracal-go': digest})
    sts = [s for s in model['services'] if s['name'] == 'sts'][0]
    assert sts['image'] == 'mirror.example/caracal/caracal-go:v2026.06.25-rc.1@' + digest
    assert model['release'] == '2026.06.25-rc.1'


def test_default_registry_and_release():
    model = stack('2026.07', settings())
    web = [s for s in model['services'] if s['name'] == 'web'][0]
    assert web['image'] == 'ghcr.io/garudex-labs/caracal-web:v2026.07.03-rc.1'


@pytest.mark.parametrize('extra,match', [
    ({'mode': 'dev'}, 'caracal stack: mode'),
    ({'release': '9.9.9'}, 'not part of profile'),
    ({'digests': {'caracal-web': 'latest'}}, 'sha256'),
    ({'publish': {'web': '0.0.0.0:443'}}, 'not loopback'),
])
def test_errors_are_filter_errors(extra, match):
    with pytest.raises(AnsibleFilterError, match=match):
        stack('2026.07', settings(**extra))


def test_unknown_profile():
    with pytest.raises(AnsibleFilterError, match='unknown Caracal release profile'):
        stack('9.9', settings())


def test_restart_plan_filter():
    model = stack('2026.07', settings())
    assert stack_restart_plan(model, ['sts', 'gateway', 'api', 'replayInit']) == ['sts', 'gateway', 'api']


def test_profile_1_0_is_refused_until_the_backends_render_it():
    with pytest.raises(AnsibleFilterError, match='caracal stack: profile 1.0 .* cannot deploy it yet'):
        stack('1.0', settings())
