//! Why a dial failed, by kind: read off libp2p's dial error and the socket errors inside it.

use std::error::Error as StdError;
use std::io;

use libp2p::TransportError;
use libp2p::swarm::DialError;

use crate::error::FailureKind;

/// The kind of a failed dial.
pub(crate) fn dial_kind(e: &DialError) -> FailureKind {
    match e {
        DialError::WrongPeerId { .. } | DialError::LocalPeerId { .. } => FailureKind::WrongPeer,
        DialError::Denied { .. } => FailureKind::Refused,
        DialError::NoAddresses | DialError::DialPeerConditionFalse(_) => FailureKind::Unreachable,
        DialError::Aborted => FailureKind::Other,
        // The first address that says why beyond "failed" names the kind.
        DialError::Transport(attempts) => attempts
            .iter()
            .filter_map(|(_, e)| match e {
                TransportError::MultiaddrNotSupported(_) => None,
                TransportError::Other(e) => socket_kind(e),
            })
            .next()
            .unwrap_or(FailureKind::Unreachable),
    }
}

/// `Refused` or `Timeout` when a socket error with that kind is inside `e`, at any depth.
fn socket_kind(e: &io::Error) -> Option<FailureKind> {
    let of = |kind: io::ErrorKind| match kind {
        io::ErrorKind::ConnectionRefused => Some(FailureKind::Refused),
        io::ErrorKind::TimedOut => Some(FailureKind::Timeout),
        _ => None,
    };
    let mut next: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            if let Some(kind) = of(io.kind()) {
                return Some(kind);
            }
            // An io::Error's `source` skips the error it wraps: look at that one first.
            if let Some(inner) = io.get_ref() {
                next = Some(inner);
                continue;
            }
        }
        next = err.source();
    }
    // The transports wrap the socket's error in `Either`s whose `source` skips it too: its kind
    // is still in the debug form (`kind: ConnectionRefused` for an OS error, `Kind(…)` for
    // one made of a kind), which names std's `ErrorKind`.
    let debug = format!("{e:?}");
    [io::ErrorKind::ConnectionRefused, io::ErrorKind::TimedOut]
        .into_iter()
        .find(|k| {
            debug.contains(&format!("kind: {k:?}")) || debug.contains(&format!("Kind({k:?})"))
        })
        .and_then(of)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error whose `source` skips the error it wraps, as `Either`'s does.
    #[derive(Debug)]
    struct Skips(io::Error);

    impl std::fmt::Display for Skips {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            self.0.fmt(f)
        }
    }

    impl StdError for Skips {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            self.0.source()
        }
    }

    #[test]
    fn a_refused_socket_inside_wrapped_errors_is_refused_and_a_timeout_a_timeout() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        let wrapped = io::Error::other(io::Error::other(refused));
        let dial = DialError::Transport(vec![
            (
                "/memory/1".parse().expect("addr"),
                TransportError::MultiaddrNotSupported("/memory/1".parse().expect("addr")),
            ),
            (
                "/ip4/127.0.0.1/tcp/1".parse().expect("addr"),
                TransportError::Other(wrapped),
            ),
        ]);
        assert_eq!(dial_kind(&dial), FailureKind::Refused);
        let timeout = io::Error::other(io::Error::from(io::ErrorKind::TimedOut));
        assert_eq!(socket_kind(&timeout), Some(FailureKind::Timeout));
        assert_eq!(socket_kind(&io::Error::other("no route")), None);
        let hidden = io::Error::other(Skips(io::Error::from(io::ErrorKind::ConnectionRefused)));
        assert_eq!(socket_kind(&hidden), Some(FailureKind::Refused));
        assert_eq!(dial_kind(&DialError::NoAddresses), FailureKind::Unreachable);
    }
}
