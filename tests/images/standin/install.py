# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build step of the caracal-standin image: create every application command path named in
the contract (``/usr/local/bin/sts``, ``/app/api/dist/main.js``, ...) as a tiny POSIX sh
wrapper that runs the stand-in with that path as its argument, so the container command
selects the service and every path exists and is executable.

Run as ``/usr/bin/python3 install.py [PROFILE]`` from the stand-in's library directory."""

import os
import shlex
import sys

LIB = '/usr/local/lib/caracal-standin'
sys.path.insert(0, LIB)

import _contract  # noqa: E402

WRAPPER = """\
#!/bin/sh
# %(name)s of the caracal-standin test image (written by install.py at build time).
exec /usr/bin/python3 %(standin)s %(path)s "$@"
"""

profile_name = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] else None
profile = _contract.get_profile(profile_name)
problems = _contract.check_profile(profile['name'])
if problems:
    raise SystemExit('contract profile %s is inconsistent: %s' % (profile['name'], '; '.join(problems)))
standin = os.path.join(LIB, 'standin.py')
for name, svc in profile['services'].items():
    if svc.get('kind') != 'app' or not svc.get('command'):
        continue
    path = svc['command'][0]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.lexists(path):
        os.unlink(path)
    with open(path, 'w') as handle:
        handle.write(WRAPPER % {'name': name, 'standin': shlex.quote(standin), 'path': shlex.quote(path)})
    os.chmod(path, 0o755)
    print('%-12s %s -> /usr/bin/python3 %s %s (port %d)' % (name, path, standin, path, svc['port']))
