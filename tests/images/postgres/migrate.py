# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""caracal-migrate (the dbMigrate one-shot job of the caracal-postgres test image).

Runs as 65532 on a read-only root with a /tmp tmpfs.  Reads the password through
PGPASSWORD_FILE into a 0600 pgpass file under /tmp (never into the environment or a
command line), then creates the migration table in every Caracal database as the
Caracal role and exits 0.  Host, port, role and databases come from the contract's URL
templates; PGHOST / PGPORT override host and port."""

import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, '/usr/local/lib/caracal-postgres')
import caracal_pg as pg  # noqa: E402

WHO = 'caracal-migrate'
SQL = """\
CREATE TABLE IF NOT EXISTS %(table)s (
    version    text        PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO %(table)s (version) VALUES ('standin-0001') ON CONFLICT (version) DO NOTHING;
""" % {'table': pg.MIGRATION_TABLE}


def main():
    prof = pg.profile()
    var = prof['services']['dbMigrate']['secrets']['postgresPassword'][0]
    try:
        password = pg.read_secret(var, WHO)
    except pg.Failure as exc:
        sys.stderr.write('%s: %s\n' % (WHO, exc))
        return 1
    wait = int(os.environ.get('CARACAL_MIGRATE_WAIT', '30'))
    workdir = tempfile.mkdtemp(prefix='caracal-migrate-', dir='/tmp')
    try:
        passfile = os.path.join(workdir, 'pgpass')
        fd = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        targets = pg.database_targets(prof)
        with os.fdopen(fd, 'w') as handle:
            for user, host, port, dbname in targets:
                handle.write('*:*:%s:%s:%s\n' % (pg.pgpass_field(dbname), pg.pgpass_field(user),
                                                 pg.pgpass_field(password)))
        del password
        env = {k: v for k, v in os.environ.items() if not k.startswith('PGPASSWORD')}
        env['PGPASSFILE'] = passfile
        env['PGCONNECT_TIMEOUT'] = '5'
        for user, host, port, dbname in targets:
            host = os.environ.get('PGHOST') or host
            port = os.environ.get('PGPORT') or str(port)
            argv = [os.path.join(pg.PGBIN, 'psql'), '-X', '-q', '-v', 'ON_ERROR_STOP=1',
                    '-h', host, '-p', port, '-U', user, '-d', dbname, '-f', '-']
            deadline = time.monotonic() + wait
            while True:
                result = subprocess.run(argv, input=SQL.encode(), env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
                if result.returncode == 0:
                    break
                out = result.stdout.decode('utf-8', 'replace').strip()
                # 2: connection problem (server starting up): retry within the bound.
                if result.returncode != 2 or time.monotonic() > deadline or 'authentication failed' in out:
                    sys.stderr.write('%s: %s@%s:%s/%s: %s\n' % (WHO, user, host, port, dbname, out))
                    return 1
                time.sleep(1)
            print('%s: %s: migrations applied (%s)' % (WHO, dbname, pg.MIGRATION_TABLE))
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
