//! Files the host opens on demand, as a host implements `HostFiles`: shared and offered without a
//! copy, downloaded byte for byte; names and reads the core cannot take are clear errors.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use meshdrop_ffi::{
    EventListener, HostFileError, HostFiles, MeshdropError, NodeConfig, NodeEvent, SendOutcome,
    ShareProblem, start_node,
};
use tokio::sync::mpsc;

/// Files on disk read by name and offset, as an app reads its content URIs.
struct Picked(Vec<(String, PathBuf)>);

impl HostFiles for Picked {
    fn count(&self) -> u32 {
        self.0.len() as u32
    }
    fn name(&self, file: u32) -> Result<String, HostFileError> {
        Ok(self.0[file as usize].0.clone())
    }
    fn size(&self, file: u32) -> Result<u64, HostFileError> {
        let meta = std::fs::metadata(&self.0[file as usize].1).map_err(unreadable)?;
        Ok(meta.len())
    }
    fn read(&self, file: u32, offset: u64, len: u32) -> Result<Vec<u8>, HostFileError> {
        let f = std::fs::File::open(&self.0[file as usize].1).map_err(unreadable)?;
        let mut buf = vec![0; len as usize];
        let n = f.read_at(&mut buf, offset).map_err(unreadable)?;
        buf.truncate(n);
        Ok(buf)
    }
}

fn unreadable(e: std::io::Error) -> HostFileError {
    HostFileError::Unreadable {
        reason: e.to_string(),
    }
}

struct Recorder(mpsc::UnboundedSender<NodeEvent>);

impl EventListener for Recorder {
    fn on_event(&self, event: NodeEvent) {
        let _ = self.0.send(event);
    }
}

async fn node(
    name: &str,
    dir: &tempfile::TempDir,
) -> (Arc<meshdrop_ffi::Node>, mpsc::UnboundedReceiver<NodeEvent>) {
    let (tx, events) = mpsc::unbounded_channel();
    let config = NodeConfig {
        data_dir: dir.path().join(name).display().to_string(),
        device_name: Some(name.into()),
        bind: vec!["127.0.0.1".into()],
        listen: true,
        mdns: false,
        on_battery: false,
        relays: vec![],
    };
    (
        start_node(config, Arc::new(Recorder(tx))).await.unwrap(),
        events,
    )
}

#[tokio::test]
async fn the_hosts_files_are_shared_and_offered_without_a_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, _) = node("alice", &tmp).await;
    let (b, mut b_events) = node("bob", &tmp).await;
    let video: Vec<u8> = (0..2_500_000u32).map(|i| (i % 241) as u8).collect();
    let photo = b"not really a jpeg".to_vec();
    std::fs::write(tmp.path().join("1001"), &video).unwrap();
    std::fs::write(tmp.path().join("1002"), &photo).unwrap();
    let picked = || {
        Arc::new(Picked(vec![
            ("sunset.mp4".into(), tmp.path().join("1001")),
            ("beach.jpg".into(), tmp.path().join("1002")),
        ]))
    };

    let ticket = a.share_host_files(picked()).await.unwrap();
    let dest = tmp.path().join("got");
    let transfer = b
        .download(ticket, dest.display().to_string(), None)
        .unwrap();
    assert_eq!(transfer.wait().await.unwrap().bytes, 2_500_017);
    assert_eq!(std::fs::read(dest.join("sunset.mp4")).unwrap(), video);
    assert_eq!(std::fs::read(dest.join("beach.jpg")).unwrap(), photo);
    let shares = a.shares().unwrap();
    assert!(shares[0].available && shares[0].name == "beach.jpg, sunset.mp4");

    b.add_contact(a.peer_id(), "Alice".into()).unwrap();
    a.add_peer(b.peer_id(), b.listen_addrs()).await.unwrap();
    let (sender, peer, files) = (a.clone(), b.peer_id(), picked());
    let sending = tokio::spawn(async move { sender.send_host_files(peer, files).await });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let offer = loop {
        match tokio::time::timeout_at(deadline, b_events.recv())
            .await
            .unwrap()
        {
            Some(NodeEvent::OfferReceived { offer_id, .. }) => break offer_id,
            Some(_) => {}
            None => panic!("events ended"),
        }
    };
    let offered = tmp.path().join("offered");
    b.accept_offer(offer, offered.display().to_string(), None, false)
        .unwrap();
    let outcome = sending.await.unwrap().unwrap();
    assert_eq!(outcome, SendOutcome::Delivered { bytes: 2_500_017 });
    assert_eq!(std::fs::read(offered.join("sunset.mp4")).unwrap(), video);

    let named = |name: &str| Arc::new(Picked(vec![(name.into(), tmp.path().join("1002"))]));
    let bad = a.share_host_files(named("../beach.jpg")).await;
    assert!(
        matches!(&bad, Err(MeshdropError::CannotShare { problem: ShareProblem::UnportableName, path, .. })
            if path == "../beach.jpg"),
        "{bad:?}"
    );
    let gone = Arc::new(Picked(vec![(
        "gone.jpg".into(),
        tmp.path().join("nothing"),
    )]));
    let gone = a.share_host_files(gone).await;
    assert!(
        matches!(
            &gone,
            Err(MeshdropError::CannotShare {
                problem: ShareProblem::Unreadable,
                ..
            })
        ),
        "{gone:?}"
    );
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
