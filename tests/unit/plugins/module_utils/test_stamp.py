# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shared stamp code, where a role depends on the words it returns.

The firewall role replaces a live table that is not what its last full run left: it knows that
from the reason ``host_stamp`` gives for its watched ``nft list table`` command. The reason the
role expects (``__caracal_firewall_live_reason``) must be the one the code writes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import jinja2
import yaml

from ansible_collections.caracal.hardened.plugins.module_utils import _stamp

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..'))


class FakeModule(object):
    """run_command of a host whose live table reads ``listing``."""

    def __init__(self, listing):
        self.listing = listing

    def run_command(self, argv, **_kwargs):
        return 0, self.listing, ''


def firewall_vars():
    with open(os.path.join(ROOT, 'roles', 'firewall', 'vars', 'main.yml')) as handle:
        raw = yaml.safe_load(handle)
    render = jinja2.Environment().from_string
    argv = [render(arg).render(raw) for arg in raw['__caracal_firewall_live_argv']]
    reason = render(raw['__caracal_firewall_live_reason']).render(dict(raw, __caracal_firewall_live_argv=argv))
    return raw, argv, reason


def test_the_firewall_names_its_live_table_as_the_stamp_reports_it():
    raw, argv, reason = firewall_vars()
    assert argv == ['/usr/sbin/nft', '-s', 'list', 'table', 'inet', 'caracal_filter']
    assert {'argv': '{{ __caracal_firewall_live_argv }}'} in raw['__caracal_firewall_stamp_watch']['commands']
    watch = {'commands': [{'argv': argv}]}
    recorded = _stamp.Fingerprint(FakeModule('table inet caracal_filter { }')).items(watch)
    edited = _stamp.Fingerprint(FakeModule('table inet caracal_filter { chain x { } }')).items(watch)
    stamp = {'version': _stamp.STAMP_VERSION, 'inputs': 'i', 'written': 100.0, 'valid_until': None, 'items': recorded}
    assert _stamp.compare(stamp, 'i', recorded, 200.0, 0) == []
    assert _stamp.compare(stamp, 'i', edited, 200.0, 0) == [reason]
