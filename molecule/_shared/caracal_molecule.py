# -*- coding: utf-8 -*-
"""Helpers shared by the testinfra verifiers of every caracal.hardened scenario.

Scenario tests import this module through their own ``conftest.py``.  It runs extra
playbooks against the scenario's instances (negative cases, check mode, -vvv runs) with
the inventory molecule generated, and snapshots file trees so a test can prove that a
failed run left the host byte-identical.
"""

import json
import os
import subprocess
import tempfile

import yaml


def inventory():
    return os.environ['MOLECULE_INVENTORY_FILE']


def run_playbook(plays, extra_vars=None, check=False, diff=False, verbosity=0, limit=None, timeout=900):
    """Run ``plays`` (a list of play dicts) against the scenario's inventory.

    Returns ``(returncode, combined output)``.  Extra variables are passed in a
    temporary JSON file, never on the command line, so secret test values do not show
    up in the process list.
    """
    with tempfile.TemporaryDirectory() as tmp:
        book = os.path.join(tmp, 'play.yml')
        with open(book, 'w') as fh:
            yaml.safe_dump(plays, fh, sort_keys=False)
        argv = ['ansible-playbook', '-i', inventory(), book]
        if extra_vars:
            varfile = os.path.join(tmp, 'vars.json')
            with open(varfile, 'w') as fh:
                json.dump(extra_vars, fh)
            os.chmod(varfile, 0o600)
            argv += ['-e', '@' + varfile]
        if check:
            argv.append('--check')
        if diff:
            argv.append('--diff')
        if verbosity:
            argv.append('-' + 'v' * verbosity)
        if limit:
            argv += ['--limit', limit]
        env = dict(os.environ, ANSIBLE_FORCE_COLOR='false', ANSIBLE_NOCOLOR='true')
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              env=env, timeout=timeout, check=False)
        return proc.returncode, proc.stdout.decode('utf-8', 'replace')


def role_play(role, role_vars=None, hosts='all', gather_facts=True):
    """A one-play list that applies ``role`` with ``role_vars``."""
    return [{
        'name': 'Apply %s' % role,
        'hosts': hosts,
        'gather_facts': gather_facts,
        'roles': [{'role': role, 'vars': role_vars or {}}] if role_vars else [role],
    }]


def tree_digest(host, *paths):
    """Map every file and directory under ``paths`` to (mode, owner, group, sha256).

    Runs one command on the host, so it is cheap enough to call before and after
    every negative case.
    """
    script = (
        'for p in "$@"; do [ -e "$p" ] || continue; '
        'find "$p" -printf "%p %m %u %g %y\\n" | sort; '
        'find "$p" -type f -print0 | sort -z | xargs -0 -r sha256sum; done'
    )
    cmd = host.run("sh -c '%s' sh %s" % (script.replace("'", "'\\''"), ' '.join(paths)))
    assert cmd.rc == 0, cmd.stderr
    return cmd.stdout


def changed_count(output):
    """Sum of ``changed=N`` over a playbook recap."""
    total = 0
    for line in output.splitlines():
        if 'changed=' in line and 'ok=' in line:
            total += int(line.split('changed=')[1].split()[0])
    return total
