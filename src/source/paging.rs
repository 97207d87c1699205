//! Whether a page's paging fields can justify moving a window on: a page
//! that says there is more (`has_more: true`) must hand back a cursor that
//! moves on. Two broken answers have been seen: `last_id` equal to the
//! `after_id` just sent (followed, it asks for the same page forever, the
//! whole rate budget spent on one request) and `last_id: null` (taken as
//! the end, the rest of the window would be dropped). Either is a protocol
//! fault: nothing of the page is committed, the window keeps its last
//! committed position, and it is asked again after a backoff on the
//! client's retry schedule.

use std::time::Duration;

use backon::BackoffBuilder as _;

use super::client::{self, Page};

/// A page whose paging fields cannot justify any position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PagingFault {
    #[error(
        "the Compliance API answered has_more: true with last_id equal to the after_id cursor just sent ({cursor}), so the walk cannot move on{}",
        rid(request_id)
    )]
    CursorRepeated {
        cursor: String,
        request_id: Option<String>,
    },
    #[error(
        "the Compliance API answered has_more: true without a last_id to continue from, so the rest of the window cannot be reached{}",
        rid(request_id)
    )]
    NoCursor { request_id: Option<String> },
}

impl PagingFault {
    pub fn request_id(&self) -> Option<&str> {
        match self {
            PagingFault::CursorRepeated { request_id, .. }
            | PagingFault::NoCursor { request_id } => request_id.as_deref(),
        }
    }
}

fn rid(request_id: &Option<String>) -> String {
    request_id
        .as_deref()
        .map(|id| format!(" (request-id {id})"))
        .unwrap_or_default()
}

/// The longest cursor quoted in a fault: the API's bytes, kept for the
/// operator (and Anthropic support) to recognise, bounded like any.
const MAX_CURSOR_CHARS: usize = 80;

fn shortened(cursor: &str) -> String {
    match cursor.char_indices().nth(MAX_CURSOR_CHARS) {
        Some((end, _)) => format!("{}...", &cursor[..end]),
        None => cursor.to_string(),
    }
}

/// Checks the paging fields of `page`, the answer to a request sent with
/// `after_id = sent_cursor`.
pub fn check(sent_cursor: Option<&str>, page: &Page) -> Result<(), PagingFault> {
    if !page.has_more {
        return Ok(());
    }
    let request_id = page.request_id.clone();
    match page.last_id.as_deref() {
        None | Some("") => Err(PagingFault::NoCursor { request_id }),
        Some(last) if Some(last) == sent_cursor => Err(PagingFault::CursorRepeated {
            cursor: shortened(last),
            request_id,
        }),
        Some(_) => Ok(()),
    }
}

/// How long to wait before asking again after the window's `faults`-th
/// consecutive fault: the client's retry schedule (1 s doubling to 30 s,
/// plus up to as much again of jitter), so a broken feed never gets more
/// requests than a failing one.
pub fn backoff(faults: i64) -> Duration {
    let attempt = faults.clamp(1, 64) as usize - 1;
    client::backoff()
        .build()
        .nth(attempt)
        .unwrap_or(Duration::from_secs(30))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(has_more: bool, last_id: Option<&str>) -> Page {
        Page {
            activities: Vec::new(),
            has_more,
            first_id: None,
            last_id: last_id.map(str::to_string),
            request_id: Some("req_1".into()),
            attempt_request_ids: vec!["req_1".into()],
        }
    }

    #[test]
    fn a_cursor_that_moves_on_or_the_last_page_is_fine() {
        assert_eq!(check(None, &page(true, Some("b"))), Ok(()));
        assert_eq!(check(Some("a"), &page(true, Some("b"))), Ok(()));
        // The last page may carry any cursor, or none.
        assert_eq!(check(Some("a"), &page(false, Some("a"))), Ok(()));
        assert_eq!(check(Some("a"), &page(false, None)), Ok(()));
    }

    #[test]
    fn more_without_a_cursor_that_moves_on_is_a_fault_naming_the_request() {
        let repeated = check(Some("a"), &page(true, Some("a"))).unwrap_err();
        assert!(matches!(repeated, PagingFault::CursorRepeated { .. }));
        assert_eq!(repeated.request_id(), Some("req_1"));
        assert!(repeated.to_string().contains("(request-id req_1)"));
        for last in [None, Some("")] {
            let missing = check(Some("a"), &page(true, last)).unwrap_err();
            assert!(matches!(missing, PagingFault::NoCursor { .. }), "{missing}");
        }
        assert!(check(None, &page(true, None)).is_err());
        // A huge cursor is quoted shortened.
        let long = "c".repeat(10_000);
        let fault = check(Some(&long), &page(true, Some(&long))).unwrap_err();
        assert!(fault.to_string().len() < 400, "{fault}");
    }

    #[test]
    fn the_backoff_follows_the_retry_schedule() {
        for (faults, at_least) in [(1, 1), (2, 2), (3, 4), (4, 8), (6, 30), (40, 30)] {
            let d = backoff(faults);
            assert!(
                d >= Duration::from_secs(at_least) && d <= Duration::from_secs(2 * at_least),
                "fault {faults}: {d:?}"
            );
        }
    }
}
