//! Links to nearby devices, as the host's [`LinkDriver`] reports them: which devices are near on
//! which medium, who they are when known, and when to ask the host to open a link. A link costs
//! battery, so the node asks only for a device worth it: a contact, a peer the node tries to
//! reach (a download's provider, an offer's recipient, a redial), or a device whose peer id the
//! medium could not carry; never while a direct path to the peer is up, at most once per
//! [`ASK_AGAIN`] per device.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use libp2p::PeerId;
use tokio::time::Instant;

/// The host's link driver: the platform radios (Wi-Fi Aware, AWDL, Bluetooth) or any pipe. Its
/// methods are called from the node's task and must return at once (start the work and return).
pub trait LinkDriver: Send + Sync {
    /// Starts advertising this device and looking for meshdrop devices on `medium`; the host
    /// reports each with [`crate::Node::device_nearby`].
    fn start_discovery(&self, medium: String);
    /// Stops advertising and looking on `medium` (the node stops, or the host is replaced).
    fn stop_discovery(&self, medium: String);
    /// Opens a link to `device` on `medium` and hands it over with [`crate::Node::add_link`]
    /// (outbound); a link that cannot open is simply not handed over.
    fn open_link(&self, medium: String, device: String);
}

/// How long after asking for a link to a device the node may ask again.
pub(super) const ASK_AGAIN: Duration = Duration::from_secs(30);
/// Nearby devices remembered at most (the least recently seen are forgotten beyond).
const MAX_NEARBY: usize = 256;
/// A peer the node tried to reach within this window is worth a link.
pub(super) const WANTED_WINDOW: Duration = Duration::from_secs(600);
/// The first wait before discovery that failed on a medium starts again; each failure after
/// doubles it, up to [`RETRY_MAX`], and a device seen on the medium resets it.
const RETRY_FIRST: Duration = Duration::from_secs(5);
/// The longest wait before discovery that failed starts again.
const RETRY_MAX: Duration = Duration::from_secs(300);

/// A device on a medium, as the host names it.
type DeviceKey = (String, String);

struct Device {
    /// Its peer id, when the medium carried it or a link to it came up.
    peer: Option<PeerId>,
    seen: Instant,
    asked: Option<Instant>,
}

/// Discovery that failed on a medium: when to start it again, and the wait used.
struct Retry {
    at: Option<Instant>,
    wait: Duration,
}

/// What the node thinks of a peer, for the link decision.
pub(super) struct PeerView {
    /// A contact of the user.
    pub(super) contact: bool,
    /// A part of the node tries to reach it.
    pub(super) wanted: bool,
    /// Connected over something at least as good as a link (the LAN, a link already).
    pub(super) linked_or_direct: bool,
}

/// The host's driver and the devices it reports nearby.
#[derive(Default)]
pub(super) struct Nearby {
    driver: Option<(Arc<dyn LinkDriver>, Vec<String>)>,
    devices: HashMap<DeviceKey, Device>,
    retries: HashMap<String, Retry>,
}

impl Nearby {
    /// Uses `driver` on `media` from now on (the previous driver stops discovery).
    pub(super) fn set_driver(&mut self, driver: Arc<dyn LinkDriver>, media: Vec<String>) {
        self.stop();
        for medium in &media {
            driver.start_discovery(medium.clone());
        }
        self.driver = Some((driver, media));
    }

    /// Stops discovery on every medium and forgets the driver and the devices.
    pub(super) fn stop(&mut self) {
        if let Some((driver, media)) = self.driver.take() {
            for medium in media {
                driver.stop_discovery(medium);
            }
        }
        self.devices.clear();
        self.retries.clear();
    }

    /// Discovery on `medium` failed (the radio is off, an idle timeout, the app was suspended):
    /// the node starts it again after a wait that grows with each failure.
    pub(super) fn discovery_failed(&mut self, medium: String) {
        if !self
            .driver
            .as_ref()
            .is_some_and(|(_, media)| media.contains(&medium))
        {
            return;
        }
        let retry = self.retries.entry(medium).or_insert(Retry {
            at: None,
            wait: RETRY_FIRST / 2,
        });
        retry.wait = (retry.wait * 2).min(RETRY_MAX);
        retry.at = Some(Instant::now() + retry.wait);
    }

    /// Starts again the discovery whose wait is over.
    fn restart_due(&mut self) {
        let Some((driver, _)) = &self.driver else {
            return;
        };
        let now = Instant::now();
        for (medium, retry) in &mut self.retries {
            if retry.at.is_some_and(|at| at <= now) {
                retry.at = None;
                tracing::debug!(%medium, "starting link discovery again");
                driver.start_discovery(medium.clone());
            }
        }
    }

    /// The host sees `device` on `medium` (with its peer id when the medium carried it).
    pub(super) fn seen(&mut self, medium: String, device: String, peer: Option<PeerId>) {
        let now = Instant::now();
        self.retries.remove(&medium);
        let entry = self.devices.entry((medium, device)).or_insert(Device {
            peer: None,
            seen: now,
            asked: None,
        });
        entry.seen = now;
        if peer.is_some() {
            entry.peer = peer;
        }
        if self.devices.len() > MAX_NEARBY
            && let Some(oldest) = self
                .devices
                .iter()
                .min_by_key(|(_, d)| d.seen)
                .map(|(k, _)| k.clone())
        {
            self.devices.remove(&oldest);
        }
    }

    /// The host no longer sees `device` on `medium`.
    pub(super) fn lost(&mut self, medium: String, device: String) {
        self.devices.remove(&(medium, device));
    }

    /// A link to `device` came up: it is `peer`.
    pub(super) fn linked(&mut self, medium: String, device: String, peer: PeerId) {
        if let Some(d) = self.devices.get_mut(&(medium, device)) {
            d.peer = Some(peer);
        }
    }

    /// Asks the driver to open a link to each device worth one now; `view` tells what the node
    /// thinks of a peer.
    /// Discovery that failed starts again first, once its wait is over.
    pub(super) fn open_due(&mut self, mut view: impl FnMut(&PeerId) -> PeerView) {
        self.restart_due();
        let Some((driver, _)) = &self.driver else {
            return;
        };
        let now = Instant::now();
        for ((medium, device), d) in &mut self.devices {
            if d.asked.is_some_and(|at| now < at + ASK_AGAIN) {
                continue;
            }
            let worth = match &d.peer {
                None => true,
                Some(peer) => {
                    let v = view(peer);
                    !v.linked_or_direct && (v.contact || v.wanted)
                }
            };
            if worth {
                d.asked = Some(now);
                tracing::debug!(%medium, %device, "asking the host for a link");
                driver.open_link(medium.clone(), device.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl LinkDriver for Recorder {
        fn start_discovery(&self, medium: String) {
            self.0.lock().unwrap().push(format!("start {medium}"));
        }
        fn stop_discovery(&self, medium: String) {
            self.0.lock().unwrap().push(format!("stop {medium}"));
        }
        fn open_link(&self, medium: String, device: String) {
            self.0
                .lock()
                .unwrap()
                .push(format!("open {medium} {device}"));
        }
    }

    impl Recorder {
        fn take(&self) -> Vec<String> {
            std::mem::take(&mut *self.0.lock().unwrap())
        }
    }

    fn view(contact: bool, wanted: bool, linked_or_direct: bool) -> PeerView {
        PeerView {
            contact,
            wanted,
            linked_or_direct,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn links_open_to_contacts_wanted_peers_and_unknown_devices_only() {
        let driver = Arc::new(Recorder::default());
        let mut nearby = Nearby::default();
        nearby.set_driver(driver.clone(), vec!["wifi-aware".into()]);
        assert_eq!(driver.take(), ["start wifi-aware"]);

        let (contact, stranger, lan) = (PeerId::random(), PeerId::random(), PeerId::random());
        let aware = || "wifi-aware".to_string();
        nearby.seen(aware(), "c".into(), Some(contact));
        nearby.seen(aware(), "s".into(), Some(stranger));
        nearby.seen(aware(), "l".into(), Some(lan));
        nearby.seen(aware(), "u".into(), None);
        nearby.open_due(|p| match p {
            p if *p == contact => view(true, false, false),
            p if *p == lan => view(true, true, true),
            _ => view(false, false, false),
        });
        let mut asked = driver.take();
        asked.sort();
        assert_eq!(asked, ["open wifi-aware c", "open wifi-aware u"]);

        // Not again within ASK_AGAIN (c, u); the others once they are worth it.
        nearby.open_due(|_| view(true, false, false));
        let mut asked = driver.take();
        asked.sort();
        assert_eq!(asked, ["open wifi-aware l", "open wifi-aware s"]);
        tokio::time::advance(ASK_AGAIN).await;
        nearby.linked(aware(), "u".into(), lan);
        nearby.open_due(|p| view(false, *p == contact, *p == lan));
        assert_eq!(driver.take(), ["open wifi-aware c"]);

        nearby.lost(aware(), "c".into());
        tokio::time::advance(ASK_AGAIN).await;
        nearby.open_due(|_| view(true, true, false));
        let mut asked = driver.take();
        asked.sort();
        let all = [
            "open wifi-aware l",
            "open wifi-aware s",
            "open wifi-aware u",
        ];
        assert_eq!(asked, all, "c is gone");

        nearby.stop();
        assert_eq!(driver.take(), ["stop wifi-aware"]);
        nearby.open_due(|_| view(true, true, false));
        assert!(driver.take().is_empty(), "no driver, no links");
    }

    #[tokio::test(start_paused = true)]
    async fn failed_discovery_starts_again_after_a_wait_that_grows_until_a_device_is_seen() {
        let driver = Arc::new(Recorder::default());
        let mut nearby = Nearby::default();
        nearby.set_driver(driver.clone(), vec!["awdl".into()]);
        driver.take();
        let tick = |nearby: &mut Nearby| nearby.open_due(|_| view(false, false, false));

        nearby.discovery_failed("bluetooth".into());
        nearby.discovery_failed("awdl".into());
        tokio::time::advance(RETRY_FIRST - Duration::from_millis(1)).await;
        tick(&mut nearby);
        assert!(driver.take().is_empty(), "not before its wait");
        tokio::time::advance(Duration::from_millis(1)).await;
        tick(&mut nearby);
        assert_eq!(
            driver.take(),
            ["start awdl"],
            "a medium not in use stays off"
        );
        tick(&mut nearby);
        assert!(driver.take().is_empty(), "started once");

        nearby.discovery_failed("awdl".into());
        tokio::time::advance(RETRY_FIRST).await;
        tick(&mut nearby);
        assert!(driver.take().is_empty(), "the second wait is longer");
        tokio::time::advance(RETRY_FIRST).await;
        tick(&mut nearby);
        assert_eq!(driver.take(), ["start awdl"]);

        nearby.seen("awdl".into(), "d".into(), Some(PeerId::random()));
        driver.take();
        nearby.discovery_failed("awdl".into());
        tokio::time::advance(RETRY_FIRST).await;
        tick(&mut nearby);
        assert_eq!(
            driver.take(),
            ["start awdl"],
            "discovery worked: the wait is reset"
        );
    }

    #[test]
    fn nearby_devices_are_bounded() {
        let mut nearby = Nearby::default();
        for i in 0..MAX_NEARBY + 10 {
            nearby.seen("ble".into(), i.to_string(), None);
        }
        assert_eq!(nearby.devices.len(), MAX_NEARBY);
    }
}
