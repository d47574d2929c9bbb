//! Messages on the terminal: `msg PEER TEXT [--attach PATH...]`, `inbox`, `chat`,
//! `room create|join|list`. Each asks the node running on the data dir when there is one;
//! otherwise `msg` and `chat` start a node for their own duration, and `inbox` and `room` open
//! the data dir without a node. A peer is named by a contact's name, its peer id, or (through
//! the running node, with a warning) the name a stranger claims.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use meshdrop_core::{Event, Message, MessageId, MessageState, Recipient};
use serde_json::json;
use tokio::io::AsyncBufReadExt;

use crate::Cli;
use crate::commands::{absolute, config};
use crate::control::protocol::Attach;
use crate::control::{Backend, Request};
use crate::output::Output;
use crate::text::clean;

/// What to do with rooms.
#[derive(clap::Subcommand, Debug)]
pub enum RoomCommand {
    /// Create a room and print its invite (share it with the people who should join).
    Create {
        /// The room's name.
        name: String,
    },
    /// Join a room from its invite (`meshroom1…`).
    Join {
        /// The invite.
        invite: String,
    },
    /// List the rooms this device is in, with their invites.
    List,
}

/// What `msg` sends.
pub struct Send<'a> {
    /// The recipient as typed: a peer id, a contact's name, or `room:ID`.
    pub to: &'a str,
    /// The text.
    pub text: &'a str,
    /// Files and folders to attach.
    pub attach: &'a [PathBuf],
    /// Serve the attachment until unshared.
    pub pin: bool,
    /// Contacts (as typed) asked to carry the attachment for the recipient.
    pub carry: &'a [String],
    /// When no node runs here, how long to try handing the message over.
    pub wait: Duration,
}

/// `msg PEER TEXT [--attach PATH...]`: queues a message to a peer (id or contact name), or to a
/// room (`room:ID`), with the attached files shared from this device. A running node delivers it
/// (and serves the attachment); otherwise a node started here tries until the message is handed
/// over or `wait` passes (it stays queued then, and the attachment is served by later runs).
pub async fn msg(cli: &Cli, data_dir: &Path, out: Output, send: Send<'_>) -> Result<()> {
    let attach = absolute(send.attach)?;
    // Resolved before a node starts: a mistyped name costs no network.
    let mut backend = Backend::offline(data_dir, None).await?;
    let remote = matches!(backend, Backend::Remote(_));
    let mut carry = Vec::new();
    for typed in send.carry {
        match recipient(&mut backend, typed).await? {
            Recipient::Peer(p) => carry.push(p),
            Recipient::Room(_) => bail!("--carry takes a contact, not a room"),
        }
    }
    let attach = Attach {
        paths: attach,
        pin: send.pin,
        carry,
    };
    let to = match recipient(&mut backend, send.to).await {
        Ok(to) if remote => {
            let id = backend.send_message(to, send.text, attach).await?;
            report(
                out,
                id,
                &to,
                MessageState::Queued,
                "the running node delivers it",
            );
            return Ok(());
        }
        to => {
            drop(backend); // its lock on the data dir, before a node takes it
            to?
        }
    };
    let mut backend = Backend::node(data_dir, config(cli, data_dir)?, &cli.links).await?;
    let state = send_and_follow(&mut backend, to, send.text, attach, send.wait).await;
    backend.close().await?;
    let (id, state) = state?;
    let note = match state {
        MessageState::Queued => "no path to it yet; it is sent the next time meshdrop runs here",
        MessageState::Sent => "handed over; a receipt marks it delivered",
        MessageState::Delivered => "the recipient has it",
        MessageState::Failed => "it expired",
    };
    report(out, id, &to, state, note);
    Ok(())
}

/// Sends on this command's node and follows the message until it is handed over (or `wait`
/// passes); on a node that started meanwhile, it is just queued.
async fn send_and_follow(
    backend: &mut Backend,
    to: Recipient,
    text: &str,
    attach: Attach,
    wait: Duration,
) -> Result<(MessageId, MessageState)> {
    let mut events = match &*backend {
        Backend::Local(node) => Some(node.events()),
        _ => None,
    };
    let id = backend.send_message(to, text, attach).await?;
    let state = match &mut events {
        Some(events) => follow(events, id, wait).await,
        None => MessageState::Queued,
    };
    Ok((id, state))
}

/// The recipient a user typed: `room:ID`, or a peer (see [`crate::resolve::peer`]; the names
/// strangers claim are known only to a running node). A stranger found by its claim is used
/// with a warning on stderr.
async fn recipient(backend: &mut Backend, typed: &str) -> Result<Recipient> {
    if let Ok(Recipient::Room(room)) = typed.trim().parse::<Recipient>() {
        return Ok(Recipient::Room(room));
    }
    let (me, _) = backend.id().await?;
    let contacts = backend.contacts().await?;
    let remote = matches!(backend, Backend::Remote(_));
    let peers = match remote {
        true => backend.peers().await?,
        false => Vec::new(),
    };
    let Some(target) = crate::resolve::peer(typed, &contacts, &peers, &me)? else {
        let claims = match remote {
            true => "nor a name a device nearby claims",
            false => "(the names devices claim are known only to a running node)",
        };
        bail!(
            "{:?} is not a peer id, room:ID, nor a contact's name {claims}; see `meshdrop \
             contacts` and `meshdrop peers`",
            clean(typed.trim())
        );
    };
    if let Some(warning) = target.warning(&me) {
        eprintln!("{warning}");
    }
    Ok(Recipient::Peer(target.peer))
}

/// Waits until message `id` is handed over (or delivered, or failed), at most `wait`; after a
/// hand-over, waits briefly for the receipt too.
async fn follow(
    events: &mut tokio::sync::broadcast::Receiver<Event>,
    id: MessageId,
    wait: Duration,
) -> MessageState {
    let mut state = MessageState::Queued;
    let mut deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(Event::MessageStateChanged { id: i, state: s })) if i == id => {
                state = s;
                match s {
                    MessageState::Sent => {
                        let soon = tokio::time::Instant::now() + Duration::from_secs(3);
                        deadline = deadline.min(soon);
                    }
                    MessageState::Delivered | MessageState::Failed => return s,
                    MessageState::Queued => {}
                }
            }
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(_)) | Err(_) => return state,
        }
    }
}

fn report(out: Output, id: MessageId, to: &Recipient, state: MessageState, note: &str) {
    if out.json {
        out.raw(&json!({"event": "message_queued", "id": id, "to": to, "state": state}));
    } else {
        println!("message {id} to {to}: {} ({note})", state.as_str());
    }
}

/// `inbox`: every stored message in causal order (one JSON object per message with `--json`).
pub async fn inbox(data_dir: &Path, out: Output) -> Result<()> {
    let messages = Backend::offline(data_dir, None).await?.messages().await?;
    if !out.json && messages.is_empty() {
        println!("no messages");
    }
    for m in &messages {
        print_message(out, m);
    }
    Ok(())
}

/// Prints one message: a JSON object, or `time  from → to  [state]  text` (the author's name
/// when known), and the attachment's ticket on a line of its own.
pub fn print_message(out: Output, m: &Message) {
    if out.json {
        out.raw(&json!(m));
    } else {
        let from = match (&m.from_name, m.outgoing) {
            (Some(name), _) => clean(name).into_owned(),
            (None, true) => short(&m.from.to_string()),
            (None, false) => format!("{} (not a contact)", short(&m.from.to_string())),
        };
        println!(
            "{}  {from} → {}  [{}]  {}",
            utc(m.time),
            short(&m.to.to_string()),
            m.state.as_str(),
            clean(&m.text)
        );
        if let Some(ticket) = &m.attachment {
            println!("  attachment (meshdrop get): {ticket}");
        }
    }
}

fn short(id: &str) -> String {
    match id.strip_prefix("room:") {
        Some(room) => format!("room:{}", &room[..room.len().min(8)]),
        None => format!("…{}", &id[id.len().saturating_sub(8)..]),
    }
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of a Unix time in milliseconds.
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `room create|join|list`.
pub async fn room(data_dir: &Path, out: Output, cmd: &RoomCommand) -> Result<()> {
    let mut backend = Backend::offline(data_dir, None).await?;
    let rooms = match cmd {
        RoomCommand::Create { name } => {
            let name = name.clone();
            vec![backend.room(Request::CreateRoom { name }).await?]
        }
        RoomCommand::Join { invite } => {
            let invite = invite.clone();
            vec![backend.room(Request::JoinRoom { invite }).await?]
        }
        RoomCommand::List => backend.rooms().await?,
    };
    for r in &rooms {
        if out.json {
            let mut v = json!(r);
            v["event"] = json!("room");
            out.raw(&v);
        } else {
            println!("{}  room:{}\n  invite: {}", clean(&r.name), r.id, r.invite);
        }
    }
    if rooms.is_empty() && !out.json {
        println!("no rooms");
    }
    Ok(())
}

/// `chat [--room ROOM | --peer PEER]`: shows the conversation (new messages and state changes as
/// they come) and sends each typed line.
pub async fn chat(
    cli: &Cli,
    data_dir: &Path,
    out: Output,
    room: Option<&str>,
    peer: Option<&str>,
) -> Result<()> {
    let mut backend = Backend::node(data_dir, config(cli, data_dir)?, &cli.links).await?;
    let result = chat_loop(&mut backend, out, room, peer).await;
    backend.close().await?;
    result
}

async fn chat_loop(
    backend: &mut Backend,
    out: Output,
    room: Option<&str>,
    peer: Option<&str>,
) -> Result<()> {
    let rooms = backend.rooms().await?;
    let target = match (room, peer) {
        (Some(_), Some(_)) => bail!("chat either in a room or with a peer, not both"),
        (None, Some(p)) => match recipient(backend, p).await? {
            Recipient::Peer(p) => Recipient::Peer(p),
            Recipient::Room(_) => bail!("{p:?} is a room: use --room"),
        },
        (Some(r), None) => {
            let r = r.trim().trim_start_matches("room:");
            let found = rooms
                .iter()
                .find(|x| x.name == r || x.id.to_string() == r)
                .ok_or_else(|| {
                    anyhow!("not in a room {r:?}; join it with `meshdrop room join INVITE`")
                })?;
            Recipient::Room(found.id)
        }
        (None, None) => match rooms.as_slice() {
            [only] => Recipient::Room(only.id),
            _ => bail!(
                "say whom to chat with: --room ROOM or --peer PEER (rooms: `meshdrop room list`)"
            ),
        },
    };
    let in_conversation = |m: &Message| match target {
        Recipient::Room(_) => m.to == target,
        Recipient::Peer(p) => m.to == target || (m.from == p && !m.outgoing),
    };
    if !out.json {
        eprintln!("chatting with {target}; type a line and press Enter to send, Ctrl-D to leave");
    }
    let (tx, mut lines) = tokio::sync::mpsc::channel::<String>(8);
    tokio::spawn(async move {
        let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = stdin.next_line().await {
            if tx.send(line).await.is_err() {
                break;
            }
        }
    });
    let mut shown: HashMap<MessageId, MessageState> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(300));
    loop {
        tokio::select! {
            line = lines.recv() => match line {
                Some(line) if !line.trim().is_empty() => {
                    backend
                        .send_message(target, line.trim(), Attach::default())
                        .await?;
                }
                Some(_) => {}
                None => return Ok(()),
            },
            _ = tick.tick() => {
                for m in backend.messages().await?.iter().filter(|m| in_conversation(m)) {
                    if shown.insert(m.id, m.state) != Some(m.state) {
                        print_message(out, m);
                    }
                }
            }
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}
