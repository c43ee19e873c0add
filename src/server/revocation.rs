//! Ends calls that outlive their session. A stream is authorised once, when it opens; if its
//! session is then revoked (logout, a new password, the user changed or deleted) or expires,
//! the stream ends with `UNAUTHENTICATED`: a watch's reply gets a closing status, an ingest
//! stream's incoming reports end in that error.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};

use chrono::{DateTime, Utc};
use futures::Stream;
use http_body::Frame;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tonic::Status;
use tonic::codegen::Bytes;

use super::error::ServiceError;

/// What ended: one session, or every session of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    Session(Vec<u8>),
    User(i64),
}

/// Watches for the end of one session.
pub struct SessionEnd {
    notices: BroadcastStream<Ended>,
    expiry: Pin<Box<tokio::time::Sleep>>,
    token_hash: Vec<u8>,
    user_id: i64,
}

impl SessionEnd {
    pub fn new(
        notices: broadcast::Receiver<Ended>,
        expires_at: DateTime<Utc>,
        token_hash: Vec<u8>,
        user_id: i64,
    ) -> Self {
        let left = (expires_at - Utc::now()).to_std().unwrap_or_default();
        Self {
            notices: BroadcastStream::new(notices),
            expiry: Box::pin(tokio::time::sleep(left)),
            token_hash,
            user_id,
        }
    }

    /// Ready with the reason once the session has ended.
    fn poll_ended(&mut self, cx: &mut Context<'_>) -> Poll<&'static str> {
        if self.expiry.as_mut().poll(cx).is_ready() {
            return Poll::Ready("the session expired; sign in again");
        }
        loop {
            match Pin::new(&mut self.notices).poll_next(cx) {
                Poll::Ready(Some(Ok(Ended::Session(hash)))) if hash == self.token_hash => {
                    return Poll::Ready("the session was ended; sign in again");
                }
                Poll::Ready(Some(Ok(Ended::User(id)))) if id == self.user_id => {
                    return Poll::Ready("the account changed; sign in again");
                }
                // Another session's notice, or notices missed under a burst (the session
                // is checked again when the client reconnects).
                Poll::Ready(Some(_)) => {}
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Which way the wrapped body flows: replies close with a status in their trailers, incoming
/// streams fail with the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Reply,
    Incoming,
}

/// A body that ends when its session does.
pub struct Revocable<B> {
    inner: B,
    end: SessionEnd,
    direction: Direction,
    finished: bool,
}

impl<B> Revocable<B> {
    pub fn new(inner: B, end: SessionEnd, direction: Direction) -> Self {
        Self {
            inner,
            end,
            direction,
            finished: false,
        }
    }
}

impl<B> http_body::Body for Revocable<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<tonic::codegen::StdError>,
{
    type Data = Bytes;
    type Error = tonic::codegen::StdError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        if let Poll::Ready(reason) = this.end.poll_ended(cx) {
            this.finished = true;
            let status = Status::from(ServiceError::signed_out(reason));
            return Poll::Ready(Some(match this.direction {
                Direction::Reply => {
                    let mut trailers = http::HeaderMap::new();
                    match status.add_header(&mut trailers) {
                        Ok(()) => Ok(Frame::trailers(trailers)),
                        Err(e) => Err(Box::new(e) as tonic::codegen::StdError),
                    }
                }
                Direction::Incoming => Err(Box::new(status) as tonic::codegen::StdError),
            }));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(Some(Ok(frame))) => {
                if frame.is_trailers() {
                    this.finished = true;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                this.finished = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.finished || self.inner.is_end_stream()
    }
}
