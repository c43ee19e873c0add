//! `singularity bench ... --ceiling`: a bare tonic server that answers every call with one
//! stored lamp, in a process of its own, measured with the same load as `bench get`. No
//! store, no gate, no limits: what the transport alone allows on this machine at that moment,
//! so a figure can be recorded as a share of it.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::pin::Pin;
use std::task::{Context, Poll};

use color_eyre::eyre::{Result, eyre};
use prost::Message;
use tokio::io::{AsyncBufReadExt, BufReader};
use tonic::body::Body;
use tonic::{Request, Response, Status};

use crate::proto;

/// The echo's one method, beside the real API's names so nothing can mistake it for them.
const PATH: &str = "/singularity.bench.v1.Echo/Get";

/// Serves the echo on 127.0.0.1 (a free port), prints `listening ADDRESS`, and serves until
/// standard input closes (the parent went away).
pub async fn serve(reply_hex: &str) -> Result<()> {
    let bytes = decode_hex(reply_hex).ok_or_else(|| eyre!("--reply is not hex"))?;
    let lamp = proto::Lamp::decode(bytes.as_slice())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening {}", listener.local_addr()?);
    // Nagle's algorithm off, as the real server has it: small replies must not wait for an ack.
    let incoming = tokio_stream::StreamExt::map(
        tokio_stream::wrappers::TcpListenerStream::new(listener),
        |stream| {
            let stream = stream?;
            stream.set_nodelay(true)?;
            Ok::<_, std::io::Error>(stream)
        },
    );
    let parent_gone = async {
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(_)) = lines.next_line().await {}
    };
    tonic::transport::Server::builder()
        .add_service(EchoService { lamp })
        .serve_with_incoming_shutdown(incoming, parent_gone)
        .await?;
    Ok(())
}

/// A running echo server in its own process, ended when dropped.
pub struct EchoProcess {
    _child: tokio::process::Child,
    pub url: String,
}

impl EchoProcess {
    /// Starts this program as `bench echo-server`, answering with `lamp`.
    pub async fn start(lamp: &proto::Lamp) -> Result<Self> {
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .args([
                "bench",
                "echo-server",
                "--reply",
                &encode_hex(&lamp.encode_to_vec()),
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| eyre!("the echo server has no output"))?;
        let line = BufReader::new(stdout)
            .lines()
            .next_line()
            .await?
            .ok_or_else(|| eyre!("the echo server ended before it listened"))?;
        let address = line
            .strip_prefix("listening ")
            .ok_or_else(|| eyre!("the echo server said {line:?}"))?;
        Ok(Self {
            _child: child,
            url: format!("http://{address}"),
        })
    }

    /// One unauthenticated call, as `Lamps.Get` is made.
    pub async fn get(grpc: &mut tonic::client::Grpc<tonic::transport::Channel>, id: i64) -> bool {
        if grpc.ready().await.is_err() {
            return false;
        }
        let Ok(path) = PATH.parse() else {
            return false;
        };
        grpc.unary::<_, proto::Lamp, _>(
            Request::new(proto::IdRequest { id }),
            path,
            tonic_prost::ProstCodec::default(),
        )
        .await
        .is_ok()
    }
}

#[derive(Clone)]
struct EchoService {
    lamp: proto::Lamp,
}

impl tonic::server::NamedService for EchoService {
    const NAME: &'static str = "singularity.bench.v1.Echo";
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl tower_service::Service<http::Request<Body>> for EchoService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let lamp = self.lamp.clone();
        Box::pin(async move {
            if request.uri().path() != PATH {
                return Ok(Status::unimplemented("only the echo").into_http());
            }
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
            Ok(grpc.unary(Get(lamp), request).await)
        })
    }
}

struct Get(proto::Lamp);

impl tonic::server::UnaryService<proto::IdRequest> for Get {
    type Response = proto::Lamp;
    type Future = Ready<Result<Response<proto::Lamp>, Status>>;

    fn call(&mut self, request: Request<proto::IdRequest>) -> Self::Future {
        let mut lamp = self.0.clone();
        lamp.id = request.get_ref().id;
        ready(Ok(Response::new(lamp)))
    }
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let bytes = vec![0u8, 1, 0x7f, 0xff];
        assert_eq!(decode_hex(&encode_hex(&bytes)), Some(bytes));
        assert_eq!(decode_hex("zz"), None);
    }
}
