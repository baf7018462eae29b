# -*- coding: utf-8 -*-
"""What the Compose and Quadlet scenarios both know about a deployed stack.

The two backend scenarios assert the same properties; the contract facts and the helpers that
read a deployed stack (secret store, loopback publishes, the stand-in's fingerprints) live here
once. Imported after the scenario's ``conftest.py`` put the collection on ``sys.path``.
"""

import json

from ansible_collections.caracal.hardened.plugins.module_utils._contract import get_profile
from caracal_molecule import changed_count, full_run_skipped, loopback_get, stamp_reasons, store_values as read_store

PROFILE = get_profile('2026.07')
SERVICES = PROFILE['services']
ORDER = PROFILE['start_order']
APPS = [s for s in ORDER if SERVICES[s]['kind'] == 'app']
JOBS = [s for s in ORDER if SERVICES[s]['kind'] == 'job'] + ['replayInit']
LONG_RUNNING = [s for s in ORDER if SERVICES[s]['kind'] != 'job']
UID, GID = PROFILE['uid'], PROFILE['gid']
HOME = '/opt/caracal'
STORE = HOME + '/secrets/store'
VIEWS = HOME + '/secrets/services'
CONTROL = HOME + '/control'
READY_TIMEOUT = 240


def store_values(host):
    return read_store(host, STORE, PROFILE['secrets'])


def publish_port(service):
    return int(SERVICES[service]['publish'].rsplit(':', 1)[1])


def get(host, service, path, headers=None):
    return loopback_get(host, publish_port(service), path, headers)


def fingerprints(host, service):
    status, body = get(host, service, '/standin/fingerprints')
    assert status == 200, body
    return json.loads(body)


def check_unchanged_host_skips_and_drift_is_repaired(host, apply, backend, drift, repaired, wait_ready):
    """A backend's stamp: a no-op re-run skips its tasks; ``drift`` (a shell command) makes the
    next run a full one after which ``repaired(host)`` holds and the stack is ready again."""
    role = 'caracal.hardened.%s' % backend
    for dummy in range(2):
        rc, out = apply(['secrets', backend], verbosity=1)
        assert rc == 0, out[-4000:]
    assert changed_count(out) == 0
    assert full_run_skipped(out, role), stamp_reasons(out)
    host.run_expect([0], drift)
    rc, out = apply(['secrets', backend], verbosity=1)
    assert rc == 0, out[-4000:]
    assert not full_run_skipped(out, role)
    assert changed_count(out) > 0
    assert repaired(host)
    assert wait_ready(host, timeout=60).rc == 0
    rc, out = apply(['secrets', backend], verbosity=1)
    assert rc == 0, out[-4000:]
    assert full_run_skipped(out, role), stamp_reasons(out)
    assert changed_count(out) == 0
