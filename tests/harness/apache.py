"""Where httpd_pycache puts a root's block on the Debian test image, for each placement, so
that the tests look for it where the configured placement puts it."""
import subprocess

from ansible_collections.pycgi.hosting.plugins.module_utils._apache import drop_in_name, normalize_root

MAIN_CONFIG = "/etc/apache2/apache2.conf"


def stanza_file(root, placement="drop_in", name=None):
    """The file that holds the block for ``root``: its drop-in in conf-available/, or the main config."""
    if placement == "block":
        return MAIN_CONFIG
    return "/etc/apache2/conf-available/%s.conf" % (name or drop_in_name(normalize_root(root)))


def enabled_file(root, name=None):
    """The name Apache reads the drop-in by: the symlink a2enconf makes in conf-enabled/."""
    return "/etc/apache2/conf-enabled/%s.conf" % (name or drop_in_name(normalize_root(root)))


def stanza_text(host, root, placement="drop_in"):
    """The text of the file that holds the block for ``root`` ("" when there is no such file)."""
    proc = host.exec("cat", stanza_file(root, placement), check=False)
    if proc.returncode != 0:
        if "No such file" in proc.stderr:
            return ""
        raise subprocess.CalledProcessError(proc.returncode, proc.args, proc.stdout, proc.stderr)
    return proc.stdout
