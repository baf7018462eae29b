# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""/healthcheck of the caracal-redis test image: the provisioning marker exists and an
authenticated PING answers PONG.  The password is read from REDIS_PASSWORD_FILE (or, when
that is not readable, from the generated 0600 config in the tmpfs); never from an argv."""

import os
import sys

sys.path.insert(0, '/usr/local/lib/caracal-redis')
import caracal_redis as cr  # noqa: E402


def password_from_config(conf):
    path = os.path.join(conf['rundir'], cr.CONFIG_NAME)
    with open(path) as handle:
        for line in handle:
            if line.startswith('requirepass '):
                raw = line[len('requirepass '):].strip()
                return raw[1:-1].replace('\\"', '"').replace('\\\\', '\\')
    raise cr.Failure('no requirepass in %s' % path)


def main():
    conf = cr.settings(cr.profile())
    if not os.path.exists(conf['marker']):
        print('healthcheck: %s is missing (streams not provisioned yet)' % conf['marker'], file=sys.stderr)
        return 1
    try:
        try:
            password = cr.read_password(conf['var'])
        except cr.Failure:
            password = password_from_config(conf)
        client = cr.authenticated(int(os.environ.get('REDIS_PORT') or conf['port']), password)
        try:
            reply = client.call('PING')
        finally:
            client.close()
    except (cr.Failure, cr.RespError, OSError) as exc:
        print('healthcheck: %s' % exc, file=sys.stderr)
        return 1
    if reply != 'PONG':
        print('healthcheck: unexpected PING reply %r' % reply, file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
