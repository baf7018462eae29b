# -*- coding: utf-8 -*-
# caracal.hardened test platform: stand-in for ansible-test's pip bootstrap script.
#
# ansible-test creates each sanity virtual environment without pip and downloads get-pip.py from
# ci-files.testing.ansible.com to bootstrap it; that host is unreachable from the project's
# machines. tests/platform/setup.sh installs this file as ~/.ansible/test/cache/get_pip_<ver>.py
# (the cache path ansible-test looks at first) next to the pip wheel it downloaded from PyPI.
# Like get-pip.py it installs the requested pip (and only pip) into the running interpreter:
# it runs pip straight from that wheel, offline.
"""Bootstrap pip into the running interpreter from a wheel beside this file."""

from __future__ import absolute_import, division, print_function

import glob
import os
import subprocess
import sys


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    wheels = sorted(glob.glob(os.path.join(here, 'pip-*-py3-none-any.whl')))
    if not wheels:
        sys.stderr.write('no pip wheel next to %s\n' % __file__)
        return 1
    # get-pip.py options that plain `pip install` does not know.
    args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel')]
    cmd = [sys.executable, os.path.join(wheels[-1], 'pip'), 'install', '--no-index',
           '--find-links', here, '--ignore-installed'] + args
    return subprocess.call(cmd)


if __name__ == '__main__':
    sys.exit(main())
