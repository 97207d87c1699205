//! Waiting for the journal to move. The tasks that read it (each sink, the
//! archive sink, the detection task) sleep until a source bumps the journal
//! head, a poll interval passes (a writer in another process, such as
//! `claudit backfill`, bumps nothing), or the shutdown. At shutdown the
//! sources stop first and the head's channel closes: the wait then falls
//! back to the poll interval, which the shutdown still ends at once.

use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Why [`next`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Something may be new: the head moved, or no source is left to say
    /// so and the poll interval passed.
    Look,
    /// The poll interval passed without news.
    Poll,
    /// The shutdown (or a reload) began.
    Shutdown,
}

/// Waits for `head` to move, for `poll`, or for `cancel`.
pub async fn next(
    head: &mut watch::Receiver<u64>,
    poll: Duration,
    cancel: &CancellationToken,
) -> Wake {
    tokio::select! {
        _ = cancel.cancelled() => Wake::Shutdown,
        changed = head.changed() => match changed {
            Ok(()) => Wake::Look,
            // No source left to wake us: poll, unless shutting down.
            Err(_) => tokio::select! {
                _ = cancel.cancelled() => Wake::Shutdown,
                _ = tokio::time::sleep(poll) => Wake::Look,
            },
        },
        _ = tokio::time::sleep(poll) => Wake::Poll,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The clock is paused: it moves only to the next timer when the
    /// runtime idles, so the elapsed times are exact.
    #[tokio::test(start_paused = true)]
    async fn wakes_on_the_head_the_interval_and_the_shutdown_even_once_closed() {
        let poll = Duration::from_secs(5);
        let cancel = CancellationToken::new();
        let (tx, mut rx) = watch::channel(0u64);
        tx.send_replace(1);
        assert_eq!(next(&mut rx, poll, &cancel).await, Wake::Look);
        let start = tokio::time::Instant::now();
        assert_eq!(next(&mut rx, poll, &cancel).await, Wake::Poll);
        assert_eq!(start.elapsed(), poll);
        // Every source gone: a poll later, look again.
        drop(tx);
        let start = tokio::time::Instant::now();
        assert_eq!(next(&mut rx, poll, &cancel).await, Wake::Look);
        assert_eq!(start.elapsed(), poll);
        // The shutdown ends the wait at once, channel closed or not.
        let waiting = tokio::spawn({
            let cancel = cancel.clone();
            async move { next(&mut rx, poll, &cancel).await }
        });
        tokio::time::sleep(poll / 2).await;
        let cancelled_at = tokio::time::Instant::now();
        cancel.cancel();
        assert_eq!(waiting.await.unwrap(), Wake::Shutdown);
        assert_eq!(cancelled_at.elapsed(), Duration::ZERO);
    }
}
