#!/usr/bin/env python3
"""Runs Panther's rule tests (shared/samples/panther-expectations.json, records
in shared/samples/activities.ndjson) through `claudit rules test` and checks
every verdict: a test expecting a match must give a finding of the claudit
rule(s) restating that Panther rule, a test expecting none must give none.

Usage: python3 .ci/panther_check.py CLAUDIT_BINARY SHARED_DIR FINDINGS_OUT
Writes every finding produced to FINDINGS_OUT (for the OCSF validator) and
prints 'N passed, M failed'; exits 1 if any verdict is wrong.
"""
import json
import os
import subprocess
import sys

# Panther rule id -> the claudit rules that restate it.
PANTHER_TO_CLAUDIT = {
    "Anthropic.Activity.Admin.API.Key.Created": ["admin-api-key-created"],
    "Anthropic.Activity.Admin.API.Key.Deleted": ["admin-api-key-deleted"],
    "Anthropic.Activity.Artifact.Shared.Publicly": ["artifact-shared-publicly"],
    "Anthropic.Activity.Excessive.Chat.Access.Failures": ["excessive-chat-access-failures"],
    "Anthropic.Activity.Integration.Connected": ["integration-user-connected"],
    "Anthropic.Activity.IP.Restriction.Deleted": ["ip-restriction-deleted"],
    "Anthropic.Activity.MCP.Server.Created": ["mcp-server-created"],
    "Anthropic.Activity.MCP.Server.Deleted": ["mcp-server-deleted"],
    "Anthropic.Activity.Organization.Settings.Updated": ["org-settings-updated"],
    "Anthropic.Activity.Org.User.Deleted": ["org-user-deleted"],
    "Anthropic.Activity.Primary.Owner.Transferred": ["primary-owner-transferred"],
    "Anthropic.Activity.Role.Granted": ["role-assignment-granted"],
    "Anthropic.Activity.Service.Key.Created": ["service-key-created"],
    "Anthropic.Activity.Service.Key.Revoked": ["service-key-revoked"],
    "Anthropic.Activity.Spend.Limit.Deleted": ["spend-limit-deleted"],
    "Anthropic.Activity.SSO.Disabled": ["sso-disabled", "sso-connection-removed"],
    "Anthropic.Activity.SSO.Login.Failed": ["sso-login-failed"],
}


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    binary, shared, out_path = sys.argv[1:]
    here = os.path.dirname(os.path.abspath(__file__))
    config = os.path.join(here, "panther.toml")
    # rules test validates the settings without this machine's paths: the
    # [state] directory of panther.toml need not exist.
    with open(os.path.join(shared, "samples", "panther-expectations.json")) as f:
        expectations = json.load(f)
    with open(os.path.join(shared, "samples", "activities.ndjson")) as f:
        records = [line for line in f.read().splitlines() if line.strip()]
    passed = failed = 0
    with open(out_path, "w") as out:
        for e in expectations:
            rule = e["rule_id"]
            claudit_rules = PANTHER_TO_CLAUDIT.get(rule)
            if claudit_rules is None:
                print(f"FAIL {rule}: no claudit rule restates it")
                failed += 1
                continue
            record = records[e["record_index_in_activities_ndjson"]]
            run = subprocess.run(
                [binary, "--log-format", "text", "rules", "test", "--config", config],
                input=record + "\n", capture_output=True, text=True, check=False)
            if run.returncode != 0:
                print(f"FAIL {rule} / {e['test_name']}: claudit rules test exited {run.returncode}: {run.stderr.strip()}")
                failed += 1
                continue
            findings = [json.loads(l) for l in run.stdout.splitlines() if l.strip()]
            for finding in findings:
                out.write(json.dumps(finding) + "\n")
            fired = sorted({f["finding_info"]["analytic"]["uid"] for f in findings} & set(claudit_rules))
            verdict = bool(fired)
            ok = verdict == e["expected_result"]
            status = "ok  " if ok else "FAIL"
            print(f"{status} {rule} / {e['test_name']}: expected {e['expected_result']}, claudit {verdict} {fired or ''}")
            passed += ok
            failed += not ok
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
