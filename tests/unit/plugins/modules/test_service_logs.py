# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""caracal.hardened.service_logs: log lines leave the host with every secret value replaced."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'module_utils'))

from ansible_collections.caracal.hardened.plugins.modules import service_logs as mod  # noqa: E402

from test_checks_fixtures import FakeHost, run_module  # noqa: E402

TOKEN = 'a1b2c3d4' * 8
PASSWORD = 'p@ss/w0rd+' * 3
URL = 'postgres://caracal:%s@postgres:5432/caracal' % PASSWORD.replace('@', '%40').replace('/', '%2F').replace('+', '%2B')
CLI = ['docker', 'compose', '--project-directory', '/opt/caracal/compose']


@pytest.fixture
def store(tmp_path):
    path = tmp_path / 'store'
    path.mkdir()
    (path / 'caracalAdminToken').write_text(TOKEN + '\n')
    (path / 'databaseUrl').write_text(URL + '\n')
    (path / 'short').write_text('abc\n')
    return str(path)


def host(outputs):
    fake = FakeHost(binaries={'docker': '/usr/bin/docker'})
    fake.commands[('docker', 'compose')] = lambda argv: outputs[argv[-1]]
    fake.commands[('journalctl', '--unit')] = lambda argv: outputs[argv[2]]
    return fake


def test_every_form_of_every_value_is_replaced(monkeypatch, store):
    outputs = {
        'api': (0, 'api: refusing admin token %s\nconnecting to %s\n' % (TOKEN, URL), 'password=%s abc\n' % PASSWORD),
        'caracal-compose.service': (3, '', 'token in query: t=%s\n' % TOKEN.upper().lower()),
    }
    args = {'store_path': store, 'compose_cli': CLI, 'services': ['api'], 'units': ['caracal-compose.service'],
            'tail': 20}
    kind, result = run_module(monkeypatch, mod.main, args, host(outputs))
    assert kind == 'exit' and result['changed'] is False
    text = json.dumps(result)
    for value in (TOKEN, URL, PASSWORD, URL.split(':')[2].split('@')[0]):
        assert value not in text, value
    api, unit = result['logs']
    assert (api['name'], api['rc'], unit['name'], unit['rc']) == ('api', 0, 'caracal-compose.service', 3)
    assert api['text'] == ('api: refusing admin token [redacted caracalAdminToken]\n'
                           'connecting to [redacted databaseUrl]\n'
                           'password=[redacted databaseUrl] abc')
    assert result['redacted'] == 4
    # values shorter than a secret are left alone (they would redact ordinary words)
    assert 'abc' in api['text']


def test_the_commands_it_runs(monkeypatch, store):
    seen = []

    def record(argv):
        seen.append(argv)
        return 0, 'ok\n', ''
    fake = FakeHost()
    fake.commands[('docker', 'compose')] = record
    fake.commands[('journalctl', '--unit')] = record
    args = {'store_path': store, 'compose_cli': CLI, 'services': ['api'], 'units': ['caracal-api.service'], 'tail': 7}
    kind, result = run_module(monkeypatch, mod.main, args, fake, check=True)
    assert kind == 'exit'
    assert seen == [CLI + ['logs', '--no-color', '--tail', '7', 'api'],
                    ['journalctl', '--unit', 'caracal-api.service', '--lines', '7', '--no-pager', '--output', 'cat']]


def test_services_need_the_compose_command_line(monkeypatch, store):
    kind, result = run_module(monkeypatch, mod.main, {'store_path': store, 'services': ['api']})
    assert kind == 'fail' and 'compose_cli' in result['msg']


def test_a_missing_store_redacts_nothing_and_does_not_fail(monkeypatch, tmp_path):
    fake = FakeHost()
    fake.commands[('journalctl', '--unit')] = lambda argv: (0, 'hello\n', '')
    kind, result = run_module(monkeypatch, mod.main, {'store_path': str(tmp_path / 'none'), 'units': ['x.service']},
                              fake)
    assert kind == 'exit' and result['logs'][0]['text'] == 'hello'
