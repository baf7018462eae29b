# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Secret rules for Caracal: validation, generation, fingerprints, ages and evidence.

Pure logic, no Ansible and no file system: the ``caracal.hardened.secret_files``
module does the I/O.  What a secret must look like (format, sizes, weak-key check,
template) comes from the secret's spec in the release contract (``_contract.py``);
this file only knows how to apply a spec, never what a given secret's spec is.

This is a private module_utils (leading underscore): its API may change between
minor releases of the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import hashlib
import re
import secrets
import string

# Caracal trims trailing whitespace from a *_FILE value before using it.
TRAILING_WHITESPACE = ' \t\r\n\x0b\x0c'

# The fingerprint of a value: a truncated, domain-separated SHA-256.  A test stand-in
# image computes exactly the same function to prove which value a running process
# holds, so this must never change (a new scheme gets a new domain, ``/v2``).
FINGERPRINT_DOMAIN = b'caracal.hardened/fingerprint/v1\0'
FINGERPRINT_LENGTH = 16

# Evidence vocabulary.
ACTIONS = ('generated', 'rotated', 'adopted', 'restored', 'retired', 'derived')
REASONS = ('initial', 'age', 'forced', 'exposure', 'rollback', 'window-expired', 'source-changed')
EVIDENCE_FIELDS = ('ts', 'actor', 'action', 'reason', 'secret', 'profile', 'old_fingerprint',
                   'new_fingerprint', 'rollback_until', 'location')

_HEX = re.compile(r'^[0-9a-fA-F]*$')
_UTC = datetime.timezone.utc
TS_FORMAT = '%Y-%m-%dT%H:%M:%SZ'
STAMP_FORMAT = '%Y%m%dT%H%M%SZ'


class SecretValidationError(ValueError):
    """A value breaks one of Caracal's rules.  ``secret`` and ``rule`` name both."""

    def __init__(self, secret, rule, detail):
        self.secret = secret
        self.rule = rule
        self.detail = detail
        super(SecretValidationError, self).__init__('secret %s violates rule %s: %s' % (secret, rule, detail))


# ---------------------------------------------------------------- validation

def trim(value):
    """The value as Caracal uses it: trailing whitespace removed."""
    return value.rstrip(TRAILING_WHITESPACE)


def is_destructive(spec):
    """Whether replacing the secret destroys data (the 2026.07 zone KEK)."""
    return spec.get('rotation') == 'destructive'


def is_derived(spec):
    return spec.get('format') == 'derived'


def _weakness(data):
    """The weak-key rule ``data`` (bytes) breaks, with its explanation, or ``None``."""
    values = bytearray(data)
    pairs = list(zip(values, values[1:]))
    if not any(values):
        return 'weak-all-zeros', 'every byte is zero'
    if len(set(values)) == 1:
        return 'weak-repeated-byte', 'one byte repeated'
    if all(b == (a + 1) % 256 for a, b in pairs):
        return 'weak-ascending', 'an ascending byte sequence (each byte is the previous plus one)'
    if all(b == (a - 1) % 256 for a, b in pairs):
        return 'weak-descending', 'a descending byte sequence (each byte is the previous minus one)'
    if all(b == values[i % 2] for i, b in enumerate(values)):
        return 'weak-alternating', 'a two-byte alternating pattern'
    return None


def _template_pattern(template):
    """A regular expression matching ``template`` with every field a hex string."""
    parts = []
    for literal, field, _spec, _conv in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if field is not None:
            parts.append('[0-9a-fA-F]+')
    return re.compile('^%s$' % ''.join(parts))


def validate(name, value, spec):
    """Check ``value`` for secret ``name`` against ``spec`` exactly as Caracal does.

    Returns the value as Caracal reads it (trailing whitespace trimmed).  Raises
    ``SecretValidationError`` naming the secret and the rule otherwise.  Rules, in
    order: ``type``, ``not-empty``, then for hex secrets ``hex``, ``even-length``,
    ``min-bytes``, ``max-bytes`` and, when ``spec['weak_check']``, the weak-key rules
    ``weak-all-zeros``, ``weak-repeated-byte``, ``weak-ascending``,
    ``weak-descending``, ``weak-alternating``; for derived secrets ``template``.
    """
    if not isinstance(value, str):
        raise SecretValidationError(name, 'type', 'value must be a string, got %s (quote it)' % type(value).__name__)
    value = trim(value)
    if not value:
        raise SecretValidationError(name, 'not-empty', 'value is empty after trimming trailing whitespace')
    if is_derived(spec):
        if not _template_pattern(spec['template']).match(value):
            raise SecretValidationError(name, 'template', 'value does not have the form of its template')
        return value
    if not _HEX.match(value):
        raise SecretValidationError(name, 'hex', 'value must contain hexadecimal digits only')
    if len(value) % 2:
        raise SecretValidationError(name, 'even-length', 'value has an odd number of hex digits (%d)' % len(value))
    size = len(value) // 2
    min_bytes = spec.get('min_bytes') or 0
    max_bytes = spec.get('max_bytes')
    if size < min_bytes:
        raise SecretValidationError(name, 'min-bytes', 'value has %d bytes, at least %d required' % (size, min_bytes))
    if max_bytes is not None and size > max_bytes:
        raise SecretValidationError(name, 'max-bytes', 'value has %d bytes, at most %d allowed' % (size, max_bytes))
    if spec.get('weak_check'):
        weak = _weakness(bytearray.fromhex(value))
        if weak:
            raise SecretValidationError(name, weak[0], 'value is %s' % weak[1])
    return value


# The collection's own rules for values an operator supplies (stricter than Caracal's, which
# checks only the KEK): a short repeating pattern has at most this many bytes per period, and an
# ascending or descending run this many bytes or more makes a value weak.
SUPPLIED_PERIOD_MAX = 8
SUPPLIED_RUN_MIN = 8


def _supplied_weakness(data):
    """The collection's weak-value rule ``data`` (bytes) breaks, with its explanation, or ``None``."""
    weak = _weakness(data)
    if weak:
        return weak
    values = bytearray(data)
    for period in range(1, min(SUPPLIED_PERIOD_MAX, len(values) // 2) + 1):
        if all(values[i] == values[i % period] for i in range(len(values))):
            return 'weak-pattern', 'a pattern of %d bytes repeated' % period
    for step, rule in ((1, 'weak-ascending-run'), (-1, 'weak-descending-run')):
        run = 1
        for a, b in zip(values, values[1:]):
            run = run + 1 if b == (a + step) % 256 else 1
            if run >= SUPPLIED_RUN_MIN:
                return rule, 'a run of %d or more %s bytes' % (
                    SUPPLIED_RUN_MIN, 'ascending' if step == 1 else 'descending')
    return None


def validate_supplied(name, value, spec):
    """``validate``, then the collection's weak-value rules for every hex secret an operator
    supplies (all-zero, one repeated byte, a pattern of up to 8 bytes repeated, an ascending or
    descending run of 8 bytes). Generated values are drawn at random and never need them."""
    value = validate(name, value, spec)
    if not is_derived(spec):
        weak = _supplied_weakness(bytearray.fromhex(value))
        if weak:
            raise SecretValidationError(name, weak[0], 'the supplied value is weak (%s); use a random value (openssl rand '
                                                       '-hex %d) or let the collection generate it'
                                        % (weak[1], spec.get('bytes') or 32))
    return value


def supplied_problems(values, specs):
    """Every problem of operator-supplied ``values`` (name to value) against ``specs``, as
    ``'<name>: <rule>: <detail>'`` sentences that never carry a value."""
    problems = []
    for name in sorted(values):
        spec = specs.get(name)
        if spec is None:
            problems.append('%s: unknown: not a secret of this release profile' % name)
            continue
        if is_derived(spec):
            problems.append('%s: derived: built from %s, it cannot be supplied' % (
                name, ', '.join(spec.get('derived_from') or [])))
            continue
        try:
            validate_supplied(name, values[name], spec)
        except SecretValidationError as exc:
            problems.append('%s: %s: %s' % (exc.secret, exc.rule, exc.detail))
    return problems


def derive(spec, values):
    """Build a derived secret (a URL) from its ``template`` and the ``derived_from`` values."""
    missing = [src for src in spec['derived_from'] if not values.get(src)]
    if missing:
        raise SecretValidationError(spec.get('name', 'derived secret'), 'derived-from',
                                    'needs the value of %s' % ', '.join(missing))
    return spec['template'].format(**{src: values[src] for src in spec['derived_from']})


def generate(spec):
    """A new random value for a hex secret: ``spec['bytes']`` bytes from ``secrets``."""
    while True:
        value = secrets.token_hex(spec['bytes'])
        try:
            return validate(spec.get('name', 'generated secret'), value, spec)
        except SecretValidationError:  # a weak key: astronomically unlikely, draw again
            continue


def fingerprint(value):
    """Identify a value without revealing it.

    A SHA-256 over a fixed domain prefix and the value, truncated to 16 hex digits
    (64 bits).  The domain separation keeps it from matching any other hash of the
    value, and a hash of a random 24- or 32-byte value cannot be inverted, so the
    fingerprint can go to logs, evidence and results.  Never change this function:
    a test image computes the same to prove which value a running process holds.
    """
    return hashlib.sha256(FINGERPRINT_DOMAIN + value.encode('utf-8')).hexdigest()[:FINGERPRINT_LENGTH]


# ---------------------------------------------------------------- time

def utcnow():
    return datetime.datetime.now(_UTC).replace(microsecond=0)


def format_ts(when):
    """UTC ISO-8601 with a ``Z`` suffix, or ``None``."""
    return None if when is None else when.astimezone(_UTC).strftime(TS_FORMAT)


def parse_ts(text):
    """Inverse of ``format_ts`` (``None`` stays ``None``)."""
    if text is None:
        return None
    return datetime.datetime.strptime(text, TS_FORMAT).replace(tzinfo=_UTC)


def from_epoch(seconds):
    return datetime.datetime.fromtimestamp(int(seconds), _UTC)


def stamp(when):
    """A compact UTC stamp for file names (``20260703T101500Z``)."""
    return when.astimezone(_UTC).strftime(STAMP_FORMAT)


def age_days(created, now):
    """Whole days since ``created`` (never negative)."""
    return max((now - created).days, 0)


def is_due(created, max_age_days, now):
    """Whether a value created at ``created`` is older than ``max_age_days`` (0/None: never)."""
    if not max_age_days:
        return False
    return now - created > datetime.timedelta(days=max_age_days)


def retire_after(archived_at, rollback_days):
    """When an archived value leaves its rollback window (0/None: kept for ever)."""
    if not rollback_days:
        return None
    return archived_at + datetime.timedelta(days=rollback_days)


def is_expired(retire_at, now):
    return retire_at is not None and now > retire_at


def policy(spec, policies, default_max_age_days, default_rollback_days):
    """The ``(max_age_days, rollback_days)`` of a secret.

    ``policies`` (per-secret overrides, possibly partial) win over the defaults.
    Derived secrets have no age of their own (they change with their source), and a
    destructive secret (the KEK) has no age policy unless one is given explicitly.
    """
    own = policies.get(spec['name']) or {}
    max_age = default_max_age_days
    if is_derived(spec) or is_destructive(spec):
        max_age = 0
    if own.get('max_age_days') is not None:
        max_age = own['max_age_days']
    rollback = own.get('rollback_days')
    return max_age, default_rollback_days if rollback is None else rollback


# ---------------------------------------------------------------- evidence

def evidence_record(now, actor, action, reason, secret, profile, location,
                    old_fingerprint=None, new_fingerprint=None, rollback_until=None):
    """One evidence record: who did what to which secret, when and why.

    Records carry fingerprints only, never a value.
    """
    if action not in ACTIONS:
        raise ValueError('unknown evidence action %r' % action)
    if reason not in REASONS:
        raise ValueError('unknown evidence reason %r' % reason)
    return {
        'ts': format_ts(now),
        'actor': actor,
        'action': action,
        'reason': reason,
        'secret': secret,
        'profile': profile,
        'old_fingerprint': old_fingerprint,
        'new_fingerprint': new_fingerprint,
        'rollback_until': format_ts(rollback_until),
        'location': location,
    }
