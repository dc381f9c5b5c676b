# Copyright (c) 2026 pycgi.hosting contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Container test harness callback: writes what an `ansible` or `ansible-playbook` run did to
each host, as JSON, to the file named by PYCGI_RESULTS_FILE:

    {"results": {HOST: the result of the host's last task}, "recap": {HOST: {ok, changed, ...}}}

A result is whole: what the module returned, `diff` and `exception` included, with `failed`,
`skipped` or `unreachable` set to true when that is how the task ended (since ansible-core 2.19
callbacks get a result without Ansible's own `failed` and `skipped` keys). The tree callback
(`ansible --tree`) drops `diff` below -vvv and writes nothing for a skipped task. The recap
counts are those of Ansible's play recap (`failures` is the recap's `failed`).
"""
from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase
from ansible.vars.clean import module_response_deepcopy, strip_internal_keys

DOCUMENTATION = """
name: json_results
type: aggregate
short_description: writes each host's last task result and the recap as JSON (pycgi.hosting tests)
description: Writes the file named by PYCGI_RESULTS_FILE once the run ends.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "json_results"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._results = {}

    def _record(self, result, **outcome):
        recorded = strip_internal_keys(module_response_deepcopy(result.result))
        recorded.update(outcome)
        self._results[result.host.get_name()] = recorded

    def v2_runner_on_ok(self, result):
        self._record(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, failed=True)

    def v2_runner_on_skipped(self, result):
        self._record(result, skipped=True)

    def v2_runner_on_unreachable(self, result):
        self._record(result, unreachable=True)

    def v2_playbook_on_stats(self, stats):
        recap = {host: stats.summarize(host) for host in stats.processed}
        with open(os.environ["PYCGI_RESULTS_FILE"], "w") as handle:
            json.dump({"results": self._results, "recap": recap}, handle, default=str)
