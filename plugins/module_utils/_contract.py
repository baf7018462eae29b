# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Caracal release contract: the one source of truth for the collection.

Every role (through the ``caracal.hardened.contract`` filter) and every module
(by importing this file) reads the topology, the secret inventory, the formats and
the roll order from here.  Nothing else in the collection restates them.

A profile is plain data.  Adding a release line (for example ``1.0``) means adding
one more entry to ``PROFILES``; ``check_profile`` tells whether it is consistent.

This is a private module_utils (leading underscore): its API may change between
minor releases of the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import re

# The formats a secret can have.
#   hex:     random bytes written as lower-case hex (``bytes`` generated, ``min_bytes``
#            and ``max_bytes`` validated).
#   derived: built from other secrets with ``template`` (URL files).
FORMATS = ('hex', 'derived')

# What a secret is for, which decides its rotation behaviour.
#   kek:      the zone key-encryption key (rotation is destructive in 2026.07).
#   hmac:     an HMAC signing key.
#   token:    an opaque bearer or shared token.
#   password: a datastore password (rotation needs ALTER ROLE / requirepass).
#   url:      derived from a password; rotates with it.
KINDS = ('kek', 'hmac', 'token', 'password', 'url')

# Service roles in the topology.
#   storage: postgres, redis (stateful, own capabilities)
#   job:     one-shot (dbMigrate)
#   app:     Caracal application containers (65532, read-only, no capabilities)
SERVICE_KINDS = ('storage', 'job', 'app')

# What a release of a profile looks like (without the tag's ``v``): CalVer for 2026.07, SemVer
# ``X.Y.Z`` or ``X.Y.Z-rc.N`` from 1.0 on (Caracal's release workflow refuses anything else).
CALVER_RELEASE = r'\A[0-9]{4}\.[0-9]{2}\.[0-9]{2}(?:-rc\.[0-9]+)?\Z'
SEMVER_RELEASE = r'\A(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)(?:-rc\.[1-9][0-9]*)?\Z'

# How a password secret reaches the datastore (``password_sync``): ``psql`` (the collection sets
# it, caracal.hardened.datastore_credentials) or ``job`` (a one-shot job of the contract sets it on
# every run).
PASSWORD_SYNC_METHODS = ('psql', 'job')

# Where a host path of a profile lives: under caracal_home or under the secrets directory.
HOST_PATH_BASES = ('home', 'secrets')

_APP_RUNTIME = {
    'user': '65532:65532',
    'read_only': True,
    'cap_drop': ['ALL'],
    'cap_add': [],
    'no_new_privileges': True,
    'init': True,
    'tmpfs': {'/tmp': 'size=16m,mode=1777'},
}

# 1.0's application containers get a /tmp of 64m (audit exports go through AUDIT_EXPORT_TMP_DIR=/tmp).
_APP_RUNTIME_1_0 = dict(_APP_RUNTIME, tmpfs={'/tmp': 'size=64m,mode=1777'})

PROFILES = {
    '2026.07': {
        'description': 'Caracal 2026.07 release line (ZONE_KEK, one HMAC value per key)',
        # Whether this release of the collection can deploy the profile (the roles refuse one
        # that is contract data only).
        'deployable': True,
        # What a release of the line looks like (CalVer, with an optional rc suffix).
        'release_format': CALVER_RELEASE,
        'releases': ['2026.06.25-rc.1', '2026.07.03-rc.1'],
        'default_release': '2026.07.03-rc.1',
        'default_registry': 'ghcr.io/garudex-labs/',
        'image_tag_format': 'v{release}',
        'uid': 65532,
        'gid': 65532,
        'secrets_mount': '/run/secrets',
        'modes': ['dev', 'rc', 'stable'],
        'published_modes': ['rc', 'stable'],
        'default_mode': 'stable',
        # Settings that published modes refuse (fail-open switches).
        'fail_open_settings': {
            'INSECURE_STS': 'any non-empty value',
            'INSECURE_HTTP': 'any non-empty value',
            'JTI_FAIL_OPEN': 'true',
        },
        'audit_stream': 'caracal.audit.events',
        'audit_dlq': 'caracal.audit.events.dlq',
        'audit_max_deliveries': 8,
        # The Redis streams and their consumer groups (None: the 2026.07 contract does not list them).
        'audit_streams': None,
        # Who answers /metrics behind the bearer of which secret.
        'metrics': {'path': '/metrics', 'bearer_secret': 'metricsBearer',
                    'services': ['sts', 'api', 'gateway', 'audit', 'coordinator']},
        # The services the deployment gives CARACAL_MODE explicitly.
        'mode_services': ['sts', 'api', 'gateway', 'audit', 'coordinator', 'web'],
        # Host directories bind-mounted into a service besides the secrets view and the control
        # gate ({name: {service, base (home | secrets), source, target, read_only, purpose}}).
        'host_paths': {},
        'control_gate_mount': '/run/caracal-control',
        'control_gate_file': 'enabled',
        'redis_settings': {
            'maxmemory-policy': 'noeviction',
            'appendonly': 'yes',
            'appendfsync': 'everysec',
        },
        'replay_state': {
            'path': '/var/lib/caracal/audit-replay',
            'mode': '0750',
            'services': ['sts', 'gateway'],
        },
        # The images' /healthcheck probes HEALTH_PATH (default 'path'); the web image sets it to
        # its liveness path (Caracal's Dockerfile.web), the others keep readiness.
        # The key of a 503 /ready body that carries the reason differs by image: Go services
        # 'reason', api and coordinator 'error' (with 'dependency'), the web tier 'status'.
        'healthcheck': {'command': ['/healthcheck'], 'path': '/ready', 'liveness_path': '/health',
                        'image_paths': {'caracal-web': '/health'},
                        'reason_keys': {'caracal-go': 'reason', 'caracal-node': 'error', 'caracal-web': 'status'}},
        # Passwords a datastore keeps itself, set on its roles before anything restarts with the
        # rotated URL files: the service holding them, the user a local peer-authenticated psql
        # runs as there and the superuser initdb created (besides the roles the URL templates
        # log in as). caracal.hardened.datastore_credentials applies them.
        'password_sync': {
            # method psql: the collection sets it (datastore_credentials); job: the one-shot
            # ``service`` sets it on every run, so re-running it applies a rotated password.
            'postgresPassword': {'service': 'postgres', 'user': 'postgres', 'superuser': 'postgres',
                                 'method': 'psql'},
        },
        'secrets': {
            'zoneKek': {
                'env': ['ZONE_KEK'], 'kind': 'kek', 'format': 'hex',
                'bytes': 32, 'min_bytes': 32, 'max_bytes': 32, 'weak_check': True,
                'roll': ['sts', 'api'],
                'rotation': 'destructive',
                'unmounted': None,
                'notes': 'rotating destroys existing zones; back up with every database backup; never regenerate a lost KEK',
            },
            'auditHmacKey': {
                'env': ['AUDIT_HMAC_KEY'], 'kind': 'hmac', 'format': 'hex',
                'bytes': 32, 'min_bytes': 32,
                'roll': ['api', 'sts', 'gateway', 'audit'],
                'rotation': 'roll',
                'unmounted': None,
                'notes': 'keep the old key archived: the historical audit chain stays signed with it',
            },
            'streamsHmacKey': {
                'env': ['STREAMS_HMAC_KEY'], 'kind': 'hmac', 'format': 'hex',
                'bytes': 32, 'min_bytes': 32,
                'roll': ['api', 'sts', 'gateway', 'coordinator'],
                'rotation': 'roll',
                'unmounted': None,
                'notes': 'messages signed with the old key are skipped: let pending entries drain first '
                         '(audit does not read this key and is not rolled)',
            },
            'gatewayStsHmacKey': {
                'env': ['GATEWAY_STS_HMAC_KEY'], 'kind': 'hmac', 'format': 'hex',
                'bytes': 32, 'min_bytes': 32,
                'roll': ['sts', 'gateway', 'api'],
                'rotation': 'roll',
                'unmounted': None,
                'notes': 'sts first; a mixed-key window fails closed',
            },
            'caracalAdminToken': {
                'env': ['CARACAL_ADMIN_TOKEN'], 'kind': 'token', 'format': 'hex',
                'bytes': 32, 'min_bytes': 32,
                'roll': ['api', 'gateway', 'web'],
                'rotation': 'roll',
                'unmounted': None,
                'notes': 'the old token must fail afterwards',
            },
            'caracalCoordinatorToken': {
                'env': ['CARACAL_COORDINATOR_TOKEN'], 'kind': 'token', 'format': 'hex',
                'bytes': 32, 'min_bytes': 32,
                'roll': ['coordinator', 'web'],
                'rotation': 'roll',
                'unmounted': None,
                'notes': 'the old token must fail afterwards',
            },
            'metricsBearer': {
                'env': ['METRICS_BEARER'], 'kind': 'token', 'format': 'hex',
                'bytes': 32, 'min_bytes': 32,
                'roll': ['sts', 'api', 'gateway', 'audit', 'coordinator'],
                'rotation': 'roll',
                'unmounted': None,
                'notes': 'update the metrics scraper too',
            },
            'caracalAuthSecret': {
                'env': ['CARACAL_AUTH_SECRET'], 'kind': 'token', 'format': 'hex',
                'bytes': 32, 'min_bytes': 32,
                'roll': ['web'],
                'rotation': 'roll',
                'unmounted': None,
                'notes': 'console sessions are invalidated',
            },
            'postgresPassword': {
                'env': ['POSTGRES_PASSWORD'], 'kind': 'password', 'format': 'hex',
                'bytes': 24, 'min_bytes': 24,
                'roll': ['postgres'],
                'rotation': 'password',
                'unmounted': None,
                'notes': 'needs ALTER ROLE and rewriting databaseUrl and authDatabaseUrl',
            },
            'redisPassword': {
                'env': ['REDIS_PASSWORD'], 'kind': 'password', 'format': 'hex',
                'bytes': 24, 'min_bytes': 24,
                'roll': ['redis'],
                'rotation': 'password',
                'unmounted': None,
                'notes': 'becomes redis requirepass; rewrites redisUrl',
            },
            'databaseUrl': {
                'env': ['DATABASE_URL'], 'kind': 'url', 'format': 'derived',
                'template': 'postgres://caracal:{postgresPassword}@postgres:5432/caracal',
                'derived_from': ['postgresPassword'],
                'roll': ['sts', 'api', 'gateway', 'audit', 'coordinator'],
                'rotation': 'derived',
                'unmounted': None,
            },
            'authDatabaseUrl': {
                'env': ['CARACAL_AUTH_DATABASE_URL'], 'kind': 'url', 'format': 'derived',
                'template': 'postgres://caracal:{postgresPassword}@postgres:5432/caracal_auth',
                'derived_from': ['postgresPassword'],
                'roll': ['web'],
                'rotation': 'derived',
                'unmounted': None,
            },
            'redisUrl': {
                'env': ['REDIS_URL'], 'kind': 'url', 'format': 'derived',
                'template': 'redis://:{redisPassword}@redis:6379',
                'derived_from': ['redisPassword'],
                'roll': ['sts', 'api', 'gateway', 'audit', 'coordinator'],
                'rotation': 'derived',
                'unmounted': None,
            },
        },
        # Services in start order.  ``secrets`` maps a secret file to the *_FILE
        # variables that service reads it through (default: the secret's ``env``);
        # ``secret_targets`` maps a secret file to the name it is mounted as under
        # ``secrets_mount`` when that differs from its own (none in 2026.07).
        'services': {
            'postgres': {
                'kind': 'storage', 'image': 'caracal-postgres', 'command': None,
                'port': 5432, 'publish': '127.0.0.1:5432',
                'secrets': {'postgresPassword': ['POSTGRES_PASSWORD']},
                'secret_targets': {},
                'depends_on': {},
                'volumes': {'postgres-data': '/var/lib/postgresql'},
                'networks': ['data'],
                'runtime': {'cap_drop': ['ALL'],
                            'cap_add': ['CHOWN', 'DAC_READ_SEARCH', 'FOWNER', 'SETGID', 'SETUID'],
                            'no_new_privileges': True, 'init': False, 'read_only': False},
            },
            'redis': {
                'kind': 'storage', 'image': 'caracal-redis', 'command': None,
                'port': 6379, 'publish': '127.0.0.1:6379',
                'secrets': {'redisPassword': ['REDIS_PASSWORD']},
                'secret_targets': {},
                'depends_on': {},
                'volumes': {'redis-data': '/data'},
                'networks': ['data'],
                'ready_marker': '/run/caracal/provisioned',
                # Redis runs as its own (image) user: it needs no capability at all.
                'runtime': {'cap_drop': ['ALL'], 'cap_add': [], 'user': 'redis',
                            'no_new_privileges': True, 'init': False, 'read_only': False},
            },
            'dbMigrate': {
                'kind': 'job', 'image': 'caracal-postgres',
                'command': ['/bin/sh', '/usr/local/bin/caracal-migrate'],
                'port': None, 'publish': None,
                'secrets': {'postgresPassword': ['PGPASSWORD']},
                'secret_targets': {},
                'depends_on': {'postgres': 'healthy'},
                'volumes': {},
                'networks': ['data'],
                'runtime': {'cap_drop': ['ALL'], 'cap_add': [], 'no_new_privileges': True,
                            'init': True, 'read_only': True, 'user': '65532:65532',
                            'tmpfs': {'/tmp': 'size=16m,mode=1777'}},
            },
            'sts': {
                'kind': 'app', 'image': 'caracal-go', 'command': ['/usr/local/bin/sts'],
                'port': 8080, 'publish': '127.0.0.1:8080',
                'secrets': {'databaseUrl': None, 'redisUrl': None, 'zoneKek': None,
                            'auditHmacKey': None, 'streamsHmacKey': None,
                            'gatewayStsHmacKey': None, 'metricsBearer': None},
                'secret_targets': {},
                'depends_on': {'postgres': 'healthy', 'redis': 'healthy', 'dbMigrate': 'completed'},
                'volumes': {'sts-replay': '/var/lib/caracal'},
                'networks': ['data', 'app'],
                'env': {'ISSUER_URL': '{issuer_url}', 'STS_ADMIN_TOKEN': ''},
                # The issuer's signing keys, which clients and the gateway fetch (the path the 1.0
                # contract documents; the rotation procedure checks it after a roll).
                'jwks_path': '/.well-known/jwks.json',
                'runtime': _APP_RUNTIME,
            },
            'api': {
                'kind': 'app', 'image': 'caracal-node', 'command': ['/app/api/dist/main.js'],
                'port': 3000, 'publish': '127.0.0.1:3000',
                'secrets': {'databaseUrl': None, 'redisUrl': None, 'zoneKek': None,
                            'streamsHmacKey': None, 'gatewayStsHmacKey': None,
                            'caracalAdminToken': ['CARACAL_ADMIN_TOKEN', 'CONTROL_API_TOKEN'],
                            'metricsBearer': None, 'auditHmacKey': None},
                'secret_targets': {},
                'depends_on': {'sts': 'healthy'},
                'volumes': {},
                'control_gate': True,
                'networks': ['data', 'app'],
                'env': {'STS_ISSUER_URL': '{issuer_url}'},
                'runtime': _APP_RUNTIME,
            },
            'gateway': {
                'kind': 'app', 'image': 'caracal-go', 'command': ['/usr/local/bin/gateway'],
                'port': 8081, 'publish': '127.0.0.1:8081',
                'secrets': {'databaseUrl': None, 'redisUrl': None, 'streamsHmacKey': None,
                            'auditHmacKey': None, 'gatewayStsHmacKey': None,
                            'caracalAdminToken': None, 'metricsBearer': None},
                'secret_targets': {},
                'depends_on': {'sts': 'healthy', 'api': 'healthy'},
                'volumes': {'gateway-replay': '/var/lib/caracal'},
                'networks': ['data', 'app'],
                'env': {'UPSTREAM_HOST_ALLOWLIST': '{upstream_allowlist}', 'JTI_FAIL_OPEN': 'false'},
                'runtime': _APP_RUNTIME,
            },
            'audit': {
                'kind': 'app', 'image': 'caracal-go', 'command': ['/usr/local/bin/audit'],
                'port': 9090, 'publish': '127.0.0.1:9090',
                'secrets': {'databaseUrl': None, 'redisUrl': None, 'auditHmacKey': None,
                            'metricsBearer': None},
                # Caracal's audit waits for its datastores and the migration only, not for sts.
                'secret_targets': {},
                'depends_on': {'postgres': 'healthy', 'redis': 'healthy', 'dbMigrate': 'completed'},
                'volumes': {},
                'networks': ['data', 'app'],
                'env': {},
                'runtime': _APP_RUNTIME,
            },
            'coordinator': {
                'kind': 'app', 'image': 'caracal-node', 'command': ['/app/coordinator/dist/main.js'],
                'port': 4000, 'publish': '127.0.0.1:4000',
                'secrets': {'databaseUrl': None, 'redisUrl': None, 'streamsHmacKey': None,
                            'caracalCoordinatorToken': None, 'metricsBearer': None},
                'secret_targets': {},
                'depends_on': {'sts': 'healthy'},
                'volumes': {},
                'networks': ['data', 'app'],
                'env': {'ISSUER_URL': '{issuer_url}'},
                'runtime': _APP_RUNTIME,
            },
            'web': {
                'kind': 'app', 'image': 'caracal-web', 'command': ['/app/auth/dist/server.js'],
                'port': 3002, 'publish': '127.0.0.1:3001',
                'secrets': {'authDatabaseUrl': None, 'caracalAuthSecret': None,
                            'caracalAdminToken': None, 'caracalCoordinatorToken': None},
                'secret_targets': {},
                'depends_on': {'postgres': 'healthy', 'api': 'healthy', 'coordinator': 'healthy'},
                'volumes': {},
                'networks': ['data', 'app'],
                'env': {'CARACAL_AUTH_URL': '{web_url}'},
                'public_edge': True,
                'runtime': _APP_RUNTIME,
            },
        },
    },
}

# Profile 1.0 differs from 2026.07 in what follows; everything else (storage services, runtime,
# health, replay state, control gate, redis settings, most secrets) is the same.
_ROLE_SERVICES = ('api', 'sts', 'gateway', 'audit', 'coordinator')
_ROLE_NOTES = ('dbMigrate sets it on role %s on every run: rewrite %s, run dbMigrate, then restart %s promptly '
               '(new connections with the old password fail)')


def _role_secrets():
    """The per-service role passwords (read by dbMigrate) and the URLs derived from them."""
    secrets = {}
    for svc in _ROLE_SERVICES + ('auth',):
        password, url, role = '%sDbPassword' % svc, '%sDatabaseUrl' % svc, 'caracal%s' % svc
        secrets[password] = {'env': ['CARACAL_%s_DB_PASSWORD' % svc.upper()], 'kind': 'password', 'format': 'hex',
                             'bytes': 24, 'min_bytes': 24, 'roll': ['dbMigrate'], 'rotation': 'password',
                             'unmounted': None,
                             'notes': _ROLE_NOTES % (role, url, 'web' if svc == 'auth' else svc)}
    for svc in _ROLE_SERVICES + ('auth',):
        password, url, role = '%sDbPassword' % svc, '%sDatabaseUrl' % svc, 'caracal%s' % svc
        auth = svc == 'auth'
        database = 'caracal_auth' if auth else 'caracal'
        secrets[url] = {'env': ['CARACAL_AUTH_DATABASE_URL' if auth else 'DATABASE_URL'], 'kind': 'url',
                        'format': 'derived', 'derived_from': [password], 'rotation': 'derived', 'unmounted': None,
                        'template': 'postgres://%s:{%s}@postgres:5432/%s' % (role, password, database),
                        'roll': ['web' if auth else svc]}
    return secrets


def _profile_1_0():
    profile = copy.deepcopy(PROFILES['2026.07'])
    profile.update({
        'description': 'Caracal 1.0 release line (SECRET_STORE_KEK, per-service database roles, '
                       'IDEMPOTENCY_HMAC_KEY); contract data only in this release of the collection',
        # The backends do not render this profile yet (per-service mount targets, host paths,
        # the role passwords): the roles refuse it, see docs/contract.md.
        'deployable': False,
        'release_format': SEMVER_RELEASE,
        'releases': ['1.0.0'],
        'default_release': '1.0.0',
        # Published modes refuse these switches when they are true (true, 1, yes).
        'fail_open_settings': {'INSECURE_STS': 'true', 'INSECURE_HTTP': 'true', 'JTI_FAIL_OPEN': 'true'},
        # The streams caracal-provision-streams creates, their consumer groups and their intended
        # length bound (None: the contract gives none).
        'audit_streams': {
            'caracal.audit.events': {'groups': ['audit-ingestor', 'siem-export'], 'maxlen': 1000000},
            'caracal.audit.events.dlq': {'groups': ['audit-dlq-observer'], 'maxlen': 100000},
            'caracal.policy.invalidate': {'groups': [], 'maxlen': 10000},
            'caracal.sessions.revoke': {'groups': [], 'maxlen': 10000},
            'caracal.keys.invalidate': {'groups': [], 'maxlen': 10000},
            'caracal.agents.lifecycle': {'groups': [], 'maxlen': None},
            'caracal.invocations.lifecycle': {'groups': [], 'maxlen': None},
            'caracal.delegations.invalidate': {'groups': [], 'maxlen': 10000},
            'caracal.providers.ratelimit': {'groups': [], 'maxlen': None},
        },
        # mode_services as in 2026.07: Caracal treats an unset mode as stable, but the coordinator's
        # idempotency-key fallback and the default HOST of api and coordinator compare against
        # exactly rc or stable, so every application service gets it explicitly (the web tier keys
        # on NODE_ENV).
        'host_paths': {
            'ca': {'service': 'sts', 'base': 'home', 'source': 'ca', 'target': '/etc/caracal/ca', 'read_only': True,
                   'purpose': 'extra CA bundle (extra-ca.pem) trusted for STS egress only'},
            'allowlist': {'service': 'web', 'base': 'secrets', 'source': 'allowlist',
                          'target': '/run/caracalHostSecrets', 'read_only': True,
                          'purpose': 'the operator allowlist (operatorAllowlist.json), read on every request'},
            'console': {'service': 'web', 'base': 'secrets', 'source': 'console',
                        'target': '/run/caracalConsoleSecrets', 'read_only': True,
                        'purpose': 'sign-in secrets of the console (SMTP URL, Google and GitHub client secrets)'},
        },
    })
    secrets = profile['secrets']
    kek = secrets.pop('zoneKek')
    old = dict(secrets)
    secrets.clear()
    secrets['secretStoreKek'] = dict(kek, env=['SECRET_STORE_KEK'], notes=(
        'seals the Secret Store; a plain replacement loses every sealed secret. A rotation needs '
        'SECRET_STORE_KEK_PREVIOUS on sts and api (not wired by Compose), the re-seal sweep run with the '
        'administrative databaseUrl (not in the image) and a second restart; back it up with every database '
        'backup and never regenerate a lost KEK'))
    secrets.update(old)
    secrets['auditHmacKey']['notes'] = (
        'no overlap: events signed with the other key go to the DLQ (hmac_verify_failed, not replayable), and the '
        'tamper sweep flags every older stored row (CaracalAuditTamperDetected) until it ages out; no re-HMAC tool')
    secrets['idempotencyHmacKey'] = dict(secrets['streamsHmacKey'], env=['IDEMPOTENCY_HMAC_KEY'], roll=['coordinator'],
                                         notes='required only in rc and stable (otherwise a built-in development '
                                               'constant is used); overlap through IDEMPOTENCY_HMAC_KEY_PREVIOUS (not '
                                               'wired by Compose), kept at least IDEMPOTENCY_RETENTION_SECONDS '
                                               '(604800 by default)')
    secrets['caracalAdminToken'].update(roll=['api', 'web', 'gateway'], notes=(
        'the api stores it as the env-bootstrap token and revokes every other one at boot; the web derives the '
        'console tokens from it: api first, then web and gateway'))
    secrets['postgresPassword']['notes'] = ('the admin login (caracal): initdb uses it once and dbMigrate never '
                                            'resets it, so a rotation needs ALTER ROLE caracal and rewriting databaseUrl')
    secrets['authDatabaseUrl'] = None  # re-added below, derived from authDbPassword
    secrets.update(_role_secrets())
    # The administrative login (the owner of the tables): generated, mounted by no service.
    secrets['databaseUrl'].update(roll=[], unmounted=(
        'the administrative login for operator tooling: migrations run by hand, backups and the Secret Store KEK '
        're-seal sweep (which sees no rows through a service role)'))
    secrets['redisUrl'] = secrets.pop('redisUrl')

    # dbMigrate sets every role password on every run (ALTER ROLE ... WITH LOGIN PASSWORD), never the
    # admin login's: that one the collection sets, as in 2026.07.
    for svc in _ROLE_SERVICES + ('auth',):
        profile['password_sync']['%sDbPassword' % svc] = {'service': 'dbMigrate', 'user': None, 'superuser': None,
                                                          'method': 'job'}

    services = profile['services']
    migrate = services['dbMigrate']
    migrate['secrets'].update(('%sDbPassword' % svc, None) for svc in _ROLE_SERVICES + ('auth',))
    # PGUSER and PGDATABASE: the admin login and database of databaseUrl. PGSSLMODE comes from the
    # deployment's db_sslmode.
    migrate['env'] = {'PGHOST': 'postgres', 'PGPORT': '5432', 'PGUSER': 'caracal', 'PGDATABASE': 'caracal'}
    for name in _ROLE_SERVICES:
        svc = services[name]
        svc['secrets'] = dict(('%sDatabaseUrl' % name if s == 'databaseUrl' else 'secretStoreKek' if s == 'zoneKek'
                               else s, env) for s, env in svc['secrets'].items())
        svc['secret_targets'] = {'%sDatabaseUrl' % name: 'databaseUrl'}
        if name != 'audit':
            svc['depends_on'].setdefault('dbMigrate', 'completed')
        svc['runtime'] = _APP_RUNTIME_1_0
    services['web']['runtime'] = _APP_RUNTIME_1_0
    services['coordinator']['secrets'] = dict(
        list(services['coordinator']['secrets'].items())[:3] + [('idempotencyHmacKey', None)]
        + list(services['coordinator']['secrets'].items())[3:])
    services['sts']['env'].update({'CARACAL_SECRET_BACKEND': 'builtin', 'CARACAL_PRIVATE_EGRESS_HOSTS': '',
                                   'CARACAL_TLS_EXTRA_CA_FILE': '/etc/caracal/ca/extra-ca.pem'})
    services['api']['env'].update({'CARACAL_SECRET_BACKEND': 'builtin', 'CARACAL_PRIVATE_EGRESS_HOSTS': '',
                                   'TRUST_PROXY': 'false'})
    # TRUST_PROXY off: inbound X-Forwarded-* are not passed on to upstreams.
    services['gateway']['env']['TRUST_PROXY'] = 'false'
    services['coordinator']['env']['TRUST_PROXY'] = 'false'
    # An empty admin token keeps the audit admin API (search, DLQ, replay) answering 404.
    services['audit']['env']['AUDIT_ADMIN_TOKEN'] = ''
    # Behind the collection's TLS edge, the last X-Forwarded-For hop is the client. The serving
    # process refuses to start in production without a sign-in method.
    services['web']['env'].update({
        'NODE_ENV': 'production', 'CARACAL_AUTH_TRUST_PROXY': 'true', 'CARACAL_REQUIRE_SIGN_IN_METHOD': '1',
        'CARACAL_OPERATOR_ALLOWLIST_FILE': '/run/caracalHostSecrets/operatorAllowlist.json',
        'CARACAL_OPEN_REGISTRATION': 'false'})
    return profile


PROFILES['1.0'] = _profile_1_0()

DEFAULT_PROFILE = '2026.07'


class ContractError(ValueError):
    """Raised for an unknown profile or an inconsistent contract."""


def profile_names():
    return sorted(PROFILES)


def get_profile(name=None):
    """Return a deep copy of profile ``name`` with every service's secret map resolved.

    Resolution fills ``None`` entries in a service's ``secrets`` with the secret's own
    ``env`` list, makes ``secret_targets`` name the mount target of every secret the service
    reads (its own name unless the contract gives another) and adds ``consumers`` (services
    reading it, in start order) to each secret, so callers never recompute either.
    """
    name = DEFAULT_PROFILE if name is None else str(name)
    if name not in PROFILES:
        raise ContractError('unknown Caracal release profile %r (known: %s)' % (name, ', '.join(profile_names())))
    profile = copy.deepcopy(PROFILES[name])
    profile['name'] = name
    for sname, secret in profile['secrets'].items():
        secret['name'] = sname
        secret['consumers'] = []
    for svc_name, svc in profile['services'].items():
        svc['name'] = svc_name
        runtime = dict(svc.get('runtime') or {})
        svc['runtime'] = runtime
        for sname, env in list(svc['secrets'].items()):
            if sname not in profile['secrets']:
                raise ContractError('service %s reads unknown secret %s' % (svc_name, sname))
            svc['secrets'][sname] = list(env) if env else list(profile['secrets'][sname]['env'])
            profile['secrets'][sname]['consumers'].append(svc_name)
        targets = svc.get('secret_targets') or {}
        stray = sorted(s for s in targets if s not in svc['secrets'])
        if stray:
            raise ContractError('service %s mounts %s under another name but does not read it'
                                % (svc_name, ', '.join(stray)))
        svc['secret_targets'] = dict((s, targets.get(s, s)) for s in svc['secrets'])
    profile['start_order'] = start_order(profile)
    return profile


def start_order(profile):
    """Topological order of the services (stable: contract order breaks ties)."""
    services = profile['services']
    names = list(services)
    for svc in names:
        unknown = [dep for dep in services[svc].get('depends_on') or {} if dep not in services]
        if unknown:
            raise ContractError('service %s depends on unknown service %s' % (svc, ', '.join(unknown)))
    done = []
    pending = list(names)
    while pending:
        progressed = False
        for svc in list(pending):
            deps = services[svc].get('depends_on') or {}
            if all(dep in done for dep in deps):
                done.append(svc)
                pending.remove(svc)
                progressed = True
        if not progressed:
            raise ContractError('start order has a cycle or an unknown dependency among: %s' % ', '.join(pending))
    return done


def secret_names(profile, generated_only=False):
    """Secret names in contract order; ``generated_only`` leaves out derived ones."""
    return [n for n, s in profile['secrets'].items() if not (generated_only and s['format'] == 'derived')]


def consumers(profile, secret):
    return list(profile['secrets'][secret]['consumers'])


def roll_order(profile, changed_secrets):
    """The services to restart when ``changed_secrets`` change, in roll order.

    Services appear in the order the first changed secret's roll list gives them;
    further secrets append services not yet listed.  Derived secrets that change with
    a password are expanded.  Only services that actually read a changed secret (or
    own it, like postgres for its password) are returned, so nothing else restarts.
    """
    order = []
    expanded = []
    for name in changed_secrets:
        if name not in profile['secrets']:
            raise ContractError('unknown secret %s' % name)
        expanded.append(name)
        for other, spec in profile['secrets'].items():
            if name in (spec.get('derived_from') or []) and other not in expanded:
                expanded.append(other)
    for name in expanded:
        spec = profile['secrets'][name]
        readers = set(spec['consumers'])
        for svc in spec.get('roll') or []:
            if svc in readers and svc not in order:
                order.append(svc)
        for svc in profile['start_order']:
            if svc in readers and svc not in order:
                order.append(svc)
    return order


# Values that leave a boolean fail-open switch off.
FALSE_WORDS = ('', 'false', '0', 'no', 'off')


def secret_variables(profile):
    """Every variable a secret is read through (``NAME``, never ``NAME_FILE``).

    None of them may ever appear in a container's environment: only their ``*_FILE``
    counterparts do.
    """
    names = set()
    for spec in profile['secrets'].values():
        names.update(spec.get('env') or [])
    for svc in profile['services'].values():
        for variables in svc['secrets'].values():
            names.update(variables)
    return names


def fail_open_hits(profile, env):
    """The contract's fail-open settings that ``env`` turns on, as ``[(name, shown)]``.

    ``shown`` never repeats a value that is only "set": ``'set (non-empty)'`` or
    ``'=<value>'`` for boolean switches.
    """
    hits = []
    for name, meaning in sorted((profile.get('fail_open_settings') or {}).items()):
        if name not in env or env[name] is None:
            continue
        value = str(env[name]).strip().lower()
        if meaning == 'any non-empty value':
            if value:
                hits.append((name, 'set (non-empty)'))
        elif value not in FALSE_WORDS:
            hits.append((name, '=%s' % env[name]))
    return hits


# What a registry override and a pinned digest may look like: they end up in generated files
# (compose.yaml, Quadlet units), so nothing else is let through.
REGISTRY_RE = re.compile(r'\A[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?(?::[0-9]{1,5})?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*/?\Z')
DIGEST_RE = re.compile(r'\Asha256:[0-9a-f]{64}\Z')


def image_reference(profile, service, registry=None, release=None, digests=None):
    """The image reference of ``service`` in the resolved ``profile``.

    ``registry`` overrides the profile's default registry (``''``: none), ``release`` its
    default release, and ``digests`` (``{image name: 'sha256:...'}``) pins images.
    """
    if service not in profile['services']:
        raise ContractError('profile %s has no service %s' % (profile['name'], service))
    name = profile['services'][service]['image']
    registry = profile['default_registry'] if registry is None else registry
    if registry and not REGISTRY_RE.match(registry):
        raise ContractError('caracal_registry %r is not a registry name (a host with an optional port and path, '
                            'for example registry.example.com:5000/caracal; lower case, no scheme, no spaces or '
                            'quotes)' % (registry,))
    if registry and not registry.endswith('/'):
        registry += '/'
    release = release or profile['default_release']
    if release not in profile['releases']:
        raise ContractError('release %s is not part of profile %s (known: %s)'
                            % (release, profile['name'], ', '.join(profile['releases'])))
    ref = '%s%s:%s' % (registry, name, profile['image_tag_format'].format(release=release))
    digest = (digests or {}).get(name)
    if digest:
        if not DIGEST_RE.match(str(digest)):
            raise ContractError('caracal_image_digests: the digest for image %s must be sha256: and 64 lower-case '
                                'hex digits, got %r' % (name, digest))
        ref += '@' + digest
    return ref


# The role a Postgres connection URL (template) logs in as.
_URL_LOGIN = re.compile(r'\Apostgres(?:ql)?://([A-Za-z_][A-Za-z0-9_]*)(?::[^@]*)?@')

# A mount target under ``secrets_mount``: one plain file name.
_SECRET_TARGET = re.compile(r'\A[A-Za-z0-9][A-Za-z0-9._-]*\Z')


def login_roles(profile, secret):
    """The Postgres roles that log in with ``secret``: those of the URL templates derived from it."""
    roles = []
    for spec in profile['secrets'].values():
        if secret in (spec.get('derived_from') or []):
            match = _URL_LOGIN.match(spec.get('template') or '')
            if match and match.group(1) not in roles:
                roles.append(match.group(1))
    return roles


def _password_sync_problems(profile):
    problems = []
    sync = profile.get('password_sync') or {}
    for sname, spec in sync.items():
        if sname not in profile['secrets']:
            problems.append('password sync names unknown secret %s' % sname)
            continue
        if spec.get('service') not in profile['secrets'][sname]['consumers']:
            problems.append('password sync of %s names %s, which does not read it' % (sname, spec.get('service')))
            continue
        method = spec.get('method')
        kind = profile['services'][spec['service']]['kind']
        if method not in PASSWORD_SYNC_METHODS:
            problems.append('password sync of %s has unknown method %r' % (sname, method))
        elif method == 'psql' and (kind != 'storage' or not spec.get('user') or not spec.get('superuser')):
            problems.append('password sync of %s by psql needs a storage service, a user and a superuser' % sname)
        elif method == 'job' and kind != 'job':
            problems.append('password sync of %s by a job names %s, which is not a one-shot job'
                            % (sname, spec['service']))
        if not login_roles(profile, sname) and not spec.get('superuser'):
            problems.append('password sync of %s: no role logs in with it' % sname)
    for sname in profile['secrets']:
        if login_roles(profile, sname) and sname not in sync:
            problems.append('secret %s is the password of Postgres roles %s but has no password sync'
                            % (sname, ', '.join(login_roles(profile, sname))))
    return problems


def _release_problems(profile):
    problems = []
    if not isinstance(profile.get('deployable'), bool):
        problems.append('deployable must be true or false, got %r' % (profile.get('deployable'),))
    try:
        fmt = re.compile(profile.get('release_format') or '')
    except (re.error, TypeError) as exc:
        return problems + ['release_format is not a regular expression: %s' % exc]
    if not profile.get('release_format'):
        problems.append('the profile has no release_format')
    if not profile.get('releases'):
        problems.append('the profile has no release')
    for release in profile.get('releases') or []:
        if not fmt.match(str(release)):
            problems.append('release %s does not have the release format of the profile' % release)
    if profile.get('default_release') not in (profile.get('releases') or []):
        problems.append('default release %s is not one of its releases' % profile.get('default_release'))
    return problems


def _mount_problems(profile):
    """Secret mount targets, variables and host paths of each service."""
    problems = []
    services = profile['services']
    for svc_name, svc in services.items():
        by_target = {}
        for src, target in svc['secret_targets'].items():
            if not _SECRET_TARGET.match(str(target)):
                problems.append('service %s mounts %s as %r, which is not a file name' % (svc_name, src, target))
            if target != src and target in svc['secrets']:
                problems.append('service %s mounts %s as %s, which it also reads under that name'
                                % (svc_name, src, target))
            if target in by_target:
                problems.append('service %s mounts %s and %s as the same file %s'
                                % (svc_name, by_target[target], src, target))
            by_target[target] = src
        by_var = {}
        for src, variables in svc['secrets'].items():
            for var in variables:
                if var in by_var:
                    problems.append('service %s reads %s and %s through the same variable %s'
                                    % (svc_name, by_var[var], src, var))
                by_var[var] = src
    reserved = (profile['secrets_mount'], profile['control_gate_mount'])
    seen = {}
    for name, spec in (profile.get('host_paths') or {}).items():
        if spec.get('service') not in services:
            problems.append('host path %s names unknown service %s' % (name, spec.get('service')))
        if spec.get('base') not in HOST_PATH_BASES:
            problems.append('host path %s has unknown base %r' % (name, spec.get('base')))
        source = str(spec.get('source') or '')
        if not source or source.startswith('/') or '..' in source.split('/'):
            problems.append('host path %s needs a relative source below its base, got %r' % (name, source))
        target = str(spec.get('target') or '')
        if not target.startswith('/') or target.rstrip('/') in reserved:
            problems.append('host path %s needs an absolute target of its own, got %r' % (name, target))
        if spec.get('read_only') is not True:
            problems.append('host path %s is not mounted read-only' % name)
        key = (spec.get('service'), target)
        if key in seen:
            problems.append('host paths %s and %s share the target %s' % (seen[key], name, target))
        seen[key] = name
    return problems


def _observability_problems(profile):
    """mode_services, metrics and audit streams name what the profile has."""
    problems = []
    services = profile['services']
    for svc in profile.get('mode_services') or []:
        if svc not in services:
            problems.append('mode services name unknown service %s' % svc)
    metrics = profile.get('metrics') or {}
    bearer = metrics.get('bearer_secret')
    if bearer not in profile['secrets']:
        problems.append('metrics bearer names unknown secret %s' % bearer)
    else:
        for svc in metrics.get('services') or []:
            if svc not in services or bearer not in services[svc]['secrets']:
                problems.append('metrics service %s does not read the bearer %s' % (svc, bearer))
    streams = profile.get('audit_streams')
    if streams is not None:
        for stream in (profile['audit_stream'], profile['audit_dlq']):
            if stream not in streams:
                problems.append('audit streams do not list %s' % stream)
        for stream, spec in streams.items():
            if not isinstance(spec.get('groups'), list):
                problems.append('audit stream %s has no list of groups' % stream)
    return problems


def check_profile(name):
    """Return a list of consistency problems for profile ``name`` (empty when sound)."""
    problems = []
    try:
        profile = get_profile(name)
    except ContractError as exc:
        return [str(exc)]
    services = profile['services']
    for sname, spec in profile['secrets'].items():
        if spec.get('format') not in FORMATS:
            problems.append('secret %s has unknown format %r' % (sname, spec.get('format')))
        if spec.get('kind') not in KINDS:
            problems.append('secret %s has unknown kind %r' % (sname, spec.get('kind')))
        if spec.get('unmounted'):
            if spec['consumers']:
                problems.append('secret %s is marked as mounted by no service, but %s mount it'
                                % (sname, ', '.join(spec['consumers'])))
        elif not spec['consumers']:
            problems.append('secret %s has no consumer (mark a secret only tooling reads with unmounted: '
                            'its purpose)' % sname)
        if not spec.get('env'):
            problems.append('secret %s has no environment variable' % sname)
        for svc in spec.get('roll') or []:
            if svc not in services:
                problems.append('secret %s rolls unknown service %s' % (sname, svc))
            elif svc not in spec['consumers']:
                problems.append('secret %s rolls %s, which does not read it' % (sname, svc))
        missing = [svc for svc in spec['consumers'] if svc not in (spec.get('roll') or [])
                   and services[svc]['kind'] != 'job']
        if missing:
            problems.append('secret %s: consumers %s are missing from its roll order' % (sname, ', '.join(missing)))
        if spec.get('format') == 'hex':
            if not isinstance(spec.get('bytes'), int) or spec['bytes'] < spec.get('min_bytes', 0):
                problems.append('secret %s generates fewer bytes than it requires' % sname)
            if spec.get('max_bytes') is not None and spec['bytes'] > spec['max_bytes']:
                problems.append('secret %s generates more bytes than it allows' % sname)
        if spec.get('format') == 'derived':
            for src in spec.get('derived_from') or []:
                if src not in profile['secrets']:
                    problems.append('secret %s derives from unknown secret %s' % (sname, src))
                elif '{%s}' % src not in spec.get('template', ''):
                    problems.append('secret %s template does not use %s' % (sname, src))
    publishes = {}
    for svc_name, svc in services.items():
        if svc.get('kind') not in SERVICE_KINDS:
            problems.append('service %s has unknown kind %r' % (svc_name, svc.get('kind')))
        for dep in svc.get('depends_on') or {}:
            if dep not in services:
                problems.append('service %s depends on unknown service %s' % (svc_name, dep))
        pub = svc.get('publish')
        if pub:
            host = pub.rsplit(':', 1)[0]
            if host not in ('127.0.0.1', '[::1]'):
                problems.append('service %s publishes beyond loopback (%s)' % (svc_name, pub))
            if pub in publishes:
                problems.append('services %s and %s publish the same address %s' % (publishes[pub], svc_name, pub))
            publishes[pub] = svc_name
        if svc.get('kind') == 'app':
            rt = svc['runtime']
            if rt.get('user') != '%d:%d' % (profile['uid'], profile['gid']) or not rt.get('read_only') \
                    or rt.get('cap_add') or 'ALL' not in rt.get('cap_drop', []):
                problems.append('app service %s is not non-root, read-only and capability-free' % svc_name)
    for image in list(profile['healthcheck'].get('image_paths') or {}) + list(profile['healthcheck'].get('reason_keys') or {}):
        if image not in set(svc.get('image') for svc in services.values()):
            problems.append('healthcheck names unknown image %s' % image)
    for svc in profile['replay_state']['services']:
        if svc not in services:
            problems.append('replay state names unknown service %s' % svc)
    return (problems + _release_problems(profile) + _mount_problems(profile) + _observability_problems(profile)
            + _password_sync_problems(profile))
