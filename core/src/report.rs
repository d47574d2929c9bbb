//! How a capability tells the app what happened without knowing the app: it calls a [`Report`]
//! the node gave it, and the node turns each notice into an event on the app's bus. Nothing
//! inside the core decides anything from those events.

use std::sync::Arc;

/// A callback taking a capability's notices (cheap to clone, callable from any thread).
pub struct Report<T>(Arc<dyn Fn(T) + Send + Sync>);

impl<T> Clone for Report<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> Report<T> {
    /// Reports to `f`.
    pub fn new(f: impl Fn(T) + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// Reports nothing anywhere (tests of one capability alone).
    pub fn discard() -> Self {
        Self(Arc::new(|_| {}))
    }

    /// Tells of `notice`.
    pub fn send(&self, notice: T) {
        (self.0)(notice)
    }
}
