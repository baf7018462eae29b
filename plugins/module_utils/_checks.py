# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Caracal's hardening checklists as code: the catalogue of checks and the record model.

Every verification module (``caracal_*_info``) returns a list of *records*, one per check::

    {'id': 'containers.capabilities',
     'title': 'Capabilities dropped, none added beyond the contract',
     'group': 'containers',
     'required': True,
     'checklist': [{'page': 'Harden Security Posture', 'url': ..., 'section': 'Deployment Mode',
                    'row': 'Containers'}, ...],
     'status': 'pass' | 'fail' | 'not_applicable',
     'findings': ['api: CapAdd NET_ADMIN beyond the contract (allowed: none)'],
     'evidence': {...facts measured, never a secret value...},
     'remediation': '...'}

``CHECKS`` says what each check is and which checklist rows it proves; ``CHECKLIST`` is
every row of Caracal's two hardening checklists (the seed pages), each mapped to the checks
that prove it or declared not applicable with the reason. ``checklist_report`` folds a list
of records into per-row results for the report.

The logic of each check lives in ``_checks_<area>.py`` and works on parsed inputs (docker
inspect JSON, ``ss`` output, ``nft -j`` JSON, header lists, certificate facts) so that unit
tests feed it fixtures; ``_checks_host.py`` does the (thin) I/O.

This is a private module_utils (leading underscore): its API may change between minor
releases of the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import ipaddress

PASS = 'pass'
FAIL = 'fail'
NOT_APPLICABLE = 'not_applicable'
STATUSES = (PASS, FAIL, NOT_APPLICABLE)

# The two seed pages.
PAGES = {
    'posture': {'page': 'Harden Security Posture', 'url': 'https://docs.caracal.run/security/hardening/'},
    'production': {'page': 'Harden Production', 'url': 'https://docs.caracal.run/operations/tls-hardening/'},
}


def _row(page, section, row):
    ref = dict(PAGES[page])
    ref.update({'section': section, 'row': row})
    return ref


# Every row of both checklists, in page order. ``checks`` prove the row; ``not_applicable``
# gives the reason a row cannot be measured on a host; ``note`` says what part of a row is
# application behaviour rather than deployment state.
CHECKLIST = [
    # ---- Harden Security Posture (security/hardening)
    {'ref': _row('posture', 'Deployment Mode', 'Mode'),
     'expected': 'CARACAL_MODE=stable or rc; never rely on dev defaults for production.',
     'checks': ['mode.caracal_mode', 'mode.fail_open', 'metrics.bearer', 'health.ready']},
    {'ref': _row('posture', 'Deployment Mode', 'Ports'),
     'expected': 'Public ingress exposes only required API/Gateway endpoints; storage remains private.',
     'checks': ['ports.public', 'ports.services']},
    {'ref': _row('posture', 'Deployment Mode', 'Network'),
     'expected': 'NetworkPolicy or equivalent restricts ingress and egress.',
     'checks': ['network.firewall', 'network.default_deny', 'network.blocked_ranges']},
    {'ref': _row('posture', 'Deployment Mode', 'Containers'),
     'expected': 'Non-root, dropped capabilities, no-new-privileges, read-only root filesystem where supported.',
     'checks': ['containers.non_root', 'containers.capabilities', 'containers.no_new_privileges',
                'containers.read_only', 'containers.limits']},
    {'ref': _row('posture', 'Secrets and Keys', 'Secret delivery'),
     'expected': 'Mounted secret files or platform secret manager, not inline production secrets.',
     'checks': ['secrets.file_delivery', 'secrets.no_inline_values', 'secrets.permissions', 'health.credentials']},
    {'ref': _row('posture', 'Secrets and Keys', 'HMAC keys'),
     'expected': 'AUDIT_HMAC_KEY, STREAMS_HMAC_KEY and GATEWAY_STS_HMAC_KEY are strong and rotated under control.',
     'checks': ['keys.present', 'keys.hmac', 'keys.rotation', 'keys.evidence', 'keys.journal']},
    {'ref': _row('posture', 'Secrets and Keys', 'Zone KEK'),
     'expected': 'ZONE_KEK is protected and backed up with the database.',
     'checks': ['keys.kek', 'keys.kek_backup', 'secrets.permissions']},
    {'ref': _row('posture', 'Secrets and Keys', 'Admin/Coordinator tokens'),
     'expected': 'Stored privately, rotated, and scoped to operator need.',
     'checks': ['keys.tokens', 'secrets.views', 'secrets.permissions', 'keys.rotation']},
    {'ref': _row('posture', 'Secrets and Keys', 'Runtime profiles'),
     'expected': 'caracal.toml and secret files are owner-only when written locally.',
     'checks': ['secrets.runtime_profiles', 'secrets.permissions']},
    {'ref': _row('posture', 'Access Enforcement', 'STS'),
     'expected': 'Fails closed on invalid client credentials, policy denial, revoked sessions, replay, invalid '
                 'delegation, and unsatisfied step-up.',
     'checks': ['mode.fail_open', 'access.sts_admin_token', 'health.jwks'],
     'note': 'How the STS judges credentials, policies, sessions, replay, delegation and step-up is application '
             'behaviour that Caracal tests itself. A host can only show what the deployment decides: no fail-open '
             'switch (INSECURE_STS), a published mode, and the internal admin endpoints closed (empty '
             'STS_ADMIN_TOKEN).'},
    {'ref': _row('posture', 'Access Enforcement', 'Gateway'),
     'expected': 'Requires bearer token and X-Caracal-Resource, validates binding, rejects path traversal and '
                 'unsafe upstreams.',
     'checks': ['mode.fail_open', 'network.blocked_ranges', 'access.gateway_allowlist'],
     'note': 'Token, resource-header, binding and path validation are application behaviour. The deployment '
             'part is measured: no fail-open switch (JTI_FAIL_OPEN), unsafe upstream ranges dropped by the host '
             'firewall, and an egress allowlist.'},
    {'ref': _row('posture', 'Access Enforcement', 'Control'),
     'expected': 'Disabled unless explicitly needed; invoke endpoint requires gate, JWT, replay protection, rate '
                 'limit, and audit.',
     'checks': ['access.control']},
    {'ref': _row('posture', 'Access Enforcement', 'Resource servers'),
     'expected': 'Verify mandate signature, issuer, audience, scopes, token use, agent/delegation requirements, '
                 'hop limits, and revocation.',
     'not_applicable': 'Resource servers are the operator\'s own services that consume Caracal mandates; none of '
                       'them is part of the Caracal deployment on this host, so there is nothing here to measure. '
                       'Verify them in their own test suites.'},
    {'ref': _row('posture', 'Audit and Recovery', 'Audit stream'),
     'expected': 'caracal.audit.events and DLQ are monitored.',
     'checks': ['audit.streams', 'audit.dlq', 'audit.pending']},
    {'ref': _row('posture', 'Audit and Recovery', 'Tamper checks'),
     'expected': 'Audit tamper alerts page the security/on-call path.',
     'not_applicable': 'Paging is configured in the alerting system (routes, receivers, on-call schedule), not on '
                       'the Caracal host; no host state shows whether an alert reaches a person. Test it with an '
                       'alerting drill.'},
    {'ref': _row('posture', 'Audit and Recovery', 'Backups'),
     'expected': 'Postgres, runtime secrets, and audit exports are restorable.',
     'checks': ['keys.kek_backup'],
     'note': 'Restorability is proven by a restore drill. The host check measures the one backup whose loss is '
             'unrecoverable: the KEK that matches the database (when a backup path is configured).'},
    {'ref': _row('posture', 'Audit and Recovery', 'Replay'),
     'expected': 'STS/Gateway audit replay volumes are preserved through rollouts.',
     'checks': ['containers.replay_state']},
    # ---- Harden Production (operations/tls-hardening)
    {'ref': _row('production', 'Hardening Checklist', 'External TLS'),
     'expected': 'Terminate TLS at ingress, load balancer, service mesh, or Gateway TLS files. The web console '
                 'public edge must be HTTPS.',
     'checks': ['tls.protocols', 'tls.certificate', 'tls.headers', 'tls.redirect']},
    {'ref': _row('production', 'Hardening Checklist', 'Internal services'),
     'expected': 'Prefer private ClusterIP or bridge-network traffic.',
     'checks': ['ports.services', 'metrics.bearer']},
    {'ref': _row('production', 'Hardening Checklist', 'Secrets'),
     'expected': 'Use mounted secret files, not inline env vars.',
     'checks': ['secrets.file_delivery', 'secrets.no_inline_values']},
    {'ref': _row('production', 'Hardening Checklist', 'Containers'),
     'expected': 'Drop Linux capabilities, set no-new-privileges, use read-only filesystems where supported.',
     'checks': ['containers.capabilities', 'containers.no_new_privileges', 'containers.read_only']},
    {'ref': _row('production', 'Hardening Checklist', 'NetworkPolicy'),
     'expected': 'Admit only required ingress and egress, including explicit ingress-controller traffic to the '
                 'web tier.',
     'checks': ['network.firewall', 'network.default_deny', 'ports.public']},
    {'ref': _row('production', 'Hardening Checklist', 'Gateway upstreams'),
     'expected': 'Keep private upstreams disabled unless explicitly allowed and allowlisted.',
     'checks': ['access.gateway_allowlist', 'network.blocked_ranges']},
    {'ref': _row('production', 'Hardening Checklist', 'Runtime CLI'),
     'expected': 'Do not expose product management as top-level runtime CLI commands.',
     'not_applicable': 'This concerns how Caracal\'s own runtime CLI is packaged (product code). The deployment '
                       'installs no Caracal CLI on the host and runs only the services\' own commands, so there is '
                       'no host setting to measure.'},
    {'ref': _row('production', 'HMAC and Signing Keys', 'AUDIT_HMAC_KEY, STREAMS_HMAC_KEY, GATEWAY_STS_HMAC_KEY'),
     'expected': 'HMAC keys must be hex-encoded and at least 32 bytes.',
     'checks': ['keys.hmac']},
    {'ref': _row('production', 'HMAC and Signing Keys', 'ZONE_KEK'),
     'expected': 'Zone secret/key encryption key: exactly 32 bytes, not a weak pattern.',
     'checks': ['keys.kek']},
]

# What each check is. ``rows`` are (page, section, row) keys of CHECKLIST; ``required``
# checks fail the verification play unless it runs warn-only.
CHECKS = {
    'mode.caracal_mode': {
        'title': 'CARACAL_MODE is stable or rc in every application container',
        'remediation': 'Set caracal_mode: stable (rc only for staging) and redeploy; remove any override that sets '
                       'CARACAL_MODE=dev (dev skips the key checks and allows fail-open settings).'},
    'mode.fail_open': {
        'title': 'No fail-open setting (INSECURE_STS, INSECURE_HTTP, JTI_FAIL_OPEN) in any container',
        'remediation': 'Remove the fail-open variable from the service environment (extra_env, compose overrides) '
                       'and redeploy; published modes refuse them.'},
    'ports.public': {
        'title': 'Only the edge (and the admin SSH port) listens beyond loopback',
        'remediation': 'Bind the listener to 127.0.0.1 (or a private address) or stop the service; publish '
                       'container ports on loopback only and put the TLS edge in front.'},
    'ports.services': {
        'title': 'Storage and internal service ports are loopback or private only',
        'remediation': 'Publish Caracal services and storage on 127.0.0.1 only (caracal_compose_publish) and keep '
                       'Postgres and Redis unpublished; never bind them to 0.0.0.0 or a public address.'},
    'network.firewall': {
        'title': 'The host firewall table is loaded',
        'remediation': 'Apply the caracal.hardened.firewall role (nftables table inet caracal_filter) and make sure '
                       'caracal-firewall.service is enabled.'},
    'network.default_deny': {
        'title': 'Ingress and egress (host and containers) are default-deny',
        'remediation': 'Re-apply the caracal.hardened.firewall role: the input, output and forward base chains '
                       'must have policy drop and no unconditional accept; remove hand-added rules.'},
    'network.blocked_ranges': {
        'title': 'Metadata, carrier-grade NAT and multicast ranges are dropped for host and container egress',
        'remediation': 'Re-apply the caracal.hardened.firewall role; the egress chain must drop 169.254.0.0/16, '
                       '100.64.0.0/10 and 224.0.0.0/4 before any allow rule, for the host (output) and the '
                       'containers (forward).'},
    'containers.non_root': {
        'title': 'Containers run as non-root users',
        'remediation': 'Run application containers as 65532:65532 and Redis as its own user (the contract '
                       'runtime); remove user: root overrides.'},
    'containers.capabilities': {
        'title': 'All capabilities dropped, none added beyond the contract',
        'remediation': 'Set cap_drop: [ALL] and add back only what the contract allows (Postgres: CHOWN, '
                       'DAC_READ_SEARCH, FOWNER, SETGID, SETUID; everything else: none); remove privileged mode.'},
    'containers.no_new_privileges': {
        'title': 'no-new-privileges is set on every container',
        'remediation': 'Add security_opt: [no-new-privileges:true] to every service (and no-new-privileges in the '
                       'engine daemon configuration).'},
    'containers.read_only': {
        'title': 'Application containers have a read-only root filesystem',
        'remediation': 'Set read_only: true with a small /tmp tmpfs for every application service.'},
    'containers.limits': {
        'title': 'Every container has memory, CPU and pids limits',
        'remediation': 'Set mem_limit, cpus and pids_limit for every service (caracal_compose_limits, '
                       'caracal_compose_kind_limits).'},
    'containers.replay_state': {
        'title': 'The STS and Gateway replay state lives on persistent volumes',
        'remediation': 'Mount a named volume at /var/lib/caracal for sts and gateway (never a tmpfs or the '
                       'container layer) so replay state survives rollouts.'},
    'secrets.file_delivery': {
        'title': 'Secrets reach the services as *_FILE paths from a read-only mount',
        'remediation': 'Deliver each secret as NAME_FILE=/run/secrets/<name> from the service\'s read-only view '
                       'directory; never set NAME itself (it overrides the file).'},
    'secrets.no_inline_values': {
        'title': 'No secret value in any container environment, inspect output or process environment',
        'remediation': 'Remove the value from the environment, labels or command line, then rotate the exposed '
                       'secret (caracal_secrets_rotate with reason exposure): it has been readable by anyone who '
                       'can inspect containers or read /proc.'},
    'secrets.permissions': {
        'title': 'Secret files and directories have the owners and modes of the layout',
        'remediation': 'Re-run the caracal.hardened.secrets role (it enforces owner and mode on every path), then '
                       'rotate any secret that was readable by others.'},
    'secrets.views': {
        'title': 'Each service view holds only the secrets that service reads',
        'remediation': 'Re-run the caracal.hardened.secrets role; it removes files a service does not read from its '
                       'view directory.'},
    'secrets.runtime_profiles': {
        'title': 'Runtime profiles (caracal.toml, client secret) are owner-only',
        'remediation': 'chmod 0600 the runtime profile files and 0700 their directory (the secrets role does this '
                       'for caracal_secrets_runtime_profiles).'},
    'keys.present': {
        'title': 'Every secret is present in the store and identical in each service view',
        'remediation': 'Re-run the caracal.hardened.secrets role, then restart the services it names; a missing '
                       'KEK must be restored from backup, never regenerated.'},
    'keys.hmac': {
        'title': 'HMAC keys are hex and at least 32 bytes',
        'remediation': 'Rotate the key (caracal_secrets_rotate) so that a value of the contract\'s size is '
                       'generated, or supply a valid one.'},
    'keys.kek': {
        'title': 'The zone KEK is exactly 32 bytes and not a weak pattern',
        'remediation': 'A weak or malformed KEK protects nothing: plan a destructive KEK rotation (zones must be '
                       're-created) with caracal_secrets_allow_destructive_kek_rotation.'},
    'keys.tokens': {
        'title': 'Admin, coordinator, metrics and auth tokens and the datastore passwords are strong',
        'remediation': 'Rotate the token or password (caracal_secrets_rotate) to get a value of the contract\'s size.'},
    'keys.rotation': {
        'title': 'Every secret is within its rotation policy',
        'remediation': 'Run the secrets role (it rotates what is due) or caracal_secrets_rotate the named secrets; '
                       'the KEK needs an explicit destructive acknowledgement.'},
    'keys.evidence': {
        'title': 'The rotation evidence log exists, is private and records every current value',
        'remediation': 'Manage secrets only through caracal.hardened.secret_files (it appends evidence); restore the '
                       'evidence log from backup if it was lost, and investigate values without a record.'},
    'keys.kek_backup': {
        'title': 'The current KEK is backed up',
        'remediation': 'Back up the KEK together with every database backup (a plain copy readable by root only, or '
                       'an encrypted file whose name carries the KEK fingerprint).'},
    'access.control': {
        'title': 'Control is disabled unless it is meant to be on',
        'remediation': 'Remove the gate file (caracal_control_enabled: false) unless Control is needed; the api '
                       'must mount the control directory read-only.'},
    'access.sts_admin_token': {
        'title': 'The STS admin token is empty (internal endpoints closed)',
        'remediation': 'Set STS_ADMIN_TOKEN to an empty value (the contract default) and remove any '
                       'STS_ADMIN_TOKEN_FILE.'},
    'access.gateway_allowlist': {
        'title': 'The gateway egress is pinned by UPSTREAM_HOST_ALLOWLIST',
        'required': False,
        'remediation': 'Set caracal_upstream_allowlist to the upstream hosts the gateway may reach.'},
    'metrics.bearer': {
        'title': 'Metrics answer 401 without the bearer on every service',
        'remediation': 'Run the services in a published mode (stable or rc) with METRICS_BEARER_FILE set; a metrics '
                       'endpoint that answers without the bearer leaks operational data.'},
    'tls.protocols': {
        'title': 'The edge refuses TLS 1.0 and 1.1 and accepts TLS 1.2',
        'remediation': 'Use the caracal.hardened.tls role (ssl_protocols TLSv1.2 TLSv1.3).'},
    'tls.certificate': {
        'title': 'The edge certificate is valid for more than the minimum days and covers the host name',
        'remediation': 'Renew the certificate (or let the internal CA renew it) and include the public host name in '
                       'its subjectAltName.'},
    'tls.headers': {
        'title': 'The edge sends HSTS, CSP frame-ancestors none, X-Frame-Options DENY, nosniff and no-referrer',
        'remediation': 'Use the caracal.hardened.tls role (security-headers.conf) or add the headers with '
                       '"always" at the edge.'},
    'tls.redirect': {
        'title': 'Plain HTTP only redirects to HTTPS',
        'remediation': 'Serve nothing on plain HTTP but a redirect to the https origin.'},
    'audit.streams': {
        'title': 'The audit stream and its dead-letter queue exist',
        'remediation': 'Check that Redis is provisioned (the audit stream and DLQ are created at its start) and '
                       'that the audit service runs; restore Redis data if the streams were lost.'},
    'audit.pending': {
        'title': 'The audit stream\'s consumers keep up (pending entries bounded)',
        'remediation': 'Check that the audit service runs and is ready (its /ready names the consumer problem); '
                       'entries signed with a retired STREAMS_HMAC_KEY stay pending until they drain.'},
    'health.ready': {
        'title': 'Every service runs, is healthy and ready (/ready 200); every one-shot job completed',
        'remediation': 'Read the named service\'s logs (its /ready reason says which dependency fails), fix it and '
                       'run deploy.yml again; a rotation interrupted mid-way is finished by that run.'},
    'health.credentials': {
        'title': 'Postgres and Redis accept every credential the services hold',
        'remediation': 'Run deploy.yml: it gives Postgres the stored password (a SCRAM verifier) and restarts Redis '
                       'consumers; a view that differs from the store is rewritten by the secrets role.'},
    'health.jwks': {
        'title': 'The STS serves its JWKS (public signing keys only)',
        'remediation': 'Check the sts service (its logs and /ready); clients and the gateway cannot verify tokens '
                       'without the JWKS. A key with private members must be rotated at once.'},
    'keys.journal': {
        'title': 'No rotation journal is open',
        'remediation': 'Run deploy.yml or rotate.yml again: the next run finishes the rotation the journal '
                       'records (credential sync, restarts in roll order) or rolls it back, then closes it.'},
    'audit.dlq': {
        'title': 'The audit dead-letter queue is under its threshold',
        'remediation': 'Investigate the dead-lettered events (XRANGE caracal.audit.events.dlq): growth usually '
                       'means an AUDIT_HMAC_KEY mismatch between producers and the audit service.'},
}

GROUPS = ('mode', 'ports', 'network', 'containers', 'secrets', 'keys', 'access', 'metrics', 'tls', 'audit', 'health')


def _refs_of(check_id):
    return [copy.deepcopy(item['ref']) for item in CHECKLIST if check_id in (item.get('checks') or [])]


def record(check_id, status, evidence=None, findings=None, detail=None):
    """The uniform record of one check (see the module docstring).

    ``detail`` is a sentence that explains a status (the reason of a ``not_applicable``).
    """
    if check_id not in CHECKS:
        raise KeyError('unknown check %s' % check_id)
    if status not in STATUSES:
        raise ValueError('unknown status %r' % status)
    spec = CHECKS[check_id]
    findings = list(findings or [])
    if status == PASS and findings:
        raise ValueError('check %s passes with findings' % check_id)
    return {
        'id': check_id,
        'title': spec['title'],
        'group': check_id.split('.', 1)[0],
        'required': spec.get('required', True),
        'checklist': _refs_of(check_id),
        'status': status,
        'detail': detail or '',
        'findings': findings,
        'evidence': evidence if evidence is not None else {},
        'remediation': spec['remediation'] if status == FAIL else '',
    }


def judged(check_id, findings, evidence=None, detail=None):
    """``fail`` with ``findings`` when there are any, else ``pass``."""
    return record(check_id, FAIL if findings else PASS, evidence, findings, detail)


def add_findings(rec, findings, remediation=None):
    """Turn ``rec`` into a failure with more ``findings`` (for measurements that could not be made)."""
    if not findings:
        return rec
    rec['findings'].extend(findings)
    rec['status'] = FAIL
    rec['detail'] = ''
    rec['remediation'] = rec['remediation'] or remediation or CHECKS[rec['id']]['remediation']
    return rec


def not_applicable(check_id, reason, evidence=None):
    return record(check_id, NOT_APPLICABLE, evidence, detail=reason)


def select(requested, available):
    """The check ids of ``available`` that ``requested`` names (ids or group names).

    ``None`` or an empty list selects everything. Unknown names raise ``ValueError``.
    """
    if not requested:
        return list(available)
    chosen = []
    unknown = []
    for name in requested:
        hits = [c for c in available if c == name or c.split('.', 1)[0] == name]
        if not hits:
            unknown.append(name)
        chosen.extend(h for h in hits if h not in chosen)
    if unknown:
        raise ValueError('unknown checks %s (this module runs: %s)' % (', '.join(unknown), ', '.join(available)))
    return [c for c in available if c in chosen]


def summary(records):
    counts = dict((s, 0) for s in STATUSES)
    for rec in records:
        counts[rec['status']] += 1
    failed = [r['id'] for r in records if r['status'] == FAIL]
    return {
        'counts': counts,
        'failed': failed,
        'failed_required': [r['id'] for r in records if r['status'] == FAIL and r['required']],
        'passed': not [r for r in records if r['status'] == FAIL and r['required']],
    }


def checklist_report(records):
    """Fold check records into the rows of CHECKLIST (the report's coverage table).

    A row fails when one of its checks failed, passes when none failed and at least one
    passed, and is not applicable when all its checks were (or when the row itself is
    declared not applicable). Checks a row names but the records lack are listed as
    ``missing``: the row is then ``fail`` too (a checklist row silently unmeasured is the
    defect this report exists to catch).
    """
    by_id = dict((r['id'], r) for r in records)
    rows = []
    for item in CHECKLIST:
        row = copy.deepcopy(item['ref'])
        row['expected'] = item['expected']
        row['note'] = item.get('note', '')
        if item.get('not_applicable'):
            row.update({'status': NOT_APPLICABLE, 'reason': item['not_applicable'], 'checks': [], 'missing': []})
            rows.append(row)
            continue
        checks = []
        missing = []
        for cid in item['checks']:
            if cid in by_id:
                checks.append({'id': cid, 'status': by_id[cid]['status'], 'required': by_id[cid]['required']})
            else:
                missing.append(cid)
        statuses = [c['status'] for c in checks]
        if missing or FAIL in statuses:
            status = FAIL
        elif PASS in statuses:
            status = PASS
        else:
            status = NOT_APPLICABLE
        reason = ''
        if missing:
            reason = 'not measured: %s' % ', '.join(missing)
        elif status == NOT_APPLICABLE:
            details = []
            for check in checks:
                detail = by_id[check['id']]['detail']
                if detail and detail not in details:
                    details.append(detail)
            reason = '; '.join(details)
        row.update({'status': status, 'reason': reason, 'checks': checks, 'missing': missing})
        rows.append(row)
    return rows


def fold_checklist(records):
    """``(rows, summary)``: ``checklist_report(records)`` and the ``summary`` of the records with
    the rows counted per status; ``passed`` also needs every row measured (none ``missing``)."""
    rows = checklist_report(records)
    result = summary(records)
    result['rows'] = dict((s, len([r for r in rows if r['status'] == s])) for s in STATUSES)
    result['passed'] = result['passed'] and not any(r['missing'] for r in rows)
    return rows, result


# ---------------------------------------------------------------- shared helpers

def classify_address(text):
    """``loopback``, ``private``, ``wildcard`` or ``public`` for a listening address.

    Accepts ``0.0.0.0``, ``::``, ``*``, ``[::1]``, ``127.0.0.53%lo``, ``::ffff:127.0.0.1``
    and an empty string (Docker's "every interface"). Link-local and RFC 1918/4193
    addresses are private; anything unparsable is treated as public (fail closed).
    """
    host = (text or '').strip()
    if host.startswith('[') and host.endswith(']'):
        host = host[1:-1]
    host = host.split('%', 1)[0]
    if host in ('', '*', '0.0.0.0', '::'):
        return 'wildcard'
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return 'public'
    if getattr(addr, 'ipv4_mapped', None) is not None:
        addr = addr.ipv4_mapped
    if addr.is_unspecified:
        return 'wildcard'
    if addr.is_loopback:
        return 'loopback'
    if addr.is_link_local or addr.is_private and not addr.is_global:
        return 'private'
    return 'public'


def is_exposed(text):
    """Whether an address reaches beyond the host's private networks (wildcard or public)."""
    return classify_address(text) in ('wildcard', 'public')
