# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""caracal.hardened.caracal_network_info end to end on faked ss, nft and docker CLIs."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'module_utils'))

from ansible_collections.caracal.hardened.plugins.module_utils import _checks_host  # noqa: E402
from ansible_collections.caracal.hardened.plugins.modules import caracal_network_info as mod  # noqa: E402

from test_checks_fixtures import (  # noqa: E402
    SS,
    FakeHost,
    by_service,
    record_of,
    ruleset,
    run_module,
    stack,
    statuses,
)


def host(items=None, ss=SS, nft=None):
    nft = ruleset() if nft is None else nft
    return FakeHost.with_stack(items, binaries={'ss': '/usr/bin/ss', 'nft': '/usr/sbin/nft'},
                               commands={('ss', '-H'): (0, ss, ''), ('nft', '-j'): (0, json.dumps(nft), '')})


@pytest.mark.parametrize('check', [False, True])
def test_compliant_host_passes(monkeypatch, check):
    kind, result = run_module(monkeypatch, mod.main, {}, host(), check=check)
    assert kind == 'exit' and result['changed'] is False
    assert set(statuses(result).values()) == {'pass'}, [r['findings'] for r in result['checks']]
    assert record_of(result, 'ports.public')['evidence']['listeners_measured_with'] == 'ss -Hltnp'


def test_open_storage_port_fails(monkeypatch):
    items = stack()
    by_service(items, 'postgres')['NetworkSettings']['Ports'] = {'5432/tcp': [{'HostIp': '0.0.0.0', 'HostPort': '5432'}]}
    kind, result = run_module(monkeypatch, mod.main, {'checks': ['ports']}, host(items))
    assert record_of(result, 'ports.services')['findings'] == [
        'storage postgres publishes container port 5432 on 0.0.0.0:5432 (every interface)']
    assert record_of(result, 'ports.public')['status'] == 'fail'


def test_egress_open_fails(monkeypatch):
    nft = ruleset()
    for item in nft['nftables']:
        if item.get('chain', {}).get('hook') == 'output':
            item['chain']['policy'] = 'accept'
    nft['nftables'] = [i for i in nft['nftables']
                       if not (i.get('rule', {}).get('chain') == 'output' and i['rule']['expr'][-1] == {'drop': None})]
    kind, result = run_module(monkeypatch, mod.main, {'checks': ['network']}, host(nft=nft))
    assert statuses(result) == {'network.firewall': 'pass', 'network.default_deny': 'fail', 'network.blocked_ranges': 'pass'}
    assert record_of(result, 'network.default_deny')['findings'] == [
        'host egress is open: policy accept without a final drop rule']


def test_without_nft_the_firewall_checks_fail(monkeypatch):
    h = host()
    del h.binaries['nft']
    kind, result = run_module(monkeypatch, mod.main, {'checks': ['network']}, h)
    assert set(statuses(result).values()) == {'fail'}
    assert record_of(result, 'network.firewall')['findings'] == [
        'cannot read the nftables ruleset: nft (nftables) is not installed']


def test_without_ss_proc_net_tcp_is_read(monkeypatch):
    h = host()
    del h.binaries['ss']
    tables = {'/proc/net/tcp': '  sl local rem st\n   0: 00000000:1538 00000000:0000 0A 0 0 0 0 0 0\n',
              '/proc/net/tcp6': '  sl local rem st\n'}
    monkeypatch.setattr(_checks_host, 'read_small', lambda path, limit=0: tables.get(path))
    kind, result = run_module(monkeypatch, mod.main, {'checks': ['ports.services']}, h)
    rec = result['checks'][0]
    assert rec['findings'] == ['port 5432 of postgres (storage port) listens on 0.0.0.0:5432 (every interface)']


def test_custom_blocked_range_and_bad_range(monkeypatch):
    kind, result = run_module(monkeypatch, mod.main, {'checks': ['network.blocked_ranges'],
                                                      'blocked_ranges': ['169.254.0.0/16', '198.51.100.0/24']}, host())
    assert result['checks'][0]['findings'][0].startswith('198.51.100.0/24 is not dropped for the host')
    kind, result = run_module(monkeypatch, mod.main, {'blocked_ranges': ['nonsense']}, host())
    assert kind == 'fail'
