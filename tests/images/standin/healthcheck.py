# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""/healthcheck of the caracal-standin images, as Caracal's: GET http://$HEALTH_HOST:$PORT$HEALTH_PATH
without keep-alive, within HEALTH_TIMEOUT_MS; exit 0 on 2xx or 3xx, else 1.

PORT defaults to the contract port of the service this container runs (found from the
command line of its processes); HEALTH_PATH to the path the contract gives its image (the web
image probes /health), else /ready; HEALTH_HOST to 127.0.0.1; HEALTH_TIMEOUT_MS to 2000."""

import os
import sys
import urllib.error
import urllib.request

LIB = '/usr/local/lib/caracal-standin'
sys.path.insert(0, LIB)


def _profile():
    import _contract
    return _contract.get_profile(os.environ.get('CARACAL_STANDIN_PROFILE') or None)


def service():
    """(port, image path) of the service this container runs; PORT and HEALTH_PATH win."""
    raw, path = os.environ.get('PORT', ''), os.environ.get('HEALTH_PATH', '')
    if raw and path:
        return int(raw), path
    profile = _profile()
    check = profile['healthcheck']
    apps = dict((svc['command'][0], svc) for svc in profile['services'].values()
                if svc.get('kind') == 'app' and svc.get('command'))
    for pid in sorted((p for p in os.listdir('/proc') if p.isdigit()), key=int):
        try:
            with open('/proc/%s/cmdline' % pid, 'rb') as handle:
                args = handle.read().decode('utf-8', 'replace').split('\0')
        except OSError:
            continue
        for arg in args[:4]:
            if arg in apps:
                return (int(raw) if raw else apps[arg]['port'],
                        path or check.get('image_paths', {}).get(apps[arg]['image'], check['path']))
    if raw:
        return int(raw), path or check['path']
    raise SystemExit('healthcheck: no Caracal service process found and PORT is not set')


def main():
    try:
        port, path = service()
        timeout = int(os.environ.get('HEALTH_TIMEOUT_MS') or 2000) / 1000.0
    except ValueError:
        print('healthcheck: PORT and HEALTH_TIMEOUT_MS must be numbers', file=sys.stderr)
        return 1
    host = os.environ.get('HEALTH_HOST') or '127.0.0.1'
    # No redirects followed: a 3xx passes, as Caracal's /healthcheck has it.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
    request = urllib.request.Request('http://%s:%d%s' % (host, port, path), headers={'Connection': 'close'})
    try:
        with opener.open(request, timeout=timeout) as resp:
            return 0 if 200 <= resp.status < 400 else 1
    except urllib.error.HTTPError as exc:
        if 300 <= exc.code < 400:
            return 0
        body = exc.read(512).decode('utf-8', 'replace').strip()
        print('healthcheck: %d %s' % (exc.code, body), file=sys.stderr)
        return 1
    except OSError as exc:
        print('healthcheck: %s' % exc, file=sys.stderr)
        return 1


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


if __name__ == '__main__':
    sys.exit(main())
