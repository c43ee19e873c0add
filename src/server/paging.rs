//! Streams a keyset-paged scan to a client as pages: reads ahead one chunk while the
//! previous one is sent, stops when the client goes away, and ends with UNAVAILABLE (and the
//! token to resume from) when the server shuts down.

use std::pin::Pin;

use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::context::Context;
use super::error::ServiceError;
use crate::domain::inventory::Record;
use crate::domain::paging::Cursor;
use crate::store::{Scan, Store, StoreResult};
use crate::wire::ListRequest;

pub type PageStream<P> = Pin<Box<dyn Stream<Item = Result<P, Status>> + Send>>;

/// Records read from storage per query; pages are cut from these chunks. Small for plain
/// listings (a keyset step costs nothing, and small chunks keep memory flat); large for box
/// searches, where every query re-runs the R*Tree search and sorts by id, so a 1% box of a
/// million lamps should be one query, not five.
const CHUNK: usize = 2_000;
const AREA_CHUNK: usize = 100_000;
/// Pages buffered ahead of a slow client.
const PAGES_IN_FLIGHT: usize = 4;

/// Bytes held back from the message limit for what a page carries besides its items (the
/// page token, the snapshot position) and for each item's tag and length prefix.
const PAGE_ENVELOPE: usize = 1_024;

/// The most a page's items may encode to under a message limit of `max_message_bytes`.
pub fn page_bytes(max_message_bytes: usize) -> usize {
    max_message_bytes
        .saturating_sub(PAGE_ENVELOPE)
        .max(PAGE_ENVELOPE)
}

/// Cuts the next page off `items`: at most `count` items and `bytes` encoded bytes, so no
/// reply can exceed the message limit whatever was stored. A page always takes one item: every
/// stored text has a length limit, so one record is far smaller than any page.
pub fn next_page<T>(
    items: &mut std::iter::Peekable<impl Iterator<Item = T>>,
    count: usize,
    bytes: usize,
    size: impl Fn(&T) -> usize,
) -> Vec<T> {
    let mut page = Vec::new();
    let mut used = 0usize;
    while page.len() < count {
        let Some(next) = items.peek() else { break };
        // The tag and length prefix of an item in a repeated field.
        let cost = size(next) + 6;
        if !page.is_empty() && used + cost > bytes {
            break;
        }
        used += cost;
        page.extend(items.next());
    }
    page
}

/// One page of a listing read whole (reference data, tariffs), as `(id, message)` in id order:
/// the items after the token's id that fit in `bytes`, and the token for the rest (empty when
/// none is left).
pub fn page_after<M: prost::Message>(
    items: Vec<(i64, M)>,
    after: i64,
    bytes: usize,
) -> (Vec<M>, String) {
    let mut rest = items.into_iter().filter(|(id, _)| *id > after).peekable();
    let page = next_page(&mut rest, usize::MAX, bytes, |(_, m): &(i64, M)| {
        m.encoded_len()
    });
    let token = match (rest.peek(), page.last()) {
        (Some(_), Some((last, _))) => Cursor { after_id: *last }.to_token(),
        _ => String::new(),
    };
    (page.into_iter().map(|(_, m)| m).collect(), token)
}

/// How one record type is read and packed into pages.
pub struct Pager<R, M, P> {
    pub fetch: fn(&dyn Store, &Scan) -> StoreResult<Vec<R>>,
    pub item: fn(R) -> M,
    pub page: fn(Vec<M>, String) -> P,
}

struct Chunk<M> {
    items: Vec<(i64, M)>,
    complete: bool,
}

pub fn stream<R, M, P>(
    context: &Context,
    request: ListRequest,
    pager: Pager<R, M, P>,
) -> PageStream<P>
where
    R: Record + Send + 'static,
    M: prost::Message + Send + 'static,
    P: Send + 'static,
{
    let (sender, receiver) = mpsc::channel(PAGES_IN_FLIGHT);
    let context = context.clone();
    tokio::spawn(async move {
        if let Err(status) = produce(context, request, pager, &sender).await {
            let _ = sender.send(Err(status)).await;
        }
    });
    Box::pin(ReceiverStream::new(receiver))
}

async fn produce<R, M, P>(
    context: Context,
    request: ListRequest,
    pager: Pager<R, M, P>,
    sender: &mpsc::Sender<Result<P, Status>>,
) -> Result<(), Status>
where
    R: Record + Send + 'static,
    M: prost::Message + Send + 'static,
    P: Send + 'static,
{
    let mut remaining = request.limit.unwrap_or(u64::MAX);
    let mut scan = request.scan;
    let mut pending = Some(read_chunk(&context, scan, remaining, &pager));
    while let Some(reading) = pending.take() {
        let chunk = reading
            .await
            .map_err(|e| Status::from(ServiceError::Internal(format!("page reader failed: {e}"))))?
            .map_err(Status::from)?;
        remaining -= chunk.items.len() as u64;
        let last_id = chunk.items.last().map(|(id, _)| *id);
        let finished = chunk.complete || remaining == 0;
        if let (false, Some(after_id)) = (finished, last_id) {
            scan.after_id = after_id;
            pending = Some(read_chunk(&context, scan, remaining, &pager));
        }
        let mut items = chunk.items.into_iter().peekable();
        while items.peek().is_some() {
            let page = next_page(
                &mut items,
                request.page_size,
                context.page_bytes,
                |(_, m): &(i64, M)| m.encoded_len(),
            );
            let page_last = page.last().map(|(id, _)| *id).unwrap_or_default();
            let token = if finished && items.peek().is_none() {
                String::new()
            } else {
                Cursor {
                    after_id: page_last,
                }
                .to_token()
            };
            let message = (pager.page)(page.into_iter().map(|(_, m)| m).collect(), token);
            tokio::select! {
                biased;
                () = context.shutdown.cancelled() => {
                    return Err(ServiceError::unavailable(format!(
                        "the server is shutting down; resume with page_token {:?}",
                        Cursor { after_id: page_last }.to_token()
                    )).into());
                }
                sent = sender.send(Ok(message)) => {
                    if sent.is_err() {
                        return Ok(()); // the client went away
                    }
                }
            }
        }
    }
    Ok(())
}

fn read_chunk<R, M, P>(
    context: &Context,
    scan: Scan,
    remaining: u64,
    pager: &Pager<R, M, P>,
) -> tokio::task::JoinHandle<Result<Chunk<M>, ServiceError>>
where
    R: Record + Send + 'static,
    M: Send + 'static,
    P: Send + 'static,
{
    let chunk = if scan.area.is_some() {
        AREA_CHUNK
    } else {
        CHUNK
    };
    let limit = chunk.min(usize::try_from(remaining).unwrap_or(usize::MAX));
    // One record more than needed tells whether anything follows, so the last page can say so.
    let scan = Scan {
        limit: limit.saturating_add(1),
        ..scan
    };
    let (fetch, item) = (pager.fetch, pager.item);
    let context = context.clone();
    // Spawned, not merely built, so the next chunk is read while this one is being sent.
    tokio::spawn(async move {
        context
            .blocking(move |store| {
                let mut records = fetch(store, &scan)?;
                let complete = records.len() <= limit;
                records.truncate(limit);
                Ok(Chunk {
                    complete,
                    items: records.into_iter().map(|r| (r.id(), item(r))).collect(),
                })
            })
            .await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_cut_by_count_and_by_size_and_always_take_one() {
        let sizes = [10usize, 10, 10, 500, 10];
        let mut items = sizes.iter().copied().peekable();
        assert_eq!(next_page(&mut items, 2, 1_000, |n| *n), vec![10, 10]);
        // 10 + 6 fits in 100; 500 + 6 does not.
        assert_eq!(next_page(&mut items, 10, 100, |n| *n), vec![10]);
        // Larger than a page on its own: it still goes, alone.
        assert_eq!(next_page(&mut items, 10, 100, |n| *n), vec![500]);
        assert_eq!(next_page(&mut items, 10, 100, |n| *n), vec![10]);
        assert!(next_page(&mut items, 10, 100, |n| *n).is_empty());
    }
}
