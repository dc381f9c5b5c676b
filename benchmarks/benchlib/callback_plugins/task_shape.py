# Copyright (c) 2026 pycgi.hosting contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark helper callback: records each task of a run (action, outcome, loop items, wall
time, the module arguments of its first item) as JSON lines in the file named by
PYCGI_BENCH_TASK_LOG.

B6 uses it to build the no-op play with the same shape as the site.yml re-run (a ping for
each task that ran a module on the host, as many loop items, a controller-side no-op for
each controller-side task, a skipped task for each skipped one) and to show where the time
of a re-run goes.
"""
from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: task_shape
type: aggregate
short_description: records the shape and wall time of each task (pycgi.hosting benchmarks)
description: Writes one JSON line per task to the file named by PYCGI_BENCH_TASK_LOG.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_shape"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._path = os.environ.get("PYCGI_BENCH_TASK_LOG")
        self._started = {}

    def _write(self, record):
        if self._path:
            with open(self._path, "a") as handle:
                handle.write(json.dumps(record) + "\n")

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._started[task._uuid] = time.monotonic()

    def v2_playbook_on_handler_task_start(self, task):
        self._started[task._uuid] = time.monotonic()

    def _record(self, result, outcome):
        task = result._task
        items = result._result.get("results")
        # The arguments as the module got them (templated), when they are: a loop's task
        # keeps its "{{ item }}" templates here, and those are not recorded.
        try:
            module_args = json.loads(json.dumps(dict(task.args), default=str))
        except (TypeError, ValueError):
            module_args = None
        if module_args is not None:
            module_args = dict((k, v) for k, v in module_args.items()
                               if not k.startswith("_ansible") and "__omit_place_holder__" not in json.dumps(v))
            if "{{" in json.dumps(module_args):
                module_args = None
        self._write({
            "module_args": module_args,
            "name": task.get_name(),
            "action": task.action,
            "outcome": outcome,
            "items": len(items) if isinstance(items, list) else None,
            "seconds": time.monotonic() - self._started.get(task._uuid, time.monotonic()),
        })

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed")
