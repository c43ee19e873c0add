//! The few threads that run argon2. Its 19 MiB of working memory is then reused on them; run
//! on the blocking pool instead, every thread that ever checked a password kept that much in
//! its allocator arena, and a server's memory grew with each burst of sign-ins.

use std::sync::{Arc, Mutex, mpsc};

use tokio::sync::oneshot;

use super::error::ServiceError;

type Job = Box<dyn FnOnce() + Send>;

/// A handle to the password threads; they end when the last handle is dropped.
#[derive(Clone)]
pub struct PasswordWorkers {
    jobs: mpsc::Sender<Job>,
}

impl PasswordWorkers {
    /// Starts `threads` threads (at least one). Work beyond them waits its turn in order.
    pub fn start(threads: usize) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("passwords-{n}"))
                .spawn(move || {
                    loop {
                        // The lock is held only to take the next job, never while it runs.
                        let next = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        match next {
                            Ok(job) => job(),
                            Err(_) => return, // every handle is gone
                        }
                    }
                })?;
        }
        Ok(Self { jobs })
    }

    /// Runs `work` on a password thread and waits for its answer without blocking the runtime.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ServiceError> {
        let (answer, answered) = oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                // The caller may have gone away (deadline, cancelled call): nothing to tell.
                let _ = answer.send(work());
            }))
            .map_err(|_| ServiceError::Internal("the password threads have stopped".into()))?;
        answered
            .await
            .map_err(|_| ServiceError::Internal("a password check did not finish".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_on_the_named_threads_and_answers() {
        let workers = PasswordWorkers::start(2).unwrap();
        let names: Vec<String> =
            futures::future::join_all((0..8).map(|_| {
                workers.run(|| std::thread::current().name().unwrap_or_default().to_owned())
            }))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert!(
            names.iter().all(|n| n.starts_with("passwords-")),
            "{names:?}"
        );
    }
}
