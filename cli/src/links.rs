//! Links on the desktop: any byte pipe as a link (`--link-listen`, `--link-dial`): a Unix socket
//! (bridged by `socat` over a Bluetooth RFCOMM socket or a serial cable, say) or a TCP socket.
//! Each connection accepted on a listening endpoint is an inbound link; a dialling endpoint is
//! connected before the command runs and redialled whenever its link breaks.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use meshdrop_core::{Event, LinkDirection, LinkIo, Node};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio_util::compat::TokioAsyncReadCompatExt;

/// The link flags of a command.
#[derive(clap::Args, Debug, Default)]
pub struct LinkFlags {
    /// Accept links on this endpoint: `unix:PATH` or `tcp:HOST:PORT` (repeatable). Each
    /// connection is a link, encrypted and authenticated like the LAN.
    #[arg(long = "link-listen", global = true, value_name = "ENDPOINT", value_parser = parse_endpoint)]
    pub listen: Vec<Endpoint>,
    /// Open a link to this endpoint before the command runs, and again whenever it breaks
    /// (repeatable).
    #[arg(long = "link-dial", global = true, value_name = "ENDPOINT", value_parser = parse_endpoint)]
    pub dial: Vec<Endpoint>,
}

/// Where a link's bytes go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A Unix socket.
    Unix(PathBuf),
    /// A TCP socket (`HOST:PORT`).
    Tcp(String),
}

impl Endpoint {
    /// The medium a link through it is shown with.
    fn medium(&self) -> &'static str {
        match self {
            Endpoint::Unix(_) => "unix",
            Endpoint::Tcp(_) => "tcp",
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
            Endpoint::Tcp(addr) => write!(f, "tcp:{addr}"),
        }
    }
}

/// Reads `unix:PATH` or `tcp:HOST:PORT`.
pub fn parse_endpoint(s: &str) -> Result<Endpoint, String> {
    match s.split_once(':') {
        Some(("unix", path)) if !path.is_empty() => Ok(Endpoint::Unix(path.into())),
        Some(("tcp", addr))
            if addr
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()) =>
        {
            Ok(Endpoint::Tcp(addr.to_string()))
        }
        _ => Err(format!(
            "{s:?} is not a link endpoint; use unix:PATH or tcp:HOST:PORT"
        )),
    }
}

/// Redials wait this long after the first failure, doubling up to [`REDIAL_MAX`].
const REDIAL_FIRST: Duration = Duration::from_millis(500);
const REDIAL_MAX: Duration = Duration::from_secs(30);
/// A link that lasted this long resets the backoff.
const STEADY: Duration = Duration::from_secs(30);

/// Starts `flags`' links on `node`, until it stops: listens on each listening endpoint, and
/// connects each dialling one (returning once each first attempt is over, so the command finds
/// its peers).
pub async fn start(node: &Node, flags: &LinkFlags) -> Result<()> {
    for endpoint in &flags.listen {
        let accept = listen(endpoint).await?;
        tokio::spawn(until_stopped(
            node.clone(),
            accept_all(node.clone(), accept),
        ));
    }
    for endpoint in &flags.dial {
        let first = dial_once(node, endpoint).await;
        if let Err(e) = &first {
            eprintln!("warning: no link through {endpoint} yet ({e:#}); retrying");
        }
        let redial = redial(node.clone(), endpoint.clone(), first.ok());
        tokio::spawn(until_stopped(node.clone(), redial));
    }
    Ok(())
}

/// Runs `work` until the node stops.
async fn until_stopped(node: Node, work: impl Future<Output = ()>) {
    let mut events = node.events();
    let stopped = async {
        loop {
            match events.recv().await {
                Ok(Event::Stopped) | Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    return;
                }
                _ => {}
            }
        }
    };
    tokio::select! {
        _ = work => {}
        _ = stopped => {}
    }
}

/// A listening endpoint.
enum Accept {
    Unix(UnixListener),
    Tcp(TcpListener),
}

async fn listen(endpoint: &Endpoint) -> Result<Accept> {
    Ok(match endpoint {
        Endpoint::Unix(path) => {
            // A socket file left by an earlier run that is not answering any more.
            if path.exists() && UnixStream::connect(path).await.is_err() {
                std::fs::remove_file(path).with_context(|| {
                    format!("cannot remove the stale socket {}", path.display())
                })?;
            }
            let listener = UnixListener::bind(path)
                .with_context(|| format!("cannot listen for links on {endpoint}"))?;
            Accept::Unix(listener)
        }
        Endpoint::Tcp(addr) => Accept::Tcp(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for links on {endpoint}"))?,
        ),
    })
}

/// Makes each accepted connection an inbound link.
async fn accept_all(node: Node, accept: Accept) {
    loop {
        let (io, medium): (Box<dyn LinkIo>, _) = match &accept {
            Accept::Unix(l) => match l.accept().await {
                Ok((s, _)) => (Box::new(s.compat()), "unix"),
                Err(e) => return eprintln!("warning: links: cannot accept: {e}"),
            },
            Accept::Tcp(l) => match l.accept().await {
                Ok((s, _)) => {
                    let _ = s.set_nodelay(true);
                    (Box::new(s.compat()), "tcp")
                }
                Err(e) => return eprintln!("warning: links: cannot accept: {e}"),
            },
        };
        let node = node.clone();
        tokio::spawn(async move {
            if let Err(e) = node
                .add_link(io, LinkDirection::Inbound, medium, None)
                .await
            {
                tracing::warn!(error = %e, "an inbound link did not open");
            }
        });
    }
}

/// Connects `endpoint` and makes it a link.
async fn dial_once(node: &Node, endpoint: &Endpoint) -> Result<meshdrop_core::Link> {
    let io: Box<dyn LinkIo> = match endpoint {
        Endpoint::Unix(path) => Box::new(UnixStream::connect(path).await?.compat()),
        Endpoint::Tcp(addr) => {
            let stream = TcpStream::connect(addr).await?;
            let _ = stream.set_nodelay(true);
            Box::new(stream.compat())
        }
    };
    let medium = endpoint.medium();
    Ok(node
        .add_link(io, LinkDirection::Outbound, medium, None)
        .await?)
}

/// Keeps a link to `endpoint` up: waits for `link` to close, then redials with backoff.
async fn redial(node: Node, endpoint: Endpoint, mut link: Option<meshdrop_core::Link>) {
    let mut backoff = REDIAL_FIRST;
    loop {
        if let Some(up) = link.take() {
            let since = tokio::time::Instant::now();
            up.closed().await;
            if since.elapsed() >= STEADY {
                backoff = REDIAL_FIRST;
            }
            tracing::info!(%endpoint, "the link closed; redialling");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(REDIAL_MAX);
        match dial_once(&node, &endpoint).await {
            Ok(up) => link = Some(up),
            Err(e) => tracing::debug!(%endpoint, error = %e, "no link yet"),
        }
    }
}

/// Refuses link flags where no node of this command's own would use them.
pub fn only_for_own_node(flags: &LinkFlags) -> Result<()> {
    if !flags.listen.is_empty() || !flags.dial.is_empty() {
        bail!(
            "a node already runs on this data dir: --link-listen and --link-dial apply to the \
             node a command starts (pass them to `meshdrop run`)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_read_as_written_and_bad_ones_say_what_works() {
        assert_eq!(
            parse_endpoint("unix:/tmp/link.sock"),
            Ok(Endpoint::Unix("/tmp/link.sock".into()))
        );
        assert_eq!(
            parse_endpoint("tcp:127.0.0.1:4100"),
            Ok(Endpoint::Tcp("127.0.0.1:4100".into()))
        );
        for bad in ["unix:", "tcp:host", "tcp::80", "bluetooth:AA:BB", "/tmp/x"] {
            let e = parse_endpoint(bad).unwrap_err();
            assert!(e.contains("unix:PATH or tcp:HOST:PORT"), "{bad}: {e}");
        }
    }
}
