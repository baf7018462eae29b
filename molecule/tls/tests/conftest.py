# -*- coding: utf-8 -*-
import os
import sys

import pytest
import testinfra

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', '_shared'))


@pytest.fixture(scope='session')
def hosts():
    """Every instance of the scenario by name (for tests that run a playbook on all of them)."""
    found = testinfra.get_hosts(['ansible://all'], ansible_inventory=os.environ['MOLECULE_INVENTORY_FILE'])
    return {h.backend.host: h for h in found}
