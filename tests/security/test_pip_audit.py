"""pip-audit: every pin in requirements.txt against PyPI's advisory data (its per-release JSON, the
`vulnerabilities` field). It installs nothing (--no-deps --disable-pip: only the pins are looked up).

An advisory may be ignored in deploy/pip-audit-ignore.txt, one a line: its id, then the reason (required).
When PyPI cannot be reached, or answers without any advisory data, the test says so in one line and skips.
"""
import json
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from tests.system.processes import ROOT

IGNORE_FILE = ROOT / "deploy" / "pip-audit-ignore.txt"
PYPI_PROBE = "https://pypi.org/pypi/pip/json"


def ignored_advisories() -> dict[str, str]:
    """{advisory id: reason}; a line without a reason is an error, not a silent ignore."""
    ignored = {}
    for number, line in enumerate(IGNORE_FILE.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        advisory, _, reason = line.partition(" ")
        if not reason.strip():
            raise AssertionError(f"{IGNORE_FILE.name}:{number}: {advisory} is ignored without a reason")
        ignored[advisory] = reason.strip()
    return ignored


def test_the_ignore_file_parses():
    assert all(reason for reason in ignored_advisories().values())


def test_no_pinned_requirement_has_a_known_vulnerability():
    try:
        urllib.request.urlopen(PYPI_PROBE, timeout=10).close()
    except (OSError, urllib.error.URLError) as exc:
        pytest.skip(f"pip-audit skipped: PyPI is unreachable ({exc})")
    ignore_args = [arg for advisory in ignored_advisories() for arg in ("--ignore-vuln", advisory)]
    result = subprocess.run(
        [sys.executable, "-m", "pip_audit", "-r", "requirements.txt", "--no-deps", "--disable-pip",
         "--vulnerability-service", "pypi", "--progress-spinner", "off", "--format", "json", *ignore_args],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        if any(word in result.stderr for word in ("ConnectionError", "Max retries", "timed out", "Temporary failure")):
            pytest.skip(f"pip-audit skipped: PyPI did not answer ({result.stderr.strip().splitlines()[-1][:200]})")
        raise AssertionError(f"pip-audit failed (exit {result.returncode}): {result.stderr[-2000:]}") from None

    packages = report["dependencies"]
    skipped = {p["name"]: p["skip_reason"] for p in packages if "skip_reason" in p}
    if packages and len(skipped) == len(packages):
        # A PyPI mirror that serves the project pages but not the per-release JSON pip-audit reads.
        pytest.skip(f"pip-audit skipped: PyPI gave no advisory data for any of the {len(packages)} pins "
                    f"(e.g. {next(iter(skipped.values()))})")
    found = [f"{p['name']} {p['version']}: {v['id']} (fixed in {', '.join(v['fix_versions']) or 'no release yet'})"
             for p in packages for v in p.get("vulns", [])]
    assert not found, "known vulnerabilities in requirements.txt (upgrade the pin, or ignore with a reason in " \
                      f"{IGNORE_FILE.name}):\n" + "\n".join(found)
    assert not skipped, f"pins pip-audit could not look up on PyPI: {skipped}"
