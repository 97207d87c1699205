"""Exports the whole activity feed to NDJSON with claude-compliance-sdk, the
way its README shows (ComplianceClient(base_url=...) and
client.activities.iter(limit=...)), and reports what it cost.

The SDK has no NDJSON export helper: its documented way to read the feed is
`client.activities.iter()`, which yields `Activity` dataclasses (id,
created_at, type, organization_id, organization_uuid, actor, and the
type-specific fields in `extra`). Each one is written back as the record the
API sent (the known fields plus `extra`), one JSON object per line, and the
file is fsynced once at the end.

Usage: peer_sdk_export.py BASE_URL OUT.ndjson (key from
ANTHROPIC_COMPLIANCE_ACCESS_KEY). Last line:
PEER_RESULT activities=N wall_s=S cpu_s=C peak_rss_kb=K
"""

import json
import os
import resource
import sys
import time

from claude_compliance_sdk import ComplianceClient


def main() -> None:
    base_url, out_path = sys.argv[1], sys.argv[2]
    started = time.perf_counter()
    count = 0
    # rate_limit_rpm=0: no local window; the simulator runs unthrottled
    # (the server's budget headers would still be honoured).
    with ComplianceClient(base_url=base_url, rate_limit_rpm=0) as client, open(
        out_path, "w", encoding="utf-8"
    ) as out:
        for activity in client.activities.iter(limit=5000):
            record = {
                "id": activity.id,
                "created_at": activity.created_at,
                "type": activity.type,
                "organization_id": activity.organization_id,
                "organization_uuid": activity.organization_uuid,
                "actor": activity.actor,
                **activity.extra,
            }
            out.write(json.dumps(record, separators=(",", ":")))
            out.write("\n")
            count += 1
        out.flush()
        os.fsync(out.fileno())
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        f"PEER_RESULT activities={count} wall_s={wall:.3f} "
        f"cpu_s={usage.ru_utime + usage.ru_stime:.3f} peak_rss_kb={usage.ru_maxrss}"
    )


if __name__ == "__main__":
    main()
