//! The demo's offer step, the AirDrop flow with contacts: a stranger's offer is declined at once;
//! the receiver compares the verification code with the sender's screen and adds it as a
//! contact; the same offer is then shown (from the contact, by its given name), accepted, and
//! lands verified.

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use meshdrop_core::transfer::offer::{Decision, SendOutcome};
use meshdrop_core::{Event, Node};
use serde_json::json;
use tokio::sync::broadcast;

use crate::demo::say;
use crate::output::Output;

const STEP: Duration = Duration::from_secs(30);

/// A node and its name in the demo.
pub type Named<'a> = (&'a Node, &'a str);

/// Runs the step: `sender` offers a file to `receiver`; files live in `dir`.
pub async fn offer_step(
    receiver: Named<'_>,
    sender: Named<'_>,
    dir: &Path,
    out: Output,
) -> Result<()> {
    let ((rx, rx_name), (tx, tx_name)) = (receiver, sender);
    let file = dir.join("src").join("map.pdf");
    std::fs::create_dir_all(dir.join("src"))?;
    std::fs::write(&file, crate::demo::pseudo_random(2 << 20, 11))?;
    let refused = offer(tx, rx, &file).await?;
    let SendOutcome::Declined { reason } = refused else {
        bail!("a stranger's offer was not declined: {refused:?}");
    };
    say(
        out,
        "demo_offer_refused",
        json!({"from": tx_name, "to": rx_name, "reason": reason}),
        &format!(
            "{tx_name} offers {rx_name} a map; {rx_name} takes offers from contacts only, so it \
             is declined at once: \"{reason}\""
        ),
    );

    add_by_code(receiver, sender, out)?;
    accepted(receiver, sender, &file, dir, out).await
}

/// The receiver compares the code with the sender's screen and adds it as a contact, under a
/// name of its own choosing (what the sender's device calls itself is only its claim).
fn add_by_code((rx, rx_name): Named<'_>, (tx, tx_name): Named<'_>, out: Output) -> Result<()> {
    let on_rx = rx.verification_code(&tx.peer_id());
    let on_tx = tx.verification_code(&rx.peer_id());
    let same = on_rx == on_tx;
    let given: String = tx_name
        .chars()
        .take(1)
        .flat_map(char::to_uppercase)
        .chain(tx_name.chars().skip(1))
        .collect();
    say(
        out,
        "demo_contact_added",
        json!({"node": rx_name, "contact": tx_name, "name": given, "code_on_receiver": on_rx,
            "code_on_sender": on_tx, "codes_match": same}),
        &format!(
            "{rx_name} reads {on_rx} on its screen, {tx_name} shows {on_tx}: {}; {rx_name} adds \
             {tx_name} as a contact named \"{given}\"",
            if same { "they match" } else { "they DIFFER" }
        ),
    );
    if !same {
        bail!("the verification codes differ");
    }
    rx.add_contact(tx.peer_id(), &given)?;
    Ok(())
}

/// The sender offers `file` again: shown from the contact, accepted, verified on arrival.
async fn accepted(
    (rx, rx_name): Named<'_>,
    (tx, tx_name): Named<'_>,
    file: &Path,
    dir: &Path,
    out: Output,
) -> Result<()> {
    let dest = dir.join(rx_name);
    let mut events = rx.events();
    let sending = tokio::spawn({
        let (tx, to, file) = (tx.clone(), rx.peer_id(), file.to_path_buf());
        async move { tx.send_files(to, vec![file]).await }
    });
    let (id, contact) = next_offer(&mut events).await?;
    let accept = Decision::Accept {
        dest: dest.clone(),
        files: None,
        add_contact: false,
    };
    rx.respond_offer(id, accept)?;
    let outcome = tokio::time::timeout(STEP, sending)
        .await
        .map_err(|_| anyhow!("the offer did not end within {STEP:?}"))??;
    let same = std::fs::read(file)? == std::fs::read(dest.join("map.pdf"))?;
    say(
        out,
        "demo_offer_delivered",
        json!({"from": tx_name, "to": rx_name, "shown_as": contact,
            "outcome": outcome.as_ref().ok(), "verified": same}),
        &format!(
            "{tx_name} offers again; {rx_name} is shown an offer from its contact \"{}\", accepts, \
             and the map lands in its own folder, verified: {}",
            contact.as_deref().unwrap_or("?"),
            if same { "yes" } else { "NO" }
        ),
    );
    match outcome? {
        SendOutcome::Delivered { .. } if same => Ok(()),
        other => bail!("the contact's offer did not arrive: {other:?}"),
    }
}

/// Offers `file` and waits for the outcome.
async fn offer(tx: &Node, rx: &Node, file: &Path) -> Result<SendOutcome> {
    let sent = tx.send_files(rx.peer_id(), vec![file.to_path_buf()]);
    Ok(tokio::time::timeout(STEP, sent)
        .await
        .map_err(|_| anyhow!("the offer did not end within {STEP:?}"))??)
}

/// The next offer shown: its id and the sender's given name.
async fn next_offer(events: &mut broadcast::Receiver<Event>) -> Result<(u64, Option<String>)> {
    tokio::time::timeout(STEP, async {
        loop {
            match events.recv().await {
                Ok(Event::OfferReceived { offer, contact, .. }) => return Ok((offer, contact)),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => return Err(anyhow!("{e}")),
            }
        }
    })
    .await
    .map_err(|_| anyhow!("no offer shown within {STEP:?}"))?
}
