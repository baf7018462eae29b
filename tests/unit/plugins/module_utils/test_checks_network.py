# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ports and firewall checks on ss output, /proc/net/tcp and nft JSON fixtures."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

import pytest

from ansible_collections.caracal.hardened.plugins.module_utils import _checks_network as nw
from ansible_collections.caracal.hardened.plugins.module_utils._checks import FAIL, PASS

from test_checks_fixtures import PROFILE, SS, by_service, containers, ruleset, stack

EDGE = [443, 80]
ADMIN = [22]
T = ('inet', 'caracal_filter')

PROC_NET_TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:01BB 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 21814 1 0000000000000000 100 0 0 10 0
   1: 0100007F:0BB9 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 21815 1 0000000000000000 100 0 0 10 0
   2: 00000000:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   991        0 21816 1 0000000000000000 100 0 0 10 0
   3: 0100007F:0BB9 0100007F:A3C2 01 00000000:00000000 00:00000000 00000000     0        0 21817 1 0000000000000000 100 0 0 10 0
"""
PROC_NET_TCP6 = """  sl  local_address                         remote_address                        st tx_queue rx_queue tr
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0
"""


# ---------------------------------------------------------------- parsing

def test_parse_ss():
    found = nw.parse_ss(SS)
    assert {'address': '127.0.0.53', 'port': 53, 'processes': ['systemd-resolve']} in found
    assert {'address': '::', 'port': 443, 'processes': ['nginx']} in found
    assert len(found) == 8


def test_parse_ss_without_state_column_and_with_star():
    found = nw.parse_ss('0 4096 *:5432 *:*\n0 4096 [::ffff:127.0.0.1]:3000 [::]:*\nnoise line\n')
    assert found == [{'address': '*', 'port': 5432, 'processes': []},
                     {'address': '::ffff:127.0.0.1', 'port': 3000, 'processes': []}]


def test_parse_proc_net_tcp_keeps_only_listeners():
    found = nw.parse_proc_net_tcp(PROC_NET_TCP) + nw.parse_proc_net_tcp(PROC_NET_TCP6)
    assert [(f['address'], f['port']) for f in found] == [('0.0.0.0', 443), ('127.0.0.1', 3001), ('0.0.0.0', 5432),
                                                          ('::', 22), ('::1', 8080)]


# ---------------------------------------------------------------- ports

def test_compliant_ports_pass():
    listeners = nw.parse_ss(SS)
    public = nw.check_public_ports(listeners, containers(), EDGE, ADMIN)
    assert public['status'] == PASS, public['findings']
    assert sorted(e['listen'] for e in public['evidence']['exposed_listeners']) == [
        '0.0.0.0:22', '0.0.0.0:443', '0.0.0.0:80', '[::]:22', '[::]:443', '[::]:80']
    services = nw.check_service_ports(PROFILE, listeners, containers(), EDGE)
    assert services['status'] == PASS, services['findings']
    assert {'container': 'caracal-web-1', 'service': 'web', 'publish': '127.0.0.1:3001', 'container_port': 3002,
            'scope': 'loopback'} in services['evidence']['publishes']


def test_open_storage_port_listening_fails():
    listeners = nw.parse_ss(SS) + nw.parse_proc_net_tcp(PROC_NET_TCP)
    services = nw.check_service_ports(PROFILE, listeners, containers(), EDGE)
    assert services['status'] == FAIL
    assert services['findings'] == ['port 5432 of postgres (storage port) listens on 0.0.0.0:5432 (every interface)']
    public = nw.check_public_ports(listeners, containers(), EDGE, ADMIN)
    assert public['findings'] == ['port 5432 listens on 0.0.0.0:5432 (process unknown)']


def test_open_storage_port_published_fails():
    items = stack()
    pg = by_service(items, 'postgres')
    pg['NetworkSettings']['Ports'] = {'5432/tcp': [{'HostIp': '0.0.0.0', 'HostPort': '5432'},
                                                   {'HostIp': '::', 'HostPort': '5432'}]}
    services = nw.check_service_ports(PROFILE, nw.parse_ss(SS), containers(items), EDGE)
    assert services['findings'] == [
        'storage postgres publishes container port 5432 on 0.0.0.0:5432 (every interface)',
        'storage postgres publishes container port 5432 on :::5432 (every interface)',
    ]
    public = nw.check_public_ports(nw.parse_ss(SS), containers(items), EDGE, ADMIN)
    assert public['findings'][0] == 'container caracal-postgres-1 publishes port 5432 on 0.0.0.0:5432 (every interface)'


def test_publish_without_an_address_counts_as_every_interface():
    items = stack()
    by_service(items, 'redis')['NetworkSettings']['Ports'] = {}
    by_service(items, 'redis')['HostConfig']['PortBindings'] = {'6379/tcp': [{'HostIp': '', 'HostPort': '6379'}]}
    services = nw.check_service_ports(PROFILE, [], containers(items), EDGE)
    assert services['findings'] == ['storage redis publishes container port 6379 on 0.0.0.0:6379 (every interface)']


def test_private_address_is_allowed_for_internal_ports():
    listeners = [{'address': '10.0.0.5', 'port': 3000, 'processes': []}]
    assert nw.check_service_ports(PROFILE, listeners, [], EDGE)['status'] == PASS
    assert nw.check_public_ports(listeners, [], EDGE, ADMIN)['status'] == PASS
    public = [{'address': '93.184.216.34', 'port': 3000, 'processes': ['node']}]
    assert nw.check_service_ports(PROFILE, public, [], EDGE)['findings'] == [
        'port 3000 of api (app port) listens on 93.184.216.34:3000 (public)']


# ---------------------------------------------------------------- nftables

def _chain(data, name):
    for item in data['nftables']:
        if 'chain' in item and item['chain']['name'] == name and item['chain']['table'] == 'caracal_filter':
            return item['chain']
    raise KeyError(name)


def _rules(data, chain):
    return [i for i in data['nftables'] if 'rule' in i and i['rule']['chain'] == chain and i['rule']['table'] == 'caracal_filter']


def test_compliant_firewall_passes():
    data = ruleset()
    for check in (nw.check_firewall, nw.check_default_deny, nw.check_blocked_ranges):
        rec = check(data, *T)
        assert rec['status'] == PASS, rec['findings']
    assert nw.check_firewall(data, *T)['evidence']['other_tables'] == ['ip filter']
    assert nw.check_blocked_ranges(data, *T)['evidence']['blocked']['forward'] == {
        '169.254.0.0/16': True, '100.64.0.0/10': True, '224.0.0.0/4': True}


def test_missing_table_fails_every_firewall_check():
    data = {'nftables': [i for i in ruleset()['nftables'] if (i.get('table') or i.get('chain') or i.get('rule') or
                                                              i.get('set') or {}).get('family') != 'inet']}
    assert nw.check_firewall(data, *T)['findings'] == ['table inet caracal_filter is not loaded (tables present: ip filter)']
    deny = nw.check_default_deny(data, *T)
    assert deny['status'] == FAIL and len(deny['findings']) == 3
    assert nw.check_blocked_ranges(data, *T)['status'] == FAIL


def test_unreadable_ruleset_fails():
    rec = nw.check_firewall(None, *T, error='nft (nftables) is not installed')
    assert rec['findings'] == ['cannot read the nftables ruleset: nft (nftables) is not installed']


def test_egress_open_by_policy_fails():
    data = ruleset()
    _chain(data, 'output')['policy'] = 'accept'
    data['nftables'].remove(_rules(data, 'output')[-1])  # the final drop
    rec = nw.check_default_deny(data, *T)
    assert rec['findings'] == ['host egress is open: policy accept without a final drop rule']


def test_egress_policy_accept_with_a_final_drop_is_still_closed():
    data = ruleset()
    _chain(data, 'output')['policy'] = 'accept'
    assert nw.check_default_deny(data, *T)['status'] == PASS


def test_egress_open_by_an_unconditional_accept_fails():
    data = ruleset()
    rules = _rules(data, 'output')
    accept = copy.deepcopy(rules[0])
    accept['rule']['expr'] = [{'counter': {'packets': 0, 'bytes': 0}}, {'accept': None}]
    data['nftables'].insert(data['nftables'].index(rules[0]), accept)
    rec = nw.check_default_deny(data, *T)
    assert rec['findings'] == ['host egress is open: an unconditional accept rule in chain output']
    blocked = nw.check_blocked_ranges(data, *T)
    assert blocked['status'] == FAIL and '169.254.0.0/16 is not dropped for the host' in blocked['findings'][0]


def test_container_egress_open_through_a_jumped_chain_fails():
    data = ruleset()
    first = _rules(data, 'container_egress')[0]
    accept = copy.deepcopy(first)
    accept['rule']['expr'] = [{'accept': None}]
    data['nftables'].insert(data['nftables'].index(first), accept)
    rec = nw.check_default_deny(data, *T)
    assert rec['findings'] == ['container egress and forwarded ingress is open: an unconditional accept rule in chain '
                               'container_egress']


def test_ingress_open_to_everything_fails():
    data = ruleset()
    rule = _rules(data, 'ingress')[0]
    rule['rule']['expr'] = [{'match': {'op': '==', 'left': {'payload': {'protocol': 'ip', 'field': 'saddr'}},
                                       'right': {'prefix': {'addr': '0.0.0.0', 'len': 0}}}}, {'accept': None}]
    rec = nw.check_default_deny(data, *T)
    assert rec['findings'] == ['ingress is open: an unconditional accept rule in chain ingress']


def test_a_blocked_range_missing_from_the_set_fails():
    data = ruleset()
    for item in data['nftables']:
        if item.get('set', {}).get('name') == 'blocked_v4':
            item['set']['elem'] = [e for e in item['set']['elem'] if e['prefix']['addr'] != '169.254.0.0']
    rec = nw.check_blocked_ranges(data, *T)
    assert rec['findings'] == [
        '169.254.0.0/16 is not dropped for the host (output chain) before traffic is accepted',
        '169.254.0.0/16 is not dropped for the containers (forward chain) before traffic is accepted',
    ]


def test_an_allow_rule_before_the_block_opens_the_range():
    data = ruleset()
    egress = _rules(data, 'egress')
    allow = copy.deepcopy(egress[0])
    allow['rule']['expr'] = [{'match': {'op': '==', 'left': {'payload': {'protocol': 'ip', 'field': 'daddr'}},
                                        'right': '169.254.169.254'}}, {'accept': None}]
    data['nftables'].insert(data['nftables'].index(egress[0]), allow)
    rec = nw.check_blocked_ranges(data, *T)
    assert [f.split(' ')[0] for f in rec['findings']] == ['169.254.0.0/16', '169.254.0.0/16']


def test_a_literal_drop_rule_and_a_range_element_count():
    data = ruleset()
    for item in data['nftables']:
        if item.get('set', {}).get('name') == 'blocked_v4':
            item['set']['elem'] = [{'range': ['100.64.0.0', '100.127.255.255']}, {'prefix': {'addr': '224.0.0.0', 'len': 4}}]
    egress = _rules(data, 'egress')
    literal = copy.deepcopy(egress[0])
    literal['rule']['expr'] = [{'match': {'op': '==', 'left': {'payload': {'protocol': 'ip', 'field': 'daddr'}},
                                          'right': {'prefix': {'addr': '169.254.0.0', 'len': 16}}}}, {'drop': None}]
    data['nftables'].insert(data['nftables'].index(egress[0]), literal)
    assert nw.check_blocked_ranges(data, *T)['status'] == PASS


@pytest.mark.parametrize('hook', ['input', 'forward', 'output'])
def test_missing_base_chain_fails(hook):
    data = ruleset()
    for item in data['nftables']:
        if 'chain' in item and item['chain'].get('hook') == hook:
            del item['chain']['hook']
    assert nw.check_firewall(data, *T)['findings'] == ['table inet caracal_filter has no %s base chain' % hook]
