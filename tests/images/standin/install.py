#!/usr/bin/python3
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build step of the caracal-standin image: create every application command path named in
the contract (``/usr/local/bin/sts``, ``/app/api/dist/main.js``, ...) as a link to the
stand-in, so the container command selects the service and the paths exist."""

import os
import sys

LIB = '/usr/local/lib/caracal-standin'
sys.path.insert(0, LIB)

import _contract  # noqa: E402

profile_name = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] else None
profile = _contract.get_profile(profile_name)
problems = _contract.check_profile(profile['name'])
if problems:
    raise SystemExit('contract profile %s is inconsistent: %s' % (profile['name'], '; '.join(problems)))
target = os.path.join(LIB, 'standin.py')
for name, svc in profile['services'].items():
    if svc.get('kind') != 'app' or not svc.get('command'):
        continue
    path = svc['command'][0]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.lexists(path):
        os.unlink(path)
    os.symlink(target, path)
    print('%-12s %s -> %s (port %d)' % (name, path, target, svc['port']))
