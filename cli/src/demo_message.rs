//! The demo's messaging step: a message reaches a device that was off when it was written,
//! carried by another device, and the receipt finds its way back to a sender who had left too.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use meshdrop_core::{Event, MessageId, MessageState, Node, NodeConfig};
use serde_json::json;
use tokio::sync::broadcast;

use crate::output::Output;

const STEP: Duration = Duration::from_secs(30);

/// The sender and the recipient: a data dir and a name each.
pub struct Ends<'a> {
    /// The sender's data dir and name (its node runs when the step starts).
    pub sender: (&'a Path, &'a str),
    /// The recipient's data dir and name (its node is stopped when the step starts).
    pub recipient: (&'a Path, &'a str),
}

/// Runs the step. `sender` is the running node of `ends.sender`; other running nodes carry.
pub async fn carry_step(sender: &Node, ends: Ends<'_>, out: Output) -> Result<()> {
    let recipient = meshdrop_core::identity::peer_id_of(ends.recipient.0)?
        .ok_or_else(|| anyhow::anyhow!("{} has no identity yet", ends.recipient.0.display()))?;
    let text = "Meet at the water tower at 6. Bring the radio.";
    let started = Instant::now();
    let mut events = sender.events();
    let id = sender.send_message(recipient, text)?;
    wait_state(&mut events, id, MessageState::Sent).await?;
    let handed = started.elapsed();
    crate::demo::say(
        out,
        "demo_message_sent",
        json!({"from": ends.sender.1, "to": ends.recipient.1, "id": id, "handed_over_ms": handed.as_millis()}),
        &format!(
            "{} writes to {} (who is off); a nearby device takes the encrypted message along after {} ms. {} leaves too.",
            ends.sender.1,
            ends.recipient.1,
            handed.as_millis(),
            ends.sender.1
        ),
    );
    sender.stop().await?;

    let back = Instant::now();
    let node =
        Node::start(NodeConfig::loopback(ends.recipient.0).with_name(ends.recipient.1)).await?;
    let mut rx = node.events();
    let got = tokio::time::timeout(STEP, async {
        loop {
            match rx.recv().await {
                Ok(Event::MessageReceived { message }) if message.id == id => return Ok(message),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => return Err(anyhow!("{e}")),
            }
        }
    })
    .await
    .map_err(|_| {
        anyhow!(
            "{} did not get the message within {STEP:?}",
            ends.recipient.1
        )
    })??;
    let copies = node.messages()?.iter().filter(|m| m.id == id).count();
    crate::demo::say(
        out,
        "demo_message_received",
        json!({"node": ends.recipient.1, "ms": back.elapsed().as_millis(), "text": got.text, "copies": copies}),
        &format!(
            "{} comes back and gets it {} ms later, through the carrier, exactly once ({copies} copy): \"{}\"",
            ends.recipient.1,
            back.elapsed().as_millis(),
            got.text
        ),
    );

    let returned = Instant::now();
    let sender = Node::start(NodeConfig::loopback(ends.sender.0).with_name(ends.sender.1)).await?;
    let mut events = sender.events();
    let delivered = wait_state(&mut events, id, MessageState::Delivered).await;
    crate::demo::say(
        out,
        "demo_message_delivered",
        json!({"node": ends.sender.1, "ms": returned.elapsed().as_millis(), "delivered": delivered.is_ok()}),
        &format!(
            "{} comes back and sees the message marked delivered {} ms later (the receipt was carried back).",
            ends.sender.1,
            returned.elapsed().as_millis()
        ),
    );
    sender.stop().await?;
    node.stop().await?;
    if copies != 1 {
        return Err(anyhow!("the message arrived {copies} times"));
    }
    delivered
}

async fn wait_state(
    events: &mut broadcast::Receiver<Event>,
    id: MessageId,
    want: MessageState,
) -> Result<()> {
    tokio::time::timeout(STEP, async {
        loop {
            match events.recv().await {
                Ok(Event::MessageStateChanged { id: i, state }) if i == id && state == want => {
                    return Ok(());
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => return Err(anyhow!("{e}")),
            }
        }
    })
    .await
    .map_err(|_| anyhow!("message not {} within {STEP:?}", want.as_str()))?
}
