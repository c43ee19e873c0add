//! What every client subcommand shares: why a call failed (`Failure`, which becomes the exit
//! code) and reading a listing answered a page per call, whole.

use tonic::Status;

/// Why the client failed, as an exit code scripts can test.
#[derive(Debug)]
pub enum Failure {
    Usage(String),
    Rpc(Status),
    Connect(String),
}

impl From<Status> for Failure {
    fn from(status: Status) -> Self {
        Failure::Rpc(status)
    }
}

/// Every item of a listing answered a page per call (tariffs, circuits): asks again with each
/// reply's token until a reply carries none. `page` makes one call and returns its items and
/// next token.
pub async fn all_pages<T, Fut>(mut page: impl FnMut(String) -> Fut) -> Result<Vec<T>, Status>
where
    Fut: std::future::Future<Output = Result<(Vec<T>, String), Status>>,
{
    let (mut all, mut token) = page(String::new()).await?;
    while !token.is_empty() {
        let (items, next) = page(token).await?;
        all.extend(items);
        token = next;
    }
    Ok(all)
}
