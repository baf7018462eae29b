# -*- coding: utf-8 -*-
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""caracal.hardened.report_files: the directory and its files on the controller, in one task."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat
from unittest import mock

import pytest
from ansible.errors import AnsibleActionFail

from ansible_collections.caracal.hardened.plugins.action.report_files import ActionModule

JSON = '{\n  "passed": true\n}\n'
MARKDOWN = '# Caracal hardening verification: web1\n\n| Verdict | **PASS** |\n'


def run(args, check=False):
    task = mock.MagicMock()
    task.args = args
    task.check_mode = check
    task.async_val = 0
    action = ActionModule(task, mock.MagicMock(), mock.MagicMock(), loader=None, templar=None, shared_loader_obj=None)
    return action.run(task_vars={})


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(autouse=True)
def umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_creates_the_directory_and_writes_both_files(tmp_path):
    dest = tmp_path / 'reports' / 'web1'
    result = run({'dest': str(dest), 'files': {'caracal-verify.json': JSON, 'caracal-verify.md': MARKDOWN}})
    assert result['changed'] is True and result['dest'] == str(dest)
    assert result['files'] == [str(dest / 'caracal-verify.json'), str(dest / 'caracal-verify.md')]
    assert (dest / 'caracal-verify.json').read_text() == JSON and (dest / 'caracal-verify.md').read_text() == MARKDOWN
    assert mode(dest) == 0o750 and mode(dest.parent) == 0o750
    assert mode(dest / 'caracal-verify.json') == 0o640 and mode(dest / 'caracal-verify.md') == 0o640
    assert sorted(os.listdir(dest)) == ['caracal-verify.json', 'caracal-verify.md']  # no temporary file left


def test_a_second_run_with_the_same_content_changes_nothing(tmp_path):
    args = {'dest': str(tmp_path), 'files': {'a.json': JSON}, 'mode': '0600', 'directory_mode': '0700'}
    assert run(args)['changed'] is True
    inode = os.stat(tmp_path / 'a.json').st_ino
    assert run(args)['changed'] is False
    assert os.stat(tmp_path / 'a.json').st_ino == inode


def test_new_content_replaces_the_file_and_modes_are_enforced(tmp_path):
    (tmp_path / 'a.md').write_text('old')
    os.chmod(str(tmp_path / 'a.md'), 0o666)
    os.chmod(str(tmp_path), 0o777)
    result = run({'dest': str(tmp_path), 'files': {'a.md': MARKDOWN}})
    assert result['changed'] is True and (tmp_path / 'a.md').read_text() == MARKDOWN
    assert mode(tmp_path / 'a.md') == 0o640 and mode(tmp_path) == 0o750
    os.chmod(str(tmp_path / 'a.md'), 0o644)
    assert run({'dest': str(tmp_path), 'files': {'a.md': MARKDOWN}})['changed'] is True
    assert mode(tmp_path / 'a.md') == 0o640


def test_a_link_is_replaced_not_followed(tmp_path):
    target = tmp_path / 'elsewhere'
    target.write_text('keep me')
    (tmp_path / 'out').mkdir()
    os.symlink(str(target), str(tmp_path / 'out' / 'a.json'))
    run({'dest': str(tmp_path / 'out'), 'files': {'a.json': JSON}})
    assert not os.path.islink(str(tmp_path / 'out' / 'a.json')) and target.read_text() == 'keep me'


def test_check_mode_writes_nothing(tmp_path):
    dest = tmp_path / 'new'
    result = run({'dest': str(dest), 'files': {'a.json': JSON}}, check=True)
    assert result['changed'] is True and not dest.exists()
    run({'dest': str(dest), 'files': {'a.json': JSON}})
    assert run({'dest': str(dest), 'files': {'a.json': JSON}}, check=True)['changed'] is False
    assert run({'dest': str(dest), 'files': {'a.json': JSON + ' '}}, check=True)['changed'] is True
    assert (dest / 'a.json').read_text() == JSON


@pytest.mark.parametrize('args, message', [
    ({'files': {'../a': 'x'}}, "files: '../a' is not a file name"),
    ({'files': {'sub/a': 'x'}}, "files: 'sub/a' is not a file name"),
    ({'files': {'a': {'not': 'text'}}}, 'files: the content of a must be a string'),
    ({'files': {'a': 'x'}, 'mode': 'rw-r-----'}, 'mode must be an octal mode'),
    ({'files': {'a': 'x'}, 'directory_mode': '017777'}, 'directory_mode must be an octal mode'),
])
def test_bad_arguments_fail_before_anything_is_written(tmp_path, args, message):
    dest = tmp_path / 'never'
    with pytest.raises(AnsibleActionFail, match=message.replace('.', r'\.')):
        run(dict(args, dest=str(dest)))
    assert not dest.exists()


def test_a_file_where_the_directory_should_be_fails(tmp_path):
    (tmp_path / 'taken').write_text('')
    with pytest.raises(AnsibleActionFail, match='is not a directory'):
        run({'dest': str(tmp_path / 'taken' / 'web1'), 'files': {'a': 'x'}})
    (tmp_path / 'dir').mkdir()
    (tmp_path / 'dir' / 'a').mkdir()
    with pytest.raises(AnsibleActionFail, match='is a directory'):
        run({'dest': str(tmp_path / 'dir'), 'files': {'a': 'x'}})


def test_a_failed_write_fails_clearly_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    (tmp_path / 'a.json').write_text('old')

    def refuse(src, dst):
        raise PermissionError(13, 'Permission denied', dst)
    monkeypatch.setattr(os, 'replace', refuse)
    with pytest.raises(AnsibleActionFail, match='cannot write the files in %s: .*Permission denied' % tmp_path):
        run({'dest': str(tmp_path), 'files': {'a.json': JSON}})
    assert os.listdir(str(tmp_path)) == ['a.json'] and (tmp_path / 'a.json').read_text() == 'old'
