#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: datastore_credentials
short_description: Prove that Postgres and Redis accept the credentials in the secret store, and repair Postgres
version_added: 0.2.0
description:
  - Logs in to Postgres with every database URL of the secret store (the users, passwords and databases the services
    use) and to Redis with the store's password, at the datastores' loopback publishes.
  - When Postgres refuses a login, the roles that carry O(postgres.roles) are given the store's password in one
    transaction, as SCRAM-SHA-256 verifiers computed on the host; the password itself never reaches the server, a
    statement, a command line or a log. The statement is fed on standard input to C(psql) run by O(postgres.exec)
    inside the postgres container (local peer authentication). Every login is then tried again.
  - Redis reads its password only when it starts, so a refused Redis password cannot be repaired in place; the module
    returns RV(restart), Redis and its clients in roll order, for the backend to roll.
  - This is what makes a rotation safe to interrupt. Whatever a killed run left half done, the next full run finds
    the servers and the files in agreement, or makes them agree.
author:
  - caracal.hardened contributors (!UNKNOWN)
extends_documentation_fragment:
  - caracal.hardened.attributes
attributes:
  check_mode:
    support: full
    details:
      - In check mode the logins are tried (they change nothing) and a repair is only reported.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - A repair happens only when a login is refused; after it the logins succeed and the next run changes nothing.
options:
  profile:
    description: The Caracal release profile (which URLs log in where, the datastores' publishes).
    type: str
    default: '2026.07'
  store_path:
    description: The secret store of P(caracal.hardened.secret_files#module).
    type: path
    required: true
  engine:
    description:
      - The container engine's command (C(docker) or C(podman)), to read the address of O(postgres.container) and
        O(redis.container) with C(inspect).
    type: path
    default: /usr/bin/docker
  postgres:
    description: Check (and repair) Postgres. Omit it on a host without the bundled Postgres.
    type: dict
    suboptions:
      container:
        description:
          - The postgres container (name or id). The module logs in at its address on the stack's network (storage is
            not published by default; the host reaches the container's network directly).
          - Without it, at O(postgres.address).
        type: str
      address:
        description: Address to log in at when O(postgres.container) is not given (a loopback publish).
        type: str
        default: 127.0.0.1
      port:
        description: Port; defaults to the contract's container port (with O(postgres.container)) or its publish.
        type: int
      exec:
        description:
          - Argument vector prefix that runs a command inside the postgres container as the operating-system user
            C(postgres), for example C([docker, compose, -p, caracal, exec, --no-TTY, --user, postgres, postgres]).
            Required for a repair.
        type: list
        elements: str
        default: []
      roles:
        description: The roles that log in with C(postgresPassword) (the superuser included).
        type: list
        elements: str
        default: []
  redis:
    description: Check Redis. Omit it on a host without the bundled Redis.
    type: dict
    suboptions:
      container:
        description: The redis container (name or id); as O(postgres.container).
        type: str
      address:
        description: Address to authenticate at when O(redis.container) is not given (a loopback publish).
        type: str
        default: 127.0.0.1
      port:
        description: Port; defaults to the contract's container port (with O(redis.container)) or its publish.
        type: int
  repair:
    description: Repair refused Postgres logins. With V(false) a refused login fails the module.
    type: bool
    default: true
  timeout:
    description: Seconds for each connection.
    type: float
    default: 5
seealso:
  - module: caracal.hardened.secret_files
'''

EXAMPLES = r'''
- name: Prove the datastores accept the stored credentials, repair Postgres when not
  caracal.hardened.datastore_credentials:
    store_path: /opt/caracal/secrets/store
    postgres:
      exec: [docker, compose, --project-name, caracal, exec, --no-TTY, --user, postgres, postgres]
      roles: [caracal, postgres]
    redis: {}
  register: caracal_credentials
'''

RETURN = r'''
postgres:
  description: The Postgres logins, by URL secret, before and after a repair. Never a value.
  returned: when O(postgres) is set
  type: dict
  contains:
    logins:
      description: Each URL secret with C(user), C(database), C(accepted) and C(detail).
      type: list
      elements: dict
    repaired:
      description: The roles given the store's password on this run (would be, in check mode).
      type: list
      elements: str
redis:
  description: Whether Redis accepts the store's password, with the detail.
  returned: when O(redis) is set
  type: dict
restart:
  description: Services to restart, in roll order, because Redis still holds another password.
  returned: success
  type: list
  elements: str
'''

import json
import re

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native
from ansible.module_utils.six.moves.urllib.parse import unquote, urlsplit

from ansible_collections.caracal.hardened.plugins.module_utils._contract import ContractError, get_profile, roll_order
from ansible_collections.caracal.hardened.plugins.module_utils._datastores import (
    pg_login,
    redis_auth,
    scram_verifier,
)
from ansible_collections.caracal.hardened.plugins.module_utils._secrets import trim

PSQL = ['psql', '--no-psqlrc', '--quiet', '--set', 'ON_ERROR_STOP=1', '--dbname', 'postgres']
ROLE = re.compile(r'^[A-Za-z_][A-Za-z0-9_]{0,62}$')


def refused(detail):
    """Whether a failed login was the server saying no (not a server that did not answer)."""
    return detail.startswith('refused:') or ' refused the login ' in detail or ' refused AUTH' in detail


def read_secret(store_path, name):
    try:
        with open('%s/%s' % (store_path, name)) as handle:
            value = trim(handle.read())
    except (IOError, OSError):
        return None
    return value or None


def target(module, profile, service, spec):
    """``(address, port)`` to reach ``service`` at: its container's address on the stack's network,
    or the given address (a loopback publish)."""
    contract = profile['services'][service]
    if not spec.get('container'):
        return spec['address'], spec['port'] or int(contract['publish'].rsplit(':', 1)[1])
    rc, out, err = module.run_command([module.params['engine'], 'inspect', spec['container']])
    try:
        networks = json.loads(out)[0]['NetworkSettings']['Networks'] if rc == 0 else {}
    except (ValueError, KeyError, IndexError, TypeError):
        networks = {}
    addresses = [n.get('IPAddress') for dummy, n in sorted((networks or {}).items()) if n and n.get('IPAddress')]
    if not addresses:
        module.fail_json(msg='the %s container %s is not running or has no network address (%s inspect: %s). Start '
                         'the stack and run again.' % (service, spec['container'], module.params['engine'],
                                                       (err or out or 'no output').strip()[-300:]))
    return addresses[0], spec['port'] or int(contract['port'])


def postgres_urls(profile, store_path):
    """[(secret name, user, password, database)] of every Postgres URL in the store."""
    found = []
    for name, spec in profile['secrets'].items():
        if not (spec.get('template') or '').startswith(('postgres://', 'postgresql://')):
            continue
        url = read_secret(store_path, name)
        if url is None:
            continue
        parts = urlsplit(url)
        found.append((name, unquote(parts.username or ''), unquote(parts.password or ''), parts.path.lstrip('/')))
    return found


def repair_sql(roles, password):
    """One transaction giving every role a fresh SCRAM verifier of ``password``."""
    lines = ['BEGIN;']
    lines += ["ALTER ROLE \"%s\" PASSWORD '%s';" % (role, scram_verifier(password)) for role in roles]
    lines.append('COMMIT;')
    return '\n'.join(lines) + '\n'


def redacted(text):
    """psql echoes a failed statement: keep no verifier in a message."""
    return re.sub(r"SCRAM-SHA-256\$[^'\s]*", 'SCRAM-SHA-256$[verifier]', text or '')


def check_postgres(module, profile, p):
    spec = p['postgres']
    address, port = target(module, profile, 'postgres', spec)
    urls = postgres_urls(profile, p['store_path'])
    password = read_secret(p['store_path'], 'postgresPassword')
    if password is None or not urls:
        module.fail_json(msg='the secret store %s holds no postgresPassword or database URL: run the secrets role first'
                         % p['store_path'])

    def attempt():
        return [dict(zip(('secret', 'user', 'database'), (n, u, d)), **dict(zip(('accepted', 'detail'),
                pg_login(address, port, u, pw, d, timeout=p['timeout'])))) for n, u, pw, d in urls]

    logins = attempt()
    failed = [entry for entry in logins if not entry['accepted']]
    result = {'logins': logins, 'repaired': []}
    if not failed:
        return result, False
    unreachable = [e for e in failed if not refused(e['detail'])]
    if unreachable or not p['repair']:
        module.fail_json(msg='Postgres at %s:%d did not accept the stored credentials: %s. %s' % (
            address, port, '; '.join('%s (user %s): %s' % (e['secret'], e['user'], e['detail']) for e in failed),
            'Start the stack and run again.' if unreachable else 'repair is off.'), postgres=result)
    roles = list(spec['roles'])
    bad = [r for r in roles if not ROLE.match(r)]
    if bad or not roles or not spec['exec']:
        module.fail_json(msg='postgres.roles (plain role names) and postgres.exec are needed for a repair (got roles %s)'
                         % ', '.join(roles or ['none']), postgres=result)
    result['repaired'] = roles
    if module.check_mode:
        return result, True
    rc, out, err = module.run_command(list(spec['exec']) + PSQL, data=repair_sql(roles, password), binary_data=True)
    if rc != 0:
        module.fail_json(msg='setting the stored postgresPassword on roles %s failed (rc %d): %s. The transaction was '
                         'rolled back; no role changed.' % (', '.join(roles), rc, redacted(err or out).strip()[-1500:]),
                         postgres=result)
    result['logins'] = attempt()
    still = [e for e in result['logins'] if not e['accepted']]
    if still:
        module.fail_json(msg='Postgres still refuses %s after the repair: %s' % (
            ', '.join(e['secret'] for e in still), '; '.join(e['detail'] for e in still)), postgres=result)
    return result, True


def check_redis(module, profile, p):
    spec = p['redis']
    address, port = target(module, profile, 'redis', spec)
    password = read_secret(p['store_path'], 'redisPassword')
    if password is None:
        module.fail_json(msg='the secret store %s holds no redisPassword: run the secrets role first' % p['store_path'])
    accepted, detail = redis_auth(address, port, password, timeout=p['timeout'])
    if not accepted and not refused(detail):
        module.fail_json(msg='Redis at %s:%d cannot be reached to check its password: %s. Start the stack and run again.'
                         % (address, port, detail))
    return {'accepted': accepted, 'detail': detail}, [] if accepted else roll_order(profile, ['redisPassword'])


def main():
    module = AnsibleModule(
        argument_spec={
            'profile': {'type': 'str', 'default': '2026.07'},
            'store_path': {'type': 'path', 'required': True},
            'engine': {'type': 'path', 'default': '/usr/bin/docker'},
            'postgres': {'type': 'dict', 'options': {
                'container': {'type': 'str'},
                'address': {'type': 'str', 'default': '127.0.0.1'},
                'port': {'type': 'int'},
                'exec': {'type': 'list', 'elements': 'str', 'default': []},
                'roles': {'type': 'list', 'elements': 'str', 'default': []},
            }},
            'redis': {'type': 'dict', 'options': {
                'container': {'type': 'str'},
                'address': {'type': 'str', 'default': '127.0.0.1'},
                'port': {'type': 'int'},
            }},
            'repair': {'type': 'bool', 'default': True},
            'timeout': {'type': 'float', 'default': 5},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        profile = get_profile(p['profile'])
    except ContractError as exc:
        module.fail_json(msg=to_native(exc))
    result = {'changed': False, 'restart': []}
    if p['postgres'] is not None:
        result['postgres'], result['changed'] = check_postgres(module, profile, p)
    if p['redis'] is not None:
        result['redis'], result['restart'] = check_redis(module, profile, p)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
