# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Entrypoint of the caracal-postgres test image.

Starts as root with only CHOWN, DAC_READ_SEARCH, FOWNER, SETGID and SETUID:

1. prepares the data volume (``/var/lib/postgresql``, PGDATA below it) and the socket
   directory for the ``postgres`` user, then drops to that user for good (keeping the
   container's supplementary groups, so ``--group-add 65532`` lets it read a secret file
   mode 0440 owned root:65532);
2. reads POSTGRES_PASSWORD_FILE (refuses when unset, unreadable or empty);
3. on the first start only: ``initdb`` with scram-sha-256 and the superuser password via
   ``--pwfile`` (a 0600 temporary copy of the trimmed value), then creates role
   ``caracal`` and databases ``caracal`` and ``caracal_auth`` through psql reading SQL on
   stdin, on a socket-only temporary server;
4. on later starts it never changes a password (rotation is ALTER ROLE, done by the
   deployer): it just starts;
5. writes pg_hba.conf (scram-sha-256 for loopback and the container's networks) and
   execs postgres listening on all container interfaces.
"""

import grp
import os
import pwd
import stat
import subprocess
import sys
import tempfile

sys.path.insert(0, '/usr/local/lib/caracal-postgres')
import caracal_pg as pg  # noqa: E402

WHO = 'caracal-postgres'
SOCKET_DIR = '/run/postgresql'       # a link to /tmp/postgresql in the image
SOCKET_TARGET = '/tmp/postgresql'
MARKER = '.caracal-provisioned'


def say(msg):
    sys.stderr.write('%s: %s\n' % (WHO, msg))
    sys.stderr.flush()


def die(msg):
    say('refusing to start: %s' % msg)
    sys.exit(1)


def run(argv, **kwargs):
    result = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False, **kwargs)
    if result.returncode != 0:
        out = result.stdout.decode('utf-8', 'replace').strip()
        raise pg.Failure('%s failed (%d): %s' % (os.path.basename(argv[0]), result.returncode, out[-2000:]))
    return result


def container_networks():
    """CIDRs of the networks this container is attached to (connected routes)."""
    nets = []
    try:
        with open('/proc/net/route') as handle:
            rows = [line.split() for line in handle.read().splitlines()[1:]]
    except OSError:
        rows = []
    for row in rows:
        if len(row) < 8 or row[0] == 'lo' or row[2] != '00000000':
            continue
        dest = bytes.fromhex(row[1])[::-1]
        mask = int(row[7], 16)
        bits = bin(mask).count('1')
        if dest == b'\0\0\0\0':
            continue
        nets.append('%s/%d' % ('.'.join(str(b) for b in dest), bits))
    try:
        with open('/proc/net/ipv6_route') as handle:
            rows6 = [line.split() for line in handle.read().splitlines()]
    except OSError:
        rows6 = []
    for row in rows6:
        if len(row) < 10 or row[9] == 'lo' or row[4] != '0' * 32:
            continue
        dest, plen = row[0], int(row[1], 16)
        if plen == 0 or dest.startswith('fe80') or dest.startswith('ff'):
            continue
        addr = ':'.join(dest[i:i + 4] for i in range(0, 32, 4))
        nets.append('%s/%d' % (addr, plen))
    extra = os.environ.get('POSTGRES_HBA_EXTRA_NETWORKS', '')
    nets.extend(n.strip() for n in extra.split(',') if n.strip())
    seen = []
    for net in nets:
        if net not in seen:
            seen.append(net)
    return seen


def write_hba(pgdata):
    lines = [
        '# Written by the caracal-postgres entrypoint at every start: do not edit.',
        '# TYPE  DATABASE  USER      ADDRESS  METHOD',
        'local   all       postgres           peer',
        'local   all       all                scram-sha-256',
        'host    all       all       127.0.0.1/32  scram-sha-256',
        'host    all       all       ::1/128       scram-sha-256',
    ]
    for net in container_networks():
        lines.append('host    all       all       %s  scram-sha-256' % net)
    path = os.path.join(pgdata, 'pg_hba.conf')
    tmp = path + '.new'
    with open(tmp, 'w') as handle:
        handle.write('\n'.join(lines) + '\n')
    os.chmod(tmp, 0o600)
    os.rename(tmp, path)


def data_paths(prof):
    root = list(prof['services']['postgres']['volumes'].values())[0]
    return root, os.environ.get('PGDATA') or os.path.join(root, 'data')


DIRS_MODE = {'root': 0o755, 'pgdata': 0o700, 'socket': 0o2775}


def prepare_as_root(user, prof):
    """Give the volume and the socket directory to postgres (CHOWN and FOWNER only: root
    has no DAC_OVERRIDE here, so directories below are created after dropping to postgres)."""
    root, pgdata = data_paths(prof)
    if not os.path.isdir(root):
        os.makedirs(root)
    if not os.path.isdir(SOCKET_TARGET):
        os.makedirs(SOCKET_TARGET)
    for path, mode in ((root, DIRS_MODE['root']), (pgdata, DIRS_MODE['pgdata']),
                       (SOCKET_TARGET, DIRS_MODE['socket'])):
        if not os.path.lexists(path):
            continue
        info = os.lstat(path)
        if (info.st_uid, info.st_gid) != (user.pw_uid, user.pw_gid):
            os.chown(path, user.pw_uid, user.pw_gid)
        if stat.S_IMODE(info.st_mode) != mode:
            os.chmod(path, mode)


def prepare_as_postgres(prof):
    root, pgdata = data_paths(prof)
    for path, mode in ((pgdata, DIRS_MODE['pgdata']), (SOCKET_TARGET, DIRS_MODE['socket'])):
        if not os.path.isdir(path):
            os.makedirs(path)
            os.chmod(path, mode)
    return pgdata


def drop_privileges(user):
    groups = {user.pw_gid}
    groups.update(g for g in os.getgroups() if g != 0)
    groups.update(g.gr_gid for g in grp.getgrall() if user.pw_name in g.gr_mem)
    os.setgroups(sorted(groups))
    os.setgid(user.pw_gid)
    os.setuid(user.pw_uid)
    if os.getuid() == 0 or os.geteuid() == 0:
        raise pg.Failure('could not drop root privileges')
    os.environ['HOME'] = user.pw_dir
    os.environ['USER'] = os.environ['LOGNAME'] = user.pw_name


def provision(pgdata, password, prof):
    """First start: initdb, then role and databases on a socket-only temporary server."""
    fresh = not os.path.exists(os.path.join(pgdata, 'PG_VERSION'))
    if fresh:
        say('initialising a new cluster in %s' % pgdata)
        fd, pwfile = tempfile.mkstemp(prefix='pwfile-', dir=SOCKET_TARGET)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, (password + '\n').encode('utf-8'))
            os.close(fd)
            run([os.path.join(pg.PGBIN, 'initdb'), '-D', pgdata, '--username=postgres',
                 '--pwfile=' + pwfile, '--auth-local=peer', '--auth-host=scram-sha-256',
                 '--encoding=UTF8', '--locale=C.UTF-8', '--data-checksums'])
        finally:
            os.unlink(pwfile)
        with open(os.path.join(pgdata, 'postgresql.conf'), 'a') as handle:
            handle.write("\n# caracal-postgres\npassword_encryption = 'scram-sha-256'\n")
    if os.path.exists(os.path.join(pgdata, MARKER)):
        say('existing cluster: passwords are left as they are (rotate with ALTER ROLE)')
        return
    write_hba(pgdata)
    sockdir = tempfile.mkdtemp(prefix='init-', dir=SOCKET_TARGET)
    pg_ctl = os.path.join(pg.PGBIN, 'pg_ctl')
    run([pg_ctl, '-D', pgdata, '-w', '-t', '60', '-l', os.path.join(sockdir, 'log'), '-o',
         "-c listen_addresses='' -c unix_socket_directories=%s" % sockdir, 'start'])
    try:
        targets = pg.database_targets(prof)
        roles = sorted({t[0] for t in targets})
        verifier = pg.scram_verifier(password)
        sql = ["SET password_encryption = 'scram-sha-256';"]
        for role in roles:
            sql.append("SELECT format('CREATE ROLE %%I LOGIN PASSWORD %%L', %s, %s) "
                       "WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = %s)\\gexec"
                       % (pg.sql_literal(role), pg.sql_literal(verifier), pg.sql_literal(role)))
        for role, _host, _port, dbname in targets:
            sql.append("SELECT format('CREATE DATABASE %%I OWNER %%I', %s, %s) "
                       "WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = %s)\\gexec"
                       % (pg.sql_literal(dbname), pg.sql_literal(role), pg.sql_literal(dbname)))
            sql.append('REVOKE ALL ON DATABASE %s FROM PUBLIC;' % pg.sql_ident(dbname))
        run([os.path.join(pg.PGBIN, 'psql'), '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', sockdir,
             '-U', 'postgres', '-d', 'postgres', '-f', '-'],
            input=('\n'.join(sql) + '\n').encode('utf-8'))
        say('created role(s) %s and database(s) %s' % (', '.join(roles), ', '.join(t[3] for t in targets)))
    finally:
        run([pg_ctl, '-D', pgdata, '-w', '-t', '60', '-m', 'fast', 'stop'])
        for name in os.listdir(sockdir):
            os.unlink(os.path.join(sockdir, name))
        os.rmdir(sockdir)
    with open(os.path.join(pgdata, MARKER), 'w') as handle:
        handle.write('provisioned\n')


def main():
    # Like the official postgres images: a command that is not a postgres option runs as
    # given (the dbMigrate job runs `/bin/sh /usr/local/bin/caracal-migrate` this way).
    if len(sys.argv) > 1 and not sys.argv[1].startswith('-') and os.path.basename(sys.argv[1]) != 'postgres':
        os.execvp(sys.argv[1], sys.argv[1:])
    if len(sys.argv) > 1 and os.path.basename(sys.argv[1]) == 'postgres':
        del sys.argv[1]
    prof = pg.profile()
    svc = prof['services']['postgres']
    var = svc['secrets']['postgresPassword'][0]
    try:
        user = pwd.getpwnam('postgres')
        if os.getuid() == 0:
            prepare_as_root(user, prof)
            drop_privileges(user)
        pgdata = prepare_as_postgres(prof)
        password = pg.read_secret(var, 'postgres')
        provision(pgdata, password, prof)
        write_hba(pgdata)
    except pg.Failure as exc:
        die(exc)
    except OSError as exc:
        die('%s: %s' % (getattr(exc, 'filename', '') or '', exc.strerror or exc))
    del password
    argv = [os.path.join(pg.PGBIN, 'postgres'), '-D', pgdata,
            '-c', 'listen_addresses=*',
            '-c', 'port=%d' % svc['port'],
            '-c', 'password_encryption=scram-sha-256',
            '-c', 'unix_socket_directories=%s' % SOCKET_DIR]
    argv.extend(sys.argv[1:])
    say('starting postgres as uid %d (groups %s)' % (os.getuid(), ','.join(str(g) for g in os.getgroups())))
    os.execv(argv[0], argv)


if __name__ == '__main__':
    main()
