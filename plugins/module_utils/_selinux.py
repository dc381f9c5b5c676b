# Copyright (c) 2026 pycgi.hosting contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""SELinux file contexts for CGI trees: one import for the four parts, each in its own file.

- `_selinux_rules`: the rules a root needs and the plan that puts them in place;
- `_selinux_parse`: the text of SELinux files and tools read into plain data;
- `_selinux_lookup`: how libselinux chooses a file's context, for the paths below a root;
- `_selinux_host`: the labels on disk and the commands `selinux_context` runs on the host.

Code that needs one part may import it directly; the names stay importable from here.
"""

# pylint: disable=unused-import
from __future__ import annotations

from ansible_collections.pycgi.hosting.plugins.module_utils._selinux_host import (  # noqa: F401
    DEFAULT_STORE_ROOT,
    XATTR,
    LabelScan,
    nul_list,
    path_bytes,
    path_text,
    read_label,
    relabel_list,
    scan_labels,
)
from ansible_collections.pycgi.hosting.plugins.module_utils._selinux_lookup import (  # noqa: F401
    FTYPE_MODES,
    NO_CONTEXT,
    LookupSpec,
    PolicyRules,
    covers,
    entry_specs,
    file_contexts_path,
    has_meta_chars,
    literal_head,
    lookup,
    lookup_order,
    plain_literal,
    policy_rules,
    python_readable,
    read_policy_rules,
    root_labels,
    spec_stem,
    specs_below,
)
from ansible_collections.pycgi.hosting.plugins.module_utils._selinux_parse import (  # noqa: F401
    effective_types,
    invalid_types,
    os_family,
    parse_file_contexts,
    parse_key_values,
    parse_matchpathcon,
    parse_semanage_list,
    parse_setfiles,
    parse_subs,
    selinux_status,
)
from ansible_collections.pycgi.hosting.plugins.module_utils._selinux_rules import (  # noqa: F401
    ALL_FILES,
    CACHE_SUFFIX,
    FTYPE_FLAGS,
    FTYPE_NAMES,
    PACKAGES,
    PROBE_NAME,
    PROBE_PYC,
    RELABELED_CAP,
    TREE_SUFFIX,
    Operation,
    Plan,
    Probe,
    Rule,
    apply_operations,
    context_type,
    escape_path,
    import_script,
    ineffective_message,
    invalid_types_message,
    is_type_name,
    make_context,
    mismatches,
    missing_message,
    normalize_root,
    normalize_roots,
    outermost,
    plan_absent,
    plan_present,
    policy_facts,
    probes,
    render_file_contexts,
    render_rules,
    required_tools,
    rule_dicts,
    type_check_script,
    wanted_rules,
)
