//! Connections as the server accepts them: a deadline for a new connection's first bytes
//! (the TLS hello or the HTTP/2 preface), and caps on connections per client address and in
//! all, each refusal logged. Without them, connections that never speak stay open until the
//! server runs out of file descriptors and real clients time out.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// How many connections the server takes, and how long a new one may stay silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// A connection that has not sent its first bytes (24, the size of the HTTP/2 preface; a
    /// TLS hello is larger) within this is closed.
    pub handshake: Duration,
    /// Open connections from one client address.
    pub per_address: usize,
    /// Open connections in all.
    pub total: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            handshake: Duration::from_secs(5),
            per_address: 256,
            total: 4_096,
        }
    }
}

/// Bytes a client sends first in any case: the HTTP/2 connection preface.
const FIRST_BYTES: usize = 24;
/// A refused connection is logged at most this often, so a flood does not flood the log.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// Who holds how many connections.
pub struct Admission {
    limits: ConnectionLimits,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    by_address: HashMap<IpAddr, usize>,
    total: usize,
    last_logged: Option<Instant>,
    refused_since_log: usize,
}

impl Admission {
    pub fn new(limits: ConnectionLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            open: Mutex::new(Open::default()),
        })
    }

    /// A place for a connection from `address`, or None (and a log line) when a cap is hit.
    fn admit(self: &Arc<Self>, address: IpAddr) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let from_address = open.by_address.get(&address).copied().unwrap_or(0);
        let refused = if open.total >= self.limits.total {
            Some("connections in all")
        } else if from_address >= self.limits.per_address {
            Some("connections from this address")
        } else {
            None
        };
        if let Some(which) = refused {
            open.refused_since_log += 1;
            let due = open.last_logged.is_none_or(|at| at.elapsed() >= LOG_EVERY);
            if due {
                tracing::warn!(
                    %address,
                    refused = open.refused_since_log,
                    limit_per_address = self.limits.per_address,
                    limit_total = self.limits.total,
                    "connection refused: too many {which}"
                );
                open.last_logged = Some(Instant::now());
                open.refused_since_log = 0;
            }
            return None;
        }
        open.total += 1;
        *open.by_address.entry(address).or_default() += 1;
        Some(Slot {
            admission: self.clone(),
            address,
        })
    }
}

/// A connection's place; given back when the connection is dropped.
struct Slot {
    admission: Arc<Admission>,
    address: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .admission
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.by_address.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.by_address.remove(&self.address);
            }
        }
    }
}

/// An accepted connection: reads fail once the handshake deadline passes before the first
/// bytes arrived, which makes the server close it.
pub struct Guarded {
    stream: TcpStream,
    _slot: Slot,
    deadline: Option<Pin<Box<Sleep>>>,
    received: usize,
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                self.received += buf.filled().len() - before;
                if self.received >= FIRST_BYTES {
                    self.deadline = None;
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                let expired = self
                    .deadline
                    .as_mut()
                    .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
                if expired {
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client sent no handshake in time",
                    )))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

impl Connected for Guarded {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

/// The listener's connections, admitted and guarded; refused ones are closed at once.
pub fn incoming(
    listener: TcpListener,
    admission: Arc<Admission>,
) -> impl Stream<Item = io::Result<Guarded>> {
    TcpListenerStream::new(listener).filter_map(move |accepted| {
        let admission = admission.clone();
        async move {
            let stream = match accepted {
                Ok(stream) => stream,
                Err(e) => return Some(Err(e)),
            };
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot disable Nagle on a connection");
            }
            let address = stream.peer_addr().ok()?.ip();
            let slot = admission.admit(address)?;
            Some(Ok(Guarded {
                stream,
                _slot: slot,
                deadline: Some(Box::pin(tokio::time::sleep(admission.limits.handshake))),
                received: 0,
            }))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_count_open_connections_and_free_them_when_dropped() {
        let admission = Admission::new(ConnectionLimits {
            handshake: Duration::from_secs(1),
            per_address: 2,
            total: 3,
        });
        let a = IpAddr::from([10, 0, 0, 1]);
        let b = IpAddr::from([10, 0, 0, 2]);
        let first = admission.admit(a).unwrap();
        let _second = admission.admit(a).unwrap();
        assert!(admission.admit(a).is_none(), "per address");
        let _third = admission.admit(b).unwrap();
        assert!(admission.admit(b).is_none(), "in all");
        drop(first);
        assert!(
            admission.admit(a).is_some(),
            "a closed connection frees its place"
        );
    }
}
