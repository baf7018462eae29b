# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared helpers of the caracal-postgres test image (entrypoint and caracal-migrate).

Names (role, databases, host, port, secret variables, volume) come from the collection's
contract, copied into the image at build time; nothing here restates them."""

import base64
import hashlib
import hmac
import os
import sys
from urllib.parse import urlsplit

LIB = '/usr/local/lib/caracal-postgres'
if LIB not in sys.path:
    sys.path.insert(0, LIB)

import _contract  # noqa: E402

PGBIN = '/usr/lib/postgresql/current/bin'
MIGRATION_TABLE = 'caracal_migrations'
TRAILING_WS = ' \t\r\n\v\f'


class Failure(Exception):
    """A fatal, clearly worded problem."""


def profile():
    return _contract.get_profile(os.environ.get('CARACAL_IMAGE_PROFILE') or None)


def database_targets(prof):
    """[(user, host, port, dbname)] of every URL derived from postgresPassword."""
    out = []
    for spec in prof['secrets'].values():
        if spec.get('kind') != 'url' or 'postgresPassword' not in (spec.get('derived_from') or []):
            continue
        parts = urlsplit(spec['template'])
        out.append((parts.username, parts.hostname, parts.port or prof['services']['postgres']['port'],
                    parts.path.lstrip('/')))
    if not out:
        raise Failure('the contract derives no database URL from postgresPassword')
    return out


def read_secret(var, who):
    """Resolve ``var`` the way Caracal does (``NAME`` wins, else ``NAME_FILE``, trailing
    whitespace trimmed); refuse when missing, unreadable or empty."""
    if var in os.environ:
        raise Failure('%s: %s must not be set in the environment; mount the secret and set %s_FILE'
                      % (who, var, var))
    fvar = var + '_FILE'
    path = os.environ.get(fvar, '')
    if not path:
        raise Failure('%s: %s is not set' % (who, fvar))
    try:
        with open(path, 'rb') as handle:
            data = handle.read(65536)
    except OSError as exc:
        raise Failure('%s: cannot read %s (%s) as uid %d, groups %s: %s' % (
            who, fvar, path, os.getuid(), ','.join(str(g) for g in os.getgroups()),
            exc.strerror or exc))
    try:
        value = data.decode('utf-8').rstrip(TRAILING_WS)
    except UnicodeDecodeError:
        raise Failure('%s: %s (%s) is not UTF-8 text' % (who, fvar, path))
    if not value:
        raise Failure('%s: %s (%s) is empty' % (who, fvar, path))
    if '\n' in value or '\r' in value or '\0' in value:
        raise Failure('%s: %s (%s) holds more than one line' % (who, fvar, path))
    return value


def scram_verifier(password, iterations=4096):
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password`` (RFC 5802/7677).

    Sending the verifier instead of the password keeps the plain value out of the
    server's statement log even when a statement fails."""
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac('sha256', password.encode('utf-8'), salt, iterations)
    client_key = hmac.new(salted, b'Client Key', 'sha256').digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b'Server Key', 'sha256').digest()

    def b64(raw):
        return base64.b64encode(raw).decode('ascii')
    return 'SCRAM-SHA-256$%d:%s$%s:%s' % (iterations, b64(salt), b64(stored_key), b64(server_key))


def sql_literal(text):
    return "'" + text.replace("'", "''") + "'"


def sql_ident(text):
    return '"' + text.replace('"', '""') + '"'


def pgpass_field(text):
    return text.replace('\\', '\\\\').replace(':', '\\:')
