# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""/healthcheck of the caracal-standin images: GET http://127.0.0.1:$PORT/ready, exit 0 or 1.

PORT defaults to the contract port of the service this container runs (found from the
command line of its processes)."""

import os
import sys
import urllib.error
import urllib.request

LIB = '/usr/local/lib/caracal-standin'
sys.path.insert(0, LIB)


def service_port():
    raw = os.environ.get('PORT', '')
    if raw:
        return int(raw)
    import _contract
    profile = _contract.get_profile(os.environ.get('CARACAL_STANDIN_PROFILE') or None)
    ports = {svc['command'][0]: svc['port'] for svc in profile['services'].values()
             if svc.get('kind') == 'app' and svc.get('command')}
    for pid in sorted((p for p in os.listdir('/proc') if p.isdigit()), key=int):
        try:
            with open('/proc/%s/cmdline' % pid, 'rb') as handle:
                args = handle.read().decode('utf-8', 'replace').split('\0')
        except OSError:
            continue
        for arg in args[:4]:
            if arg in ports:
                return ports[arg]
    raise SystemExit('healthcheck: no Caracal service process found and PORT is not set')


def main():
    try:
        port = service_port()
    except ValueError:
        print('healthcheck: PORT is not a number', file=sys.stderr)
        return 1
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open('http://127.0.0.1:%d/ready' % port, timeout=10) as resp:
            return 0 if resp.status == 200 else 1
    except urllib.error.HTTPError as exc:
        body = exc.read(512).decode('utf-8', 'replace').strip()
        print('healthcheck: %d %s' % (exc.code, body), file=sys.stderr)
        return 1
    except OSError as exc:
        print('healthcheck: %s' % exc, file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
