# -*- coding: utf-8 -*-
"""Helpers shared by the testinfra verifiers of every caracal.hardened scenario.

Scenario tests import this module through their own ``conftest.py``.  It runs extra
playbooks against the scenario's instances (negative cases, check mode, -vvv runs) with
the inventory molecule generated, and snapshots file trees so a test can prove that a
failed run left the host byte-identical.
"""

import hashlib
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


def full_run_skipped(output, role):
    """Whether ``role`` skipped its full run on every host (its stamp matched the host).

    Looks at the role's include task named "... (skipped when the host matches ...)": True when
    every host skipped it, False when it ran for any host; fails when the output has no such task.
    """
    lines = output.splitlines()
    for index, line in enumerate(lines):
        if line.startswith('TASK [%s : ' % role) and '(skipped when the host matches' in line:
            results = []
            for result in lines[index + 1:]:
                if result.startswith(('TASK [', 'PLAY RECAP')):
                    break
                results.append(result)
            return (any(r.startswith('skipping:') for r in results)
                    and not any(r.startswith(('included:', 'fatal:')) for r in results))
    raise AssertionError('no full-run include of %s in the output:\n%s' % (role, output[-3000:]))


def stamp_reasons(output):
    """The stamps' results (converged, reasons) in a playbook output of verbosity 1 or more."""
    lines = output.splitlines()
    found = []
    for index, line in enumerate(lines):
        if line.strip().startswith(('converged:', '"converged":')):
            found.extend(lines[index:index + 6])
    return '\n'.join(found) or 'no stamp results in the output (verbosity 0?)'


def failure_excerpt(output, lines=60):
    """The output from the first failed task on (or its tail), for assertion messages."""
    text = output.splitlines()
    for index, line in enumerate(text):
        if line.startswith(('fatal:', 'failed:')):
            return '\n'.join(text[max(0, index - 3):index + lines])
    return '\n'.join(text[-lines:])


def changed_count(output):
    """Sum of ``changed=N`` over a playbook recap."""
    total = 0
    for line in output.splitlines():
        if 'changed=' in line and 'ok=' in line:
            total += int(line.split('changed=')[1].split()[0])
    return total


# ------------------------------------------------------------------ a deployed stack

FP_DOMAIN = b'caracal.hardened/fingerprint/v1\0'


def fingerprint(value):
    """The collection's fingerprint of a secret value (plugins/module_utils/_secrets.py)."""
    return hashlib.sha256(FP_DOMAIN + value.encode('utf-8')).hexdigest()[:16]


def store_values(host, store, names):
    """{name: value} of the secrets in the store directory (read back to search outputs for them)."""
    return {name: host.file('%s/%s' % (store, name)).content_string.strip() for name in names}


def loopback_get(host, port, path, headers=None):
    """(status, body) of a request to a loopback publish, from the test host."""
    args = ' '.join("-H '%s'" % h for h in (headers or []))
    out = host.check_output("curl -s -m 10 -o /tmp/body -w '%%{http_code}' %s http://127.0.0.1:%d%s; echo; cat /tmp/body"
                            % (args, port, path))
    status, dummy, body = out.partition('\n')
    return int(status), body


def each_process(host, pids_command, body):
    """Run ``body`` (sh, ``$p`` is the host pid) for every pid ``pids_command`` prints after its header line."""
    script = 'for p in $(%s | tail -n +2); do [ -r /proc/$p/status ] || continue; %s; done' % (pids_command, body)
    return host.check_output("sh -c '%s'" % script.replace("'", "'\\''"))


def proc_statuses(host, pids_command):
    """{pid: {Uid, CapEff, CapPrm, NoNewPrivs}} of every process ``pids_command`` lists."""
    out = each_process(host, pids_command, 'echo "@@ $p"; grep -E "^(Uid|CapEff|CapPrm|NoNewPrivs):" /proc/$p/status')
    table = {}
    for block in out.split('@@ ')[1:]:
        lines = block.strip().splitlines()
        fields = dict((k.strip(), v.strip()) for k, dummy, v in (line.partition(':') for line in lines[1:]))
        if len(fields) == 4:  # a process that ended meanwhile is left out
            table[int(lines[0])] = fields
    assert table, pids_command
    return table


def environments(host, pids_command):
    """The environments of every process ``pids_command`` lists, as text."""
    return each_process(host, pids_command, 'tr "\\0" "\\n" < /proc/$p/environ 2>/dev/null; echo')
