use super::*;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, v.parse().unwrap());
    }
    h
}

#[test]
fn key_kind_from_prefix() {
    let kind = |k: &str| KeyKind::of(&SecretString::from(k.to_string()));
    assert_eq!(kind("sk-ant-api01-abc"), KeyKind::ComplianceAccess);
    assert_eq!(kind(" sk-ant-admin01-abc\n"), KeyKind::Admin);
    assert_eq!(kind("sk-ant-api03-abc"), KeyKind::ClaudeApi);
    assert_eq!(kind("sk-ant-oat01-abc"), KeyKind::OtherAnthropic);
    assert_eq!(kind("hunter2"), KeyKind::Unrecognized);
    assert!(KeyKind::Admin.can_read_feed() && !KeyKind::ClaudeApi.can_read_feed());
    assert!(!KeyKind::ClaudeApi.to_string().contains("abc"));
}

#[test]
fn hints_name_the_likely_cause() {
    assert_eq!(
        unauthorized_hint(401, KeyKind::ClaudeApi, "invalid"),
        HINT_401_CLAUDE_API_KEY
    );
    assert_eq!(
        unauthorized_hint(401, KeyKind::ComplianceAccess, "invalid or revoked"),
        HINT_401_REJECTED
    );
    assert_eq!(
        unauthorized_hint(401, KeyKind::Unrecognized, "invalid"),
        HINT_401_UNKNOWN_KEY
    );
    assert_eq!(
        unauthorized_hint(
            401,
            KeyKind::ComplianceAccess,
            "does not have the `read:compliance_activities` scope"
        ),
        HINT_403_SCOPE
    );
    assert_eq!(
        unauthorized_hint(403, KeyKind::Admin, "Missing required scopes"),
        HINT_403_ADMIN
    );
    assert_eq!(
        unauthorized_hint(
            403,
            KeyKind::ComplianceAccess,
            "Missing required scopes. Got: [] Needed: [x]"
        ),
        HINT_403_SCOPE
    );
    assert_eq!(
        unauthorized_hint(403, KeyKind::ComplianceAccess, "Forbidden"),
        HINT_403_OTHER
    );
    for hint in [
        HINT_401_REJECTED,
        HINT_401_CLAUDE_API_KEY,
        HINT_401_UNKNOWN_KEY,
    ] {
        assert!(
            hint.contains("sk-ant-api01-")
                && hint.contains("sk-ant-admin01-")
                && hint.contains("sk-ant-api03-")
        );
    }
    assert!(HINT_401_REJECTED.contains("revoked"));
    for hint in [HINT_403_ADMIN, HINT_403_OTHER] {
        assert!(
            hint.contains("created after the Compliance API was enabled")
                || hint.contains("created before")
        );
        assert!(hint.contains("disabled for the organization"));
    }
    assert!(HINT_403_SCOPE.contains("read:compliance_activities"));
}

#[test]
fn retry_after_in_seconds_dates_and_millis() {
    let now = DateTime::parse_from_rfc3339("2026-04-21T14:38:00Z")
        .unwrap()
        .to_utc();
    assert_eq!(
        retry_after(&headers(&[("retry-after", "25")]), now),
        Some(Duration::from_secs(25))
    );
    assert_eq!(
        retry_after(&headers(&[("retry-after", "1.5")]), now),
        Some(Duration::from_millis(1500))
    );
    assert_eq!(
        retry_after(
            &headers(&[("retry-after", "Tue, 21 Apr 2026 14:38:30 GMT")]),
            now
        ),
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        retry_after(
            &headers(&[("retry-after", "2"), ("retry-after-ms", "2500")]),
            now
        ),
        Some(Duration::from_millis(2500))
    );
    assert_eq!(retry_after(&headers(&[("retry-after", "soon")]), now), None);
    assert_eq!(retry_after(&headers(&[("retry-after", "-3")]), now), None);
    assert_eq!(retry_after(&HeaderMap::new(), now), None);
}

#[test]
fn error_envelope_is_parsed_leniently() {
    let e = ErrorEnvelope::parse(
        br#"{"type":"error","error":{"type":"not_found_error","message":"Not found","details":{"error_visibility":"user_facing"}},"request_id":"req_9"}"#,
    );
    let body = e.error.unwrap();
    assert_eq!(body.kind.as_deref(), Some("not_found_error"));
    assert_eq!(body.message.as_deref(), Some("Not found"));
    assert_eq!(e.request_id.as_deref(), Some("req_9"));
    let e = ErrorEnvelope::parse(b"<html>Bad gateway</html>");
    assert!(e.error.is_none() && e.request_id.is_none());
    let e = ErrorEnvelope::parse(br#"{"error":"flat string"}"#);
    assert!(e.error.is_none());
}

#[test]
fn redaction_removes_keys() {
    assert_eq!(
        redact_anthropic_keys("bad key sk-ant-api01-AbC_d-9 given, also sk-ant-admin01-x."),
        "bad key sk-ant-[REDACTED] given, also sk-ant-[REDACTED]."
    );
    assert_eq!(redact_anthropic_keys("no key here"), "no key here");
    assert_eq!(redact_anthropic_keys("sk-ant-"), "sk-ant-[REDACTED]");
}

#[test]
fn body_excerpt_is_one_bounded_line() {
    assert_eq!(body_excerpt(b""), "(empty body)");
    assert_eq!(
        body_excerpt(b"<h1>502\n  Bad Gateway</h1>"),
        "<h1>502 Bad Gateway</h1>"
    );
    let long = vec![b'x'; 2000];
    assert_eq!(body_excerpt(&long).chars().count(), MAX_MESSAGE_CHARS + 1);
}

#[test]
fn retryable_statuses() {
    for code in [408, 409, 429, 500, 502, 503, 504, 529] {
        assert!(is_retryable_status(code), "{code}");
    }
    for code in [400, 401, 403, 404, 405, 413, 422] {
        assert!(!is_retryable_status(code), "{code}");
    }
}

#[test]
fn backoff_stays_between_one_and_sixty_seconds_without_a_cap() {
    use backon::BackoffBuilder as _;
    let delays: Vec<Duration> = backoff().build().take(200).collect();
    assert_eq!(delays.len(), 200, "no retry cap");
    assert!(
        delays
            .iter()
            .all(|d| *d >= Duration::from_secs(1) && *d <= Duration::from_secs(60))
    );
    assert!(delays[0] < Duration::from_secs(2));
    assert!(delays[150] >= Duration::from_secs(30));
}
