# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Entrypoint of the caracal-redis test image.

Runs as the image's ``redis`` user with no capability at all:

1. reads REDIS_PASSWORD_FILE (readable through the supplementary group 65532);
2. writes a 0600 config into the tmpfs /run/caracal (requirepass, the contract's Redis
   settings, ``dir /data``, all container interfaces, protected-mode yes) and refuses to
   write it anywhere that is not a tmpfs;
3. starts redis-server with that config (the password is never on an argv or in an
   environment);
4. once Redis answers, creates the audit stream and its DLQ (XGROUP CREATE ... MKSTREAM,
   idempotent) and writes the marker /run/caracal/provisioned;
5. forwards SIGTERM/SIGINT to redis-server and exits with its status.
"""

import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, '/usr/local/lib/caracal-redis')
import caracal_redis as cr  # noqa: E402

WHO = 'caracal-redis'
GROUP = os.environ.get('CARACAL_AUDIT_GROUP', 'caracal-audit')


def say(msg):
    sys.stderr.write('%s: %s\n' % (WHO, msg))
    sys.stderr.flush()


def die(msg):
    say('refusing to start: %s' % msg)
    sys.exit(1)


def mount_type(path):
    """Filesystem type of the mount that holds ``path``."""
    best, fstype = '', None
    real = os.path.realpath(path)
    with open('/proc/self/mountinfo') as handle:
        for line in handle:
            fields = line.split()
            sep = fields.index('-')
            mnt = fields[4].replace('\\040', ' ')
            if (real == mnt or real.startswith(mnt.rstrip('/') + '/')) and len(mnt) >= len(best):
                best, fstype = mnt, fields[sep + 1]
    return fstype


def check_dirs(conf):
    rundir = conf['rundir']
    if not os.path.isdir(rundir):
        raise cr.Failure('%s does not exist: mount a tmpfs there' % rundir)
    if mount_type(rundir) != 'tmpfs':
        raise cr.Failure('%s is not a tmpfs: the generated config holds the password; mount one with '
                         '--tmpfs %s:uid=%d,gid=%d,mode=0700,size=1m'
                         % (rundir, rundir, os.getuid(), os.getgid()))
    if not os.access(rundir, os.W_OK | os.X_OK):
        st = os.stat(rundir)
        raise cr.Failure('%s (owner %d:%d, mode %o) is not writable by uid %d: mount the tmpfs with '
                         'uid=%d,gid=%d,mode=0700'
                         % (rundir, st.st_uid, st.st_gid, st.st_mode & 0o7777,
                            os.getuid(), os.getuid(), os.getgid()))
    if not os.access(conf['data'], os.W_OK | os.X_OK):
        raise cr.Failure('%s is not writable by uid %d (the redis data volume must belong to %d:%d)'
                         % (conf['data'], os.getuid(), os.getuid(), os.getgid()))


def write_config(conf, password):
    lines = [
        '# Written by the caracal-redis entrypoint at every start (tmpfs, mode 0600).',
        'bind * -::*',
        'protected-mode yes',
        'port %d' % conf['port'],
        'daemonize no',
        'logfile ""',
        'dir %s' % conf['data'],
        'unixsocket %s' % os.path.join(conf['rundir'], 'redis.sock'),
        'unixsocketperm 700',
    ]
    for key, value in conf['redis'].items():
        lines.append('%s %s' % (key, value))
    lines.append('requirepass %s' % cr.quote(password))
    path = os.path.join(conf['rundir'], cr.CONFIG_NAME)
    tmp = path + '.new'
    old = os.umask(0o077)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'w') as handle:
            handle.write('\n'.join(lines) + '\n')
        os.chmod(tmp, 0o600)
        os.rename(tmp, path)
    finally:
        os.umask(old)
    return path


def provision(conf, password, child, deadline):
    """Create the audit streams once Redis answers; True when done."""
    last = None
    while time.monotonic() < deadline:
        if child.poll() is not None:
            return False
        try:
            client = cr.authenticated(conf['port'], password)
        except cr.RespError as exc:
            if exc.args and str(exc.args[0]).startswith('LOADING'):
                time.sleep(0.2)
                continue
            say('cannot authenticate to redis: %s' % exc)
            return False
        except OSError as exc:
            last = exc
            time.sleep(0.1)
            continue
        try:
            for stream in conf['streams']:
                try:
                    client.call('XGROUP', 'CREATE', stream, GROUP, '$', 'MKSTREAM')
                    say('created stream %s (group %s)' % (stream, GROUP))
                except cr.RespError as exc:
                    if not str(exc).startswith('BUSYGROUP'):
                        raise
            return True
        except (cr.RespError, OSError) as exc:
            last = exc
            time.sleep(0.2)
        finally:
            client.close()
    say('redis did not become reachable for provisioning: %s' % last)
    return False


def main():
    if len(sys.argv) > 1 and not sys.argv[1].startswith('-') and os.path.basename(sys.argv[1]) != 'redis-server':
        os.execvp(sys.argv[1], sys.argv[1:])
    conf = cr.settings(cr.profile())
    try:
        password = cr.read_password(conf['var'])
        check_dirs(conf)
        if os.path.lexists(conf['marker']):
            os.unlink(conf['marker'])
        config = write_config(conf, password)
    except cr.Failure as exc:
        die(exc)
    except OSError as exc:
        die('%s: %s' % (getattr(exc, 'filename', '') or '', exc.strerror or exc))

    child = subprocess.Popen(['/usr/bin/redis-server', config])

    def forward(signum, frame):
        if child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    if provision(conf, password, child, time.monotonic() + 60):
        tmp = conf['marker'] + '.new'
        with open(tmp, 'w') as handle:
            handle.write('%s\n' % ' '.join(conf['streams']))
        os.rename(tmp, conf['marker'])
        say('provisioned (%s)' % conf['marker'])
    elif child.poll() is None:
        say('provisioning failed: stopping redis')
        child.terminate()
    del password
    code = child.wait()
    sys.exit(code if code >= 0 else 128 - code)


if __name__ == '__main__':
    main()
