# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A backend-neutral model of the Caracal stack, built from the release contract.

The deployment backends (Docker Compose, Podman Quadlet) render this model; none of them
restates the topology. ``build_stack(profile, settings, images)`` takes the resolved
contract profile (``_contract.get_profile``), the deployment settings and the image
reference of every service (computed by the caller with the contract's image logic) and
returns plain data::

    {
      'version': 1, 'profile': '2026.07', 'release': '2026.07.03-rc.1', 'mode': 'stable',
      'project': 'caracal',
      'service_names': [...],          # start order, incl. the replay init job
      'restartable': [...],            # services a secret rotation may restart
      'services': [                    # start order
        {'name', 'kind',               # storage | job | app | init
         'image', 'entrypoint', 'command',          # lists or None (image default)
         'user', 'group_add',                       # str or None, [str]
         'read_only', 'cap_drop', 'cap_add', 'no_new_privileges', 'init',
         'tmpfs',                                   # {path: 'opt=v,...'}
         'limits',                                  # {'cpus': '1', 'memory': '512m', 'pids': 256}
         'environment',                             # {NAME: value}, never a secret value
         'secrets',                                 # {'source', 'target', 'files', 'variables'} or None
         'mounts',                                  # [{'type': volume|bind, 'source', 'target', 'read_only'}]
         'publishes',                               # [{'host_ip', 'host_port', 'container_port', 'protocol'}]
         'networks', 'network_aliases',
         'depends_on',                              # {service: healthy | completed}
         'healthcheck',                             # {'test', 'interval', ...} or None
         'oneshot', 'restart',                      # restart: always | no
         'stop_timeout'},                           # seconds
      ],
      'networks': {name: {'internal': bool, 'purpose': str}},
      'volumes': {name: {'services': [...], 'purpose': str}},
      'control': {'dir', 'mount', 'gate_file', 'enabled'},
      'replay': {'path', 'mode', 'owner', 'services', 'init_service'},
    }

``build_stack`` runs named steps, each of which can be called on its own:
``validated_settings`` (the checked settings of this host: the plan the other steps read),
``stack_networks``, ``service_model`` for each service of the host (with
``service_environment``), ``init_jobs`` (the replay init job), ``stack_volumes`` and
``check_unique_publishes``.

Durations are strings with a unit (``10s``), memory sizes strings (``512m``), CPU counts
strings (``1.5``). Nothing here is specific to one backend.

Networks: the contract's private ``data`` network is split per storage service
(``data-postgres``, ``data-redis``), each internal (no route out), so Postgres and Redis
are reachable only from the services that read a secret of theirs (a password or a URL
derived from it). ``app`` is the network the application services talk and publish on.

This is a private module_utils (leading underscore): its API may change between minor
releases of the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import posixpath
import re

from ansible_collections.caracal.hardened.plugins.module_utils._contract import fail_open_hits, secret_variables

STACK_VERSION = 1

# The one-shot job that prepares the replay state of sts and gateway (contract
# ``replay_state``); it runs before them on every start and changes nothing once done.
REPLAY_INIT = 'replayInit'

# Limits per service kind; every value can be overridden per kind or per service.
DEFAULT_LIMITS = {
    'storage': {'cpus': '2', 'memory': '1g', 'pids': 512},
    'app': {'cpus': '1', 'memory': '512m', 'pids': 256},
    'job': {'cpus': '0.5', 'memory': '256m', 'pids': 128},
    'init': {'cpus': '0.25', 'memory': '64m', 'pids': 32},
}

DEFAULT_HEALTHCHECK = {
    'interval': '10s',
    'timeout': '5s',
    'retries': 6,
    'start_period': '60s',
    'start_interval': '2s',
}

STOP_TIMEOUTS = {'storage': 60, 'app': 20, 'job': 10, 'init': 10}

DB_SSLMODES = ('disable', 'require', 'verify-ca', 'verify-full')

DEFAULT_SETTINGS = {
    'project': 'caracal',
    'mode': None,                   # None: the profile's default mode (stable)
    'allow_nonproduction': False,
    'web_url': None,
    'issuer_url': None,
    'upstream_allowlist': [],
    'control_enabled': False,
    'home': '/opt/caracal',
    'secrets_views_dir': None,      # None: <home>/secrets/services
    'control_dir': None,            # None: <home>/control
    'services': None,               # None: every service of the profile
    'limits': {},                   # {service: {cpus, memory, pids}}
    'kind_limits': {},              # {kind: {cpus, memory, pids}}
    'healthcheck': {},              # overrides of DEFAULT_HEALTHCHECK
    'db_sslmode': 'disable',
    'extra_env': {},                # {service: {NAME: value}}: non-secret settings only
    'publish': {},                  # {service: 'ip:port' | True | False}
    'redis_uid': 999,               # uid/gid of the redis user inside the caracal-redis image
    'release': None,
}

_ENV_NAME = re.compile(r'^[A-Z_][A-Z0-9_]*$')
_CONTROL_CHARS = re.compile(r'[\x00-\x1f\x7f]')
_SECRETISH_NAME = re.compile(r'(TOKEN|SECRET|PASSWORD|PASSWD|KEK|HMAC|_KEY|BEARER|CREDENTIALS?)$')
_MEMORY = re.compile(r'^[1-9][0-9]*[bkmg]?$')
_CPUS = re.compile(r'^(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)$')
_DURATION = re.compile(r'^[1-9][0-9]*(ms|s|m|h)$')
_HOST = re.compile(r'^(?=.{1,253}$)(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*(:[0-9]{1,5})?$')
# The role a Postgres connection URL (template) logs in as.
_URL_LOGIN = re.compile(r'^postgres(?:ql)?://([A-Za-z_][A-Za-z0-9_]*)(?::[^@]*)?@')
_URL = re.compile(r'^(?P<scheme>https?)://(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)(:[0-9]{1,5})?(/[^\s?#]*)?$')


class StackError(ValueError):
    """Raised when the settings would produce an unsafe or inconsistent deployment."""


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def _merged_settings(settings):
    merged = copy.deepcopy(DEFAULT_SETTINGS)
    unknown = sorted(set(settings or {}) - set(DEFAULT_SETTINGS))
    if unknown:
        raise StackError('unknown stack settings: %s (known: %s)' % (', '.join(unknown), ', '.join(sorted(DEFAULT_SETTINGS))))
    for key, value in (settings or {}).items():
        if value is not None:
            merged[key] = copy.deepcopy(value)
    home = str(merged['home']).rstrip('/') or '/'
    merged['home'] = home
    if not merged['secrets_views_dir']:
        merged['secrets_views_dir'] = posixpath.join(home, 'secrets', 'services')
    if not merged['control_dir']:
        merged['control_dir'] = posixpath.join(home, 'control')
    for key in ('home', 'secrets_views_dir', 'control_dir'):
        if not posixpath.isabs(str(merged[key])):
            raise StackError('%s must be an absolute path, got %r' % (key, merged[key]))
    if not re.match(r'^[a-z0-9][a-z0-9_-]*$', str(merged['project'])):
        raise StackError('project must be lower-case letters, digits, "-" or "_", got %r' % (merged['project'],))
    return merged


def parse_publish(value):
    """``'127.0.0.1:8080'`` or ``'[::1]:8080'`` -> (host_ip, host_port); loopback only."""
    text = str(value).strip()
    match = re.match(r'^(?:\[(?P<v6>[0-9A-Fa-f:]+)\]|(?P<v4>[0-9.]+)):(?P<port>[0-9]{1,5})$', text)
    if not match:
        raise StackError('publish address %r is not ip:port (for example 127.0.0.1:8080 or [::1]:8080)' % text)
    port = int(match.group('port'))
    if not 0 < port < 65536:
        raise StackError('publish address %r has an invalid port' % text)
    if match.group('v6') is not None:
        host = match.group('v6')
        if host not in ('::1', '0:0:0:0:0:0:0:1'):
            raise StackError('publish address %r is not loopback: services publish on loopback only; '
                             'put a reverse proxy with TLS in front instead' % text)
        return '::1', port
    host = match.group('v4')
    parts = host.split('.')
    if len(parts) != 4 or any(not p.isdigit() or int(p) > 255 for p in parts) or parts[0] != '127':
        raise StackError('publish address %r is not loopback: services publish on loopback only; '
                         'put a reverse proxy with TLS in front instead' % text)
    return host, port


def _check_limits(service, limits):
    for key in limits:
        if key not in ('cpus', 'memory', 'pids'):
            raise StackError('service %s: unknown limit %r (known: cpus, memory, pids)' % (service, key))
    cpus = str(limits['cpus'])
    if not _CPUS.match(cpus) or float(cpus) <= 0:
        raise StackError('service %s: cpus must be a positive number, got %r' % (service, limits['cpus']))
    memory = str(limits['memory']).lower()
    if not _MEMORY.match(memory):
        raise StackError('service %s: memory must be a size like 512m or 1g, got %r' % (service, limits['memory']))
    try:
        pids = int(limits['pids'])
    except (TypeError, ValueError):
        pids = 0
    if pids < 1 or str(limits['pids']).strip() != str(pids):
        raise StackError('service %s: pids must be a positive integer, got %r' % (service, limits['pids']))
    return {'cpus': cpus, 'memory': memory, 'pids': pids}


def _limits_for(service, kind, settings):
    limits = dict(DEFAULT_LIMITS[kind])
    limits.update(settings['kind_limits'].get(kind) or {})
    limits.update(settings['limits'].get(service) or {})
    return _check_limits(service, limits)


def _healthcheck(profile, settings):
    spec = dict(DEFAULT_HEALTHCHECK)
    unknown = set(settings['healthcheck']) - set(DEFAULT_HEALTHCHECK)
    if unknown:
        raise StackError('unknown healthcheck settings: %s' % ', '.join(sorted(unknown)))
    spec.update(settings['healthcheck'])
    for key in ('interval', 'timeout', 'start_period', 'start_interval'):
        if not _DURATION.match(str(spec[key])):
            raise StackError('healthcheck %s must be a duration like 10s, got %r' % (key, spec[key]))
        spec[key] = str(spec[key])
    try:
        spec['retries'] = int(spec['retries'])
    except (TypeError, ValueError):
        spec['retries'] = 0
    if spec['retries'] < 1:
        raise StackError('healthcheck retries must be a positive integer')
    spec['test'] = list(profile['healthcheck']['command'])
    return spec


def _check_url(name, value, https_only):
    text = '' if value is None else str(value)
    match = _URL.match(text)
    if not match:
        raise StackError('%s must be an absolute http(s) URL without query or credentials, got %r' % (name, text))
    if https_only and match.group('scheme') != 'https':
        raise StackError('%s must be an https URL in published modes (rc, stable), got %r' % (name, text))
    return text.rstrip('/') if name == 'web_url' else text


def _allowlist(value):
    if value is None:
        return ''
    items = [h.strip() for h in value.split(',')] if isinstance(value, str) else [str(h).strip() for h in value]
    items = [h for h in items if h]
    for host in items:
        if not _HOST.match(host):
            raise StackError('upstream allowlist entry %r is not a host name (optionally host:port)' % host)
    return ','.join(items)


def check_fail_open(profile, env, where):
    """Refuse the contract's fail-open switches (whatever the mode)."""
    hits = fail_open_hits(profile, env)
    if hits:
        raise StackError('%s: %s is a fail-open setting and is refused'
                         % (where, ', '.join('%s %s' % hit for hit in hits)))


def storage_needs(profile):
    """{storage service: set of services that need it}, derived from the secrets they read.

    A service needs a storage service when it reads one of that service's secrets or a
    secret derived from one (databaseUrl from postgresPassword).
    """
    services = profile['services']
    needs = {}
    for name, svc in services.items():
        if svc['kind'] != 'storage':
            continue
        owned = set(svc['secrets'])
        for sname, spec in profile['secrets'].items():
            if set(spec.get('derived_from') or []) & owned:
                owned.add(sname)
        needs[name] = set(other for other, osvc in services.items()
                          if other != name and set(osvc['secrets']) & owned)
    return needs


# ---------------------------------------------------------------------------
# the settings of this host's deployment
# ---------------------------------------------------------------------------

def _mode(profile, settings):
    """``(mode, published)``; a mode that is not for a deployment needs allow_nonproduction."""
    mode = settings['mode'] or profile['default_mode']
    if mode not in profile['modes']:
        raise StackError('mode %r is not one of %s' % (mode, ', '.join(profile['modes'])))
    published = mode in profile['published_modes']
    if not published and not settings['allow_nonproduction']:
        raise StackError('mode %r is for a laptop, never a deployment: it skips the key checks and allows '
                         'fail-open settings. Use stable (or rc for staging); set allow_nonproduction '
                         '(caracal_allow_nonproduction: true) only for a throw-away test host.' % mode)
    return mode, published


def _host_services(profile, settings):
    """The services on this host, in start order; their dependencies must be here too."""
    services = profile['services']
    order = list(profile['start_order'])
    host_services = order if settings['services'] is None else [s for s in order if s in settings['services']]
    unknown = sorted(set(settings['services'] or []) - set(order))
    if unknown:
        raise StackError('unknown services %s (profile %s has: %s)' % (', '.join(unknown), profile['name'], ', '.join(order)))
    if not host_services:
        raise StackError('no service to deploy')
    for svc in host_services:
        missing = [dep for dep in services[svc].get('depends_on') or {} if dep not in host_services]
        if missing:
            raise StackError('service %s depends on %s, which is not deployed on this host' % (svc, ', '.join(missing)))
    return host_services


def _check_targets(settings, host_services):
    """The per-service settings name deployed services, ``kind_limits`` known kinds."""
    for key in ('limits', 'extra_env', 'publish'):
        stray = sorted(set(settings[key]) - set(host_services))
        if stray:
            raise StackError('%s names services that are not deployed: %s' % (key, ', '.join(stray)))
    stray = sorted(set(settings['kind_limits']) - set(DEFAULT_LIMITS))
    if stray:
        raise StackError('kind_limits names unknown kinds: %s (known: %s)' % (', '.join(stray), ', '.join(sorted(DEFAULT_LIMITS))))


def _redis_uid(settings):
    try:
        redis_uid = int(settings['redis_uid'])
    except (TypeError, ValueError):
        redis_uid = -1
    if redis_uid < 0:
        raise StackError('redis_uid must be a non-negative integer, got %r' % (settings['redis_uid'],))
    return redis_uid


def validated_settings(profile, settings=None, images=None):
    """The checked settings of this host's deployment: what the other steps build from.

    Returns ``{'settings'`` (merged with ``DEFAULT_SETTINGS``), ``'mode'``, ``'published'``,
    ``'host_services'`` (start order), ``'images'``, ``'placeholders'`` (of the contract's
    environment templates), ``'redis_uid'``, ``'healthcheck'``, ``'replay_services'`` (those
    of the contract's replay state that run here)``}``.
    """
    merged = _merged_settings(settings)
    mode, published = _mode(profile, merged)
    host_services = _host_services(profile, merged)
    _check_targets(merged, host_services)
    images = dict(images or {})
    missing_images = [s for s in host_services if not images.get(s)]
    if missing_images:
        raise StackError('no image reference for %s' % ', '.join(missing_images))
    placeholders = {
        'web_url': _check_url('web_url', merged['web_url'], published),
        'issuer_url': _check_url('issuer_url', merged['issuer_url'], published),
        'upstream_allowlist': _allowlist(merged['upstream_allowlist']),
    }
    if merged['db_sslmode'] not in DB_SSLMODES:
        raise StackError('db_sslmode must be one of %s, got %r' % (', '.join(DB_SSLMODES), merged['db_sslmode']))
    redis_uid = _redis_uid(merged)
    replay = profile.get('replay_state') or {}
    return {
        'settings': merged,
        'mode': mode,
        'published': published,
        'host_services': host_services,
        'images': images,
        'placeholders': placeholders,
        'redis_uid': redis_uid,
        'healthcheck': _healthcheck(profile, merged),
        'replay_services': [s for s in replay.get('services') or [] if s in host_services],
    }


# ---------------------------------------------------------------------------
# networks and volumes
# ---------------------------------------------------------------------------

def stack_networks(profile, host_services):
    """The networks the services share: one internal network per storage service (with only
    the services that read its secrets) and ``app``, when a service of this host is on it."""
    services = profile['services']
    needs = storage_needs(profile)
    networks = {}
    for store in [s for s in host_services if s in needs]:
        networks['data-%s' % store] = {'internal': True,
                                       'purpose': 'private network of %s and the services that read its secrets' % store}
    if any('app' in (services[s].get('networks') or []) for s in host_services):
        networks['app'] = {'internal': False, 'purpose': 'application network (loopback publishes, upstream egress)'}
    return networks


def _service_networks(profile, plan, name, networks, publishes):
    """The networks of service ``name``, which ``networks`` gains when they are new to it.

    ``data`` becomes the storage networks the service needs; a service that publishes without
    a network that is not internal gets a network of its own to publish through.
    """
    svc = profile['services'][name]
    needs = storage_needs(profile)
    svc_networks = []
    for net in svc.get('networks') or []:
        if net != 'data':
            if net not in networks:
                networks[net] = {'internal': False, 'purpose': 'network %s of the release contract' % net}
            svc_networks.append(net)
        elif svc['kind'] == 'storage':
            svc_networks.append('data-%s' % name)
        else:
            svc_networks.extend('data-%s' % store for store in sorted(needs)
                                if store in plan['host_services'] and name in needs[store])
    if publishes and not any(not networks[n]['internal'] for n in svc_networks):
        net = 'publish-%s' % name
        networks[net] = {'internal': False, 'purpose': 'publishes %s on loopback; nothing else is attached' % name}
        svc_networks.append(net)
    return svc_networks


def stack_volumes(model_services):
    """``{volume: {'services', 'purpose'}}`` from the volume mounts, in the order of ``model_services``."""
    volumes = {}
    for svc in model_services:
        for mount in svc['mounts']:
            if mount['type'] == 'volume':
                volumes.setdefault(mount['source'], {'services': [], 'purpose': 'state of %s (%s)' % (svc['name'], mount['target'])})
                volumes[mount['source']]['services'].append(svc['name'])
    return volumes


# ---------------------------------------------------------------------------
# one service
# ---------------------------------------------------------------------------

def _secrets_view(profile, plan, name):
    """The read-only directory with only the secret files of service ``name`` (None: it reads none)."""
    secret_map = profile['services'][name]['secrets']
    if not secret_map:
        return None
    view = {
        'source': posixpath.join(plan['settings']['secrets_views_dir'], name),
        'target': profile['secrets_mount'],
        'files': sorted(secret_map),
        'variables': {},
    }
    for sname, variables in secret_map.items():
        for var in variables:
            view['variables']['%s_FILE' % var] = sname
    return view


def _managed_env(profile):
    """The variables the deployment sets (extra_env may not set them on any service)."""
    managed = set(['CARACAL_MODE', 'CARACAL_DB_SSLMODE'])
    for spec in profile['services'].values():
        managed.update(spec.get('env') or {})
    return managed


def _database_urls(profile):
    """The secrets that are Postgres connection URLs: their readers get CARACAL_DB_SSLMODE."""
    return set(n for n, s in profile['secrets'].items()
               if str(s.get('template') or '').startswith(('postgres://', 'postgresql://')))


def _add_extra_env(profile, name, extra, environment):
    """Add the ``extra_env`` of service ``name`` to ``environment``: non-secret settings only."""
    forbidden_env = secret_variables(profile)
    managed_env = _managed_env(profile)
    for key, value in extra.items():
        key = str(key)
        if not _ENV_NAME.match(key):
            raise StackError('service %s: %r is not an environment variable name' % (name, key))
        base = key[:-5] if key.endswith('_FILE') else key
        if base in forbidden_env:
            raise StackError('service %s: %s is a secret variable; secrets are delivered as files by the secrets '
                             'role, never through the environment' % (name, key))
        if key in environment or key in managed_env:
            raise StackError('service %s: %s is set by the deployment (use its own setting, not extra_env)' % (name, key))
        if _SECRETISH_NAME.search(key):
            raise StackError('service %s: %s looks like a secret; secret values never go into the environment '
                             '(deliver it as a file)' % (name, key))
        if isinstance(value, (dict, list)) or value is None:
            raise StackError('service %s: %s must be a string' % (name, key))
        # A line break or other control character would end the setting early in a unit
        # or environment file and could smuggle in settings of its own.
        if _CONTROL_CHARS.search(str(value)):
            raise StackError('service %s: %s contains a line break or another control character' % (name, key))
        environment[key] = str(value)


def service_environment(profile, plan, name, secrets_view):
    """The environment of service ``name``: ``*_FILE`` paths of its secrets, the mode, the
    contract's settings, its ``extra_env``; never a secret value, never a fail-open switch."""
    svc = profile['services'][name]
    environment = {}
    if secrets_view:
        for variable, sname in secrets_view['variables'].items():
            environment[variable] = posixpath.join(secrets_view['target'], sname)
    if svc['kind'] == 'app':
        environment['CARACAL_MODE'] = plan['mode']
    for key, value in (svc.get('env') or {}).items():
        environment[key] = str(value).format(**plan['placeholders'])
    if svc['kind'] == 'app' and any(s in _database_urls(profile) for s in svc['secrets']):
        environment['CARACAL_DB_SSLMODE'] = plan['settings']['db_sslmode']
    _add_extra_env(profile, name, plan['settings']['extra_env'].get(name) or {}, environment)
    check_fail_open(profile, environment, 'service %s' % name)
    return dict(sorted(environment.items()))


def _mounts(profile, plan, name, secrets_view):
    """Named volumes for state, the secrets view, the control gate."""
    svc = profile['services'][name]
    mounts = [{'type': 'volume', 'source': vol, 'target': path, 'read_only': False}
              for vol, path in (svc.get('volumes') or {}).items()]
    if secrets_view:
        mounts.append({'type': 'bind', 'source': secrets_view['source'], 'target': secrets_view['target'], 'read_only': True})
    if svc.get('control_gate'):
        mounts.append({'type': 'bind', 'source': plan['settings']['control_dir'],
                       'target': profile['control_gate_mount'], 'read_only': True})
    return mounts


def _tmpfs(svc, redis_uid):
    """The contract's tmpfs, plus the directory of redis's ready marker (its generated config
    holds the password: memory only, owned by the image's redis user)."""
    tmpfs = dict((svc.get('runtime') or {}).get('tmpfs') or {})
    if svc.get('ready_marker'):
        tmpfs[posixpath.dirname(svc['ready_marker'])] = 'uid=%d,gid=%d,mode=0700,size=1m' % (redis_uid, redis_uid)
    return tmpfs


def _publishes(svc, override):
    """Loopback publishes. Storage sits on internal networks only and is not published
    unless asked for (``override``: an address, True for the contract's, False for none)."""
    address = svc.get('publish')
    if svc['kind'] == 'storage' and override in (None, False):
        address = None
    elif override is False or override == '':
        address = None
    elif override not in (None, True):
        address = override
    if not (address and svc.get('port')):
        return []
    host_ip, host_port = parse_publish(address)
    return [{'host_ip': host_ip, 'host_port': host_port, 'container_port': int(svc['port']), 'protocol': 'tcp'}]


def _depends_on(svc, name, replay_services):
    depends_on = {}
    for dep, condition in (svc.get('depends_on') or {}).items():
        depends_on[dep] = 'completed' if condition == 'completed' else 'healthy'
    if name in replay_services:
        depends_on[REPLAY_INIT] = 'completed'
    return depends_on


def service_model(profile, plan, name, networks):
    """The model of service ``name`` (see the module docstring) from ``validated_settings``'s
    ``plan``; ``networks`` (``stack_networks``) gains the networks the service adds."""
    svc = profile['services'][name]
    kind = svc['kind']
    runtime = dict(svc.get('runtime') or {})
    secrets = _secrets_view(profile, plan, name)
    environment = service_environment(profile, plan, name, secrets)
    publishes = _publishes(svc, plan['settings']['publish'].get(name))
    # Services that do not run with the contract's gid read their secret files through
    # a supplementary group (files are 0440 root:<gid>).
    own_group = runtime.get('user') == '%d:%d' % (profile['uid'], profile['gid'])
    oneshot = kind == 'job'
    return {
        'name': name,
        'kind': kind,
        'image': plan['images'][name],
        'entrypoint': None,
        'command': list(svc['command']) if svc.get('command') else None,
        'user': runtime.get('user'),
        'group_add': [str(profile['gid'])] if svc['secrets'] and not own_group else [],
        'read_only': bool(runtime.get('read_only')),
        'cap_drop': list(runtime.get('cap_drop') or ['ALL']),
        'cap_add': list(runtime.get('cap_add') or []),
        'no_new_privileges': bool(runtime.get('no_new_privileges', True)),
        'init': bool(runtime.get('init')),
        'tmpfs': _tmpfs(svc, plan['redis_uid']),
        'limits': _limits_for(name, kind, plan['settings']),
        'environment': environment,
        'secrets': secrets,
        'mounts': _mounts(profile, plan, name, secrets),
        'publishes': publishes,
        'networks': _service_networks(profile, plan, name, networks, publishes),
        'network_aliases': [name],
        'depends_on': _depends_on(svc, name, plan['replay_services']),
        'healthcheck': None if oneshot else dict(plan['healthcheck']),
        'oneshot': oneshot,
        'restart': 'no' if oneshot else 'always',
        'stop_timeout': STOP_TIMEOUTS[kind],
    }


# ---------------------------------------------------------------------------
# the init jobs
# ---------------------------------------------------------------------------

def _replay_mounts(profile, replay_services):
    """The volume holding the replay state of each service, mounted at ``/replay/<service>``,
    and the directory to create on each."""
    path = profile['replay_state']['path']
    mounts = []
    paths = []
    for svc in replay_services:
        holder = None
        for vol, target in (profile['services'][svc].get('volumes') or {}).items():
            if path == target or path.startswith(target.rstrip('/') + '/'):
                holder = (vol, target)
        if holder is None:
            raise StackError('service %s has no volume holding its replay state %s' % (svc, path))
        vol, target = holder
        mount = '/replay/%s' % svc
        mounts.append({'type': 'volume', 'source': vol, 'target': mount, 'read_only': False})
        paths.append(posixpath.join(mount, posixpath.relpath(path, target)))
    return mounts, paths


def replay_init_job(profile, plan):
    """The replay init job (None when no service of the contract's replay state runs here).

    It creates <path> (mode, owned uid:gid) on each replay volume. It runs from the image of
    the contract's one-shot job (dbMigrate runs a shell script, so its image has a shell and
    coreutils; the application images are distroless), as root with only CHOWN and FOWNER,
    without network, and changes nothing once the directories are right.
    """
    if not plan['replay_services']:
        return None
    services = profile['services']
    jobs = [s for s in profile['start_order'] if services[s]['kind'] == 'job' and plan['images'].get(s)]
    if not jobs:
        raise StackError('the replay init job needs the image of a one-shot job of the contract (dbMigrate)')
    mounts, paths = _replay_mounts(profile, plan['replay_services'])
    return {
        'name': REPLAY_INIT,
        'kind': 'init',
        'image': plan['images'][jobs[0]],
        'entrypoint': ['/usr/bin/install'],
        'command': ['-d', '-o', str(profile['uid']), '-g', str(profile['gid']),
                    '-m', profile['replay_state']['mode']] + paths,
        'user': '0:0',
        'group_add': [],
        'read_only': True,
        'cap_drop': ['ALL'],
        'cap_add': ['CHOWN', 'FOWNER'],
        'no_new_privileges': True,
        'init': False,
        'tmpfs': {},
        'limits': _limits_for(REPLAY_INIT, 'init', plan['settings']),
        'environment': {},
        'secrets': None,
        'mounts': mounts,
        'publishes': [],
        'networks': [],
        'network_aliases': [],
        'depends_on': {},
        'healthcheck': None,
        'oneshot': True,
        'restart': 'no',
        'stop_timeout': STOP_TIMEOUTS['init'],
    }


def init_jobs(profile, plan):
    """The one-shot jobs that run before every other service: the replay init job, if any."""
    job = replay_init_job(profile, plan)
    return [job] if job else []


# ---------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------

def check_unique_publishes(model_services):
    """Refuse two services that publish the same address."""
    seen = {}
    for svc in model_services:
        for pub in svc['publishes']:
            key = (pub['host_ip'], pub['host_port'])
            if key in seen:
                raise StackError('services %s and %s publish the same address %s:%d' % (seen[key], svc['name'], key[0], key[1]))
            seen[key] = svc['name']


def build_stack(profile, settings=None, images=None):
    """The backend-neutral model of the stack (see the module docstring)."""
    if not profile.get('deployable', True):
        # Contract data only (1.0: per-service mount targets, host paths and role passwords are
        # not rendered yet): no model, so no backend can deploy it by accident.
        raise StackError('profile %s is described in the release contract, but this release of caracal.hardened '
                         'cannot deploy it yet (see docs/contract.md)' % profile['name'])
    plan = validated_settings(profile, settings, images)
    networks = stack_networks(profile, plan['host_services'])
    services = [service_model(profile, plan, name, networks) for name in plan['host_services']]
    inits = init_jobs(profile, plan)
    volumes = stack_volumes(services + inits)
    model_services = inits + services
    check_unique_publishes(model_services)
    replay = profile.get('replay_state') or {}
    return {
        'version': STACK_VERSION,
        'profile': profile['name'],
        'release': plan['settings']['release'] or profile['default_release'],
        'mode': plan['mode'],
        'project': plan['settings']['project'],
        'service_names': [s['name'] for s in model_services],
        'restartable': [s['name'] for s in model_services if s['kind'] != 'init'],
        'services': model_services,
        'networks': networks,
        'volumes': volumes,
        'control': {
            'dir': plan['settings']['control_dir'],
            'mount': profile['control_gate_mount'],
            'gate_file': profile['control_gate_file'],
            'enabled': bool(plan['settings']['control_enabled']),
            'services': [s for s in plan['host_services'] if profile['services'][s].get('control_gate')],
        },
        'replay': {
            'path': replay.get('path'),
            'mode': replay.get('mode'),
            'owner': '%d:%d' % (profile['uid'], profile['gid']),
            'services': plan['replay_services'],
            'init_service': REPLAY_INIT if inits else None,
        },
        'password_sync': _password_sync(profile, model_services),
    }


def _password_sync(profile, model_services):
    """Which datastore roles log in with a password the datastore keeps, and how to reach it.

    Postgres keeps its roles' passwords in its data directory: a rotated ``postgresPassword``
    must be set on every role the contract's URL templates log in as (and on the superuser
    initdb created) before anything restarts with the new URL files. The contract's
    ``password_sync`` names the secret, the service and the users; the sync is in the model
    when that service runs here and reads the secret.
    ``caracal.hardened.datastore_credentials`` does it, with SCRAM verifiers computed on the
    host and fed on standard input to ``psql`` run inside the postgres container as the
    ``postgres`` user (local peer authentication): the password never passes through
    Ansible, a command line, the environment or a statement. Each backend prefixes the exec
    with its own (``docker compose exec``, ``podman exec``).
    """
    on_host = dict((s['name'], s) for s in model_services)
    sync = {}
    for secret, spec in (profile.get('password_sync') or {}).items():
        if spec.get('method', 'psql') != 'psql':
            continue  # a one-shot job of the contract sets it on every run: re-running it is the sync
        holder = on_host.get(spec['service'])
        if not (holder and holder['secrets'] and secret in holder['secrets']['files']):
            continue
        roles = []
        for derived in profile['secrets'].values():
            if secret not in (derived.get('derived_from') or []):
                continue
            match = _URL_LOGIN.match(derived.get('template') or '')
            if match and match.group(1) not in roles:
                roles.append(match.group(1))
        if spec['superuser'] not in roles:
            roles.append(spec['superuser'])
        sync[secret] = {'service': spec['service'], 'user': spec['user'], 'roles': roles}
    return sync


def restart_plan(model, requested):
    """``requested`` services (roll order kept, duplicates dropped) that run on this host."""
    plan = []
    for name in requested or []:
        if name in model['restartable'] and name not in plan:
            plan.append(name)
    return plan
