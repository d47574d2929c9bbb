//! A request running on a node in a task of its own: the control server follows it for a
//! client, and a command that started its own node follows it the same way.

use std::future::Future;

use anyhow::{Result, anyhow};
use meshdrop_core::Node;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::ops;
use super::protocol::{Request, Response, Step, Update};

/// Where a running request sends its updates; they are dropped once nobody follows it.
#[derive(Clone)]
pub struct Updates(mpsc::UnboundedSender<Update>);

impl Updates {
    /// Sends one update.
    pub fn send(&self, update: Update) {
        let _ = self.0.send(update);
    }
}

/// A request under way: its updates as they come, then its result.
pub struct Running {
    updates: mpsc::UnboundedReceiver<Update>,
    task: Option<JoinHandle<Result<Response>>>,
    end: Option<Result<Response>>,
    cancel_on_drop: bool,
}

impl Running {
    /// Runs `req` on `node`; it goes on to its end even when nobody follows it any more (the
    /// control server: a client that leaves does not stop what it asked for).
    pub fn detached(node: &Node, req: Request) -> Running {
        let node = node.clone();
        Self::spawn(false, move |updates| async move {
            ops::execute(&node, req, &updates).await
        })
    }

    /// Runs `work` in a task that ends when the returned value is dropped (a command's own node).
    pub fn attached<F>(work: impl FnOnce(Updates) -> F) -> Running
    where
        F: Future<Output = Result<Response>> + Send + 'static,
    {
        Self::spawn(true, work)
    }

    fn spawn<F>(cancel_on_drop: bool, work: impl FnOnce(Updates) -> F) -> Running
    where
        F: Future<Output = Result<Response>> + Send + 'static,
    {
        let (tx, updates) = mpsc::unbounded_channel();
        Running {
            updates,
            task: Some(tokio::spawn(work(Updates(tx)))),
            end: None,
            cancel_on_drop,
        }
    }

    /// The next update, or the result once every update was taken.
    pub async fn next(&mut self) -> Result<Step> {
        if let Some(task) = self.task.as_mut() {
            let end = tokio::select! {
                biased;
                Some(update) = self.updates.recv() => return Ok(Step::Update(update)),
                end = task => end,
            };
            self.task = None;
            self.end = Some(end.unwrap_or_else(|e| Err(anyhow!("the request failed: {e}"))));
        }
        // Updates sent just before the end still come first.
        if let Ok(update) = self.updates.try_recv() {
            return Ok(Step::Update(update));
        }
        match self.end.take() {
            Some(end) => end.map(Step::Done),
            None => Err(anyhow!("the request has ended already")),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.cancel_on_drop
            && let Some(task) = &self.task
        {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshdrop_core::Event;

    #[tokio::test]
    async fn every_update_comes_before_the_result() {
        let peer = meshdrop_core::PeerId::random();
        let mut running = Running::attached(move |updates| async move {
            for _ in 0..3 {
                updates.send(Update::Event(Box::new(Event::PeerDisconnected { peer })));
            }
            Ok(Response::Peers(Vec::new()))
        });
        for _ in 0..3 {
            assert!(matches!(running.next().await, Ok(Step::Update(_))));
        }
        assert!(matches!(
            running.next().await,
            Ok(Step::Done(Response::Peers(_)))
        ));
        assert!(running.next().await.is_err(), "nothing after the end");
    }
}
