//! User-agent parsing (placeholder until the enrichment work lands).

use std::sync::Arc;

use super::UserAgentInfo;

pub struct UserAgentParser;

impl UserAgentParser {
    pub fn new(_capacity: usize) -> UserAgentParser {
        UserAgentParser
    }
    pub fn parse(&self, _ua: &str) -> Arc<UserAgentInfo> {
        Arc::new(UserAgentInfo::default())
    }
}
