//! A destination type that exists only in tests: `type = "memory"` keeps
//! the payloads it is sent in a list named by its `list` key. It is the
//! proof that a destination type is one file and one line in the registry:
//! this file, and the `memory::TYPE` line in `sink_types`.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::model::BatchRecord;
use crate::redact::Redactor;
use crate::sinks::contract::{BoxFuture, Destination, Outcome};
use crate::sinks::registry::{OpenContext, SinkSettings, SinkType};
use crate::sinks::settings::SinkKind;
use crate::toml_reader::{Ctx, Table};

pub const TYPE: SinkType = SinkType {
    name: "memory",
    batch: (2, 1_000_000, Duration::ZERO),
    raw_only: false,
    read,
};

#[derive(Debug, Clone)]
pub struct MemorySettings {
    /// The name of the list the payloads go to.
    list: String,
    /// Never sent anywhere; only redacted.
    token: String,
}

/// Every list, by name.
fn lists() -> &'static Mutex<HashMap<String, Vec<String>>> {
    static LISTS: OnceLock<Mutex<HashMap<String, Vec<String>>>> = OnceLock::new();
    LISTS.get_or_init(Default::default)
}

/// What list `name` received so far.
pub fn received(name: &str) -> Vec<String> {
    lists()
        .lock()
        .unwrap()
        .get(name)
        .cloned()
        .unwrap_or_default()
}

fn read(cx: &mut Ctx, t: &mut Table) -> Option<SinkKind> {
    let list = t.required_text(cx, "list", "\"events\"");
    let token = t.required_text(cx, "token", "\"t0ken\"");
    Some(SinkKind::new(MemorySettings {
        list: list?.value,
        token: token?.value,
    }))
}

impl SinkSettings for MemorySettings {
    fn add_secrets(&self, redactor: &mut Redactor) {
        redactor.add(&self.token);
    }

    fn open<'a>(
        &'a self,
        _cx: OpenContext<'a>,
    ) -> BoxFuture<'a, anyhow::Result<Box<dyn Destination>>> {
        Box::pin(async move {
            Ok(Box::new(MemoryDestination {
                list: self.list.clone(),
            }) as Box<dyn Destination>)
        })
    }
}

struct MemoryDestination {
    list: String,
}

impl Destination for MemoryDestination {
    fn deliver<'a>(&'a mut self, records: &'a [BatchRecord]) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let mut lists = lists().lock().unwrap();
            let list = lists.entry(self.list.clone()).or_default();
            list.extend(records.iter().map(|r| r.payload.clone()));
            Outcome::delivered()
        })
    }

    fn healthcheck(&mut self) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async move { Ok(format!("list {} is in memory", self.list)) })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::sync::watch;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::sinks::SinkTask;
    use crate::store::Store;

    /// A type registered with one line is read from the configuration,
    /// checked, redacted and delivered to through the real sink task, like
    /// the types claudit ships.
    #[tokio::test]
    async fn a_type_added_with_one_file_and_one_registry_line_delivers() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        crate::sinks::tests::journal(&db, &["a", "b", "c"]);
        let text = format!(
            "[state]\npath = {:?}\n\n[[sources]]\nname = \"acme\"\napi_key = \"sk-ant-api01-x\"\n\n\
             [[sinks]]\nname = \"mem\"\ntype = \"memory\"\nformat = \"raw\"\nlist = \"proof\"\ntoken = \"t0ken-secret\"\n",
            db.display()
        );
        let config = crate::config::load_str(&text, &dir.path().join("c.toml"), &|_| None)
            .unwrap_or_else(|e| panic!("{e}"));
        let sink = config.sink("mem").unwrap().clone();
        assert_eq!(sink.batch.max_events, 2, "the type's batch defaults apply");

        let checked = crate::sinks::check_connection(&sink).await.unwrap();
        assert_eq!(checked, Ok("list proof is in memory".to_string()));
        let redacted = crate::sinks::redactor_for(&sink).redact("the token t0ken-secret");
        assert!(!redacted.contains("t0ken-secret"), "{redacted}");

        let task = SinkTask {
            config: sink,
            store: crate::store::SharedStore::open(&db).unwrap(),
            journal_head: watch::channel(0).1,
            metrics: Default::default(),
            mapper: Arc::default(),
        };
        let cancel = CancellationToken::new();
        let run = tokio::spawn(task.run(cancel.clone()));
        while Store::open(&db).unwrap().sink_cursor("mem").unwrap().seq < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        cancel.cancel();
        let stats = run.await.unwrap().unwrap();
        assert_eq!(stats.delivered, 3);
        assert_eq!(stats.batches, 2);
        assert_eq!(
            received("proof"),
            [r#"{"id":"a"}"#, r#"{"id":"b"}"#, r#"{"id":"c"}"#]
        );
    }
}
