//! The baseline of the API-budget tests and benchmark: how the community
//! SDK reads a range, one query with the range's bounds and pages of 5,000,
//! following `last_id` as `after_id` while `has_more`, counted at the
//! simulator that answers it.

use claudit::sim::Simulator;

/// What reading `[since, until)` the SDK's way cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdkWalk {
    /// Requests the simulator answered.
    pub requests: usize,
    /// Activities read.
    pub activities: usize,
}

/// Reads `[since, until)` (RFC 3339) from `sim` with `key`, the SDK's way.
pub async fn sdk_walk(sim: &Simulator, key: &str, since: &str, until: &str) -> SdkWalk {
    let http = reqwest::Client::new();
    let before = sim.requests().len();
    let mut after: Option<String> = None;
    let mut activities = 0;
    loop {
        let mut query = vec![
            ("created_at.gte", since.to_string()),
            ("created_at.lt", until.to_string()),
            ("limit", "5000".to_string()),
        ];
        if let Some(a) = &after {
            query.push(("after_id", a.clone()));
        }
        let page: serde_json::Value = http
            .get(format!("{}/v1/compliance/activities", sim.base_url()))
            .header("x-api-key", key)
            .header("anthropic-version", "2023-06-01")
            .query(&query)
            .send()
            .await
            .expect("the simulator answers")
            .json()
            .await
            .expect("a JSON page");
        activities += page["data"].as_array().map_or(0, Vec::len);
        match (page["has_more"].as_bool(), page["last_id"].as_str()) {
            (Some(true), Some(last)) => after = Some(last.to_string()),
            _ => break,
        }
    }
    SdkWalk {
        requests: sim.requests().len() - before,
        activities,
    }
}
