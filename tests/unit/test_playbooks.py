# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The playbooks, the example inventory and the execution environment, without a host.

* ``inventories/example`` lists every variable of every role (and of the playbooks) with its
  default, parses with the documented example vault password, and its vault holds placeholders
  only;
* every playbook passes ``ansible-playbook --syntax-check`` with both inventories;
* ``execution-environment.yml`` is a valid ansible-builder v3 definition whose dependencies are
  the collection's own (``galaxy.yml``).

The end-to-end behaviour of the playbooks is tested by ``molecule/e2e``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
EXAMPLE = os.path.join(ROOT, 'inventories', 'example')
LOCAL = os.path.join(ROOT, 'inventories', 'local', 'hosts.yml')
PLAYBOOKS = sorted(glob.glob(os.path.join(ROOT, 'playbooks', '*.yml')))
ROLES = sorted(os.path.basename(os.path.dirname(os.path.dirname(p)))
               for p in glob.glob(os.path.join(ROOT, 'roles', '*', 'meta', 'argument_specs.yml')))
# The documented password of the example vault (docs/playbooks.md).
EXAMPLE_VAULT_PASSWORD = 'caracal-example-vault-password'

needs_ansible = pytest.mark.skipif(shutil.which('ansible-playbook') is None, reason='ansible-playbook is not installed')


def example_text():
    """Every group_vars and host_vars file of the example inventory, concatenated."""
    text = []
    for path in sorted(glob.glob(os.path.join(EXAMPLE, '*_vars', '**', '*.yml'), recursive=True)):
        with open(path) as handle:
            text.append(handle.read())
    return '\n'.join(text)


def documented(name, text):
    """Set (``name:``) or listed with its default (``# name:``) at the start of a line."""
    return re.search(r'^(# )?%s:' % re.escape(name), text, re.M) is not None


def role_variables(role):
    with open(os.path.join(ROOT, 'roles', role, 'meta', 'argument_specs.yml')) as handle:
        specs = yaml.safe_load(handle)['argument_specs']
    names = set()
    for entry in specs.values():
        names.update((entry.get('options') or {}).keys())
    return sorted(names)


def playbook_variables():
    """caracal_* variables the playbooks read that belong to no role."""
    names = set()
    for path in PLAYBOOKS + glob.glob(os.path.join(ROOT, 'playbooks', 'templates', '*')):
        with open(path) as handle:
            names.update(re.findall(r'\b(caracal_(?:backend|gather_facts|controller_[a-z_]+))\b', handle.read()))
    return sorted(names)


def run(argv, **kwargs):
    env = dict(os.environ, ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='false')
    return subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          check=False, **kwargs)


@pytest.fixture(scope='module')
def vault_password_file(tmp_path_factory):
    path = tmp_path_factory.mktemp('vault') / 'password'
    path.write_text(EXAMPLE_VAULT_PASSWORD)
    return str(path)


@pytest.mark.parametrize('role', ROLES)
def test_the_example_inventory_lists_every_role_variable(role):
    text = example_text()
    missing = [name for name in role_variables(role) if not documented(name, text)]
    assert not missing, 'inventories/example does not list %s' % ', '.join(missing)


def test_the_example_inventory_lists_every_playbook_variable():
    names = playbook_variables()
    assert {'caracal_backend', 'caracal_gather_facts', 'caracal_controller_inventory'} <= set(names)
    text = example_text()
    assert [n for n in names if not documented(n, text)] == []


def test_the_example_vault_holds_encrypted_placeholders_only():
    from ansible.parsing.vault import VaultLib, VaultSecret
    vault = VaultLib([('default', VaultSecret(EXAMPLE_VAULT_PASSWORD.encode()))])
    files = sorted(glob.glob(os.path.join(EXAMPLE, 'group_vars', '*', 'vault.yml')))
    assert os.path.join(EXAMPLE, 'group_vars', 'caracal', 'vault.yml') in files
    decrypted = 0
    for path in files:
        with open(path) as handle:
            text = handle.read()
        blobs = re.findall(r'!vault \|\n((?: {10}.*\n)+)', text)
        assert blobs, path
        for blob in blobs:
            value = vault.decrypt('\n'.join(line.strip() for line in blob.splitlines())).decode()
            assert 'EXAMPLE-ONLY' in value, path
            decrypted += 1
        # nothing but comments, encrypted values and empty mappings in clear text
        for line in text.splitlines():
            if line and not line.startswith(('#', ' ', '---')):
                assert re.match(r'^\w+: (!vault \||\{\})$', line), (path, line)
    assert decrypted >= 3


@needs_ansible
def test_the_example_inventory_parses(vault_password_file):
    proc = run(['ansible-inventory', '-i', EXAMPLE, '--vault-password-file', vault_password_file, '--list'])
    assert proc.returncode == 0, proc.stdout.decode()
    data = json.loads(proc.stdout.decode()[proc.stdout.decode().index('{'):])
    assert data['caracal']['children'] == ['caracal_production', 'caracal_staging']
    assert data['caracal_controller']['hosts'] == ['ops-01.example.com']
    hostvars = data['_meta']['hostvars']
    assert hostvars['caracal-01.example.com']['caracal_backend'] == 'compose'
    assert hostvars['caracal-01.example.com']['caracal_mode'] == 'stable'
    assert hostvars['caracal-staging-01.example.com']['caracal_mode'] == 'rc'


@needs_ansible
@pytest.mark.parametrize('playbook', [os.path.basename(p) for p in PLAYBOOKS])
@pytest.mark.parametrize('inventory', ['example', 'local'])
def test_every_playbook_passes_the_syntax_check(vault_password_file, playbook, inventory):
    argv = ['ansible-playbook', '--syntax-check', '-i', EXAMPLE if inventory == 'example' else LOCAL,
            os.path.join('playbooks', playbook)]
    if inventory == 'example':
        argv += ['--vault-password-file', vault_password_file]
    proc = run(argv)
    assert proc.returncode == 0, proc.stdout.decode()


@pytest.mark.skipif(shutil.which('ansible-builder') is None, reason='ansible-builder is not installed')
def test_the_execution_environment_builds_a_context():
    work = tempfile.mkdtemp(prefix='caracal-ee-')
    try:
        shutil.copy(os.path.join(ROOT, 'execution-environment.yml'), work)
        # create only copies the artifact: a stand-in file is enough
        with open(os.path.join(work, 'caracal-hardened-0.0.0.tar.gz'), 'wb') as handle:
            handle.write(b'artifact')
        proc = subprocess.run(['ansible-builder', 'create', '-f', 'execution-environment.yml', '-c', 'context',
                               '--output-filename', 'Containerfile'], cwd=work, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, check=False)
        assert proc.returncode == 0, proc.stdout.decode()
        with open(os.path.join(work, 'context', 'Containerfile')) as handle:
            containerfile = handle.read()
        with open(os.path.join(work, 'context', '_build', 'requirements.yml')) as handle:
            requirements = yaml.safe_load(handle)
        assert os.path.isfile(os.path.join(work, 'context', '_build', 'caracal', 'caracal-hardened-0.0.0.tar.gz'))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert 'ansible-galaxy collection install --no-deps' in containerfile
    with open(os.path.join(ROOT, 'galaxy.yml')) as handle:
        dependencies = yaml.safe_load(handle)['dependencies']
    assert dict((c['name'], c['version']) for c in requirements['collections']) == dependencies
