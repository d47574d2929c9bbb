//! Where a command's requests run, like a torrent daemon and its remote: the node running on the
//! data dir (over its control socket) when there is one; otherwise a node started for this
//! command, or, for what needs no network, the data dir opened without a node.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use meshdrop_core::identity::verification_code;
use meshdrop_core::transfer::{ShareHealth, ShareInfo, Visibility};
use meshdrop_core::{
    Contact, DataDir, Error, Message, MessageId, Node, NodeConfig, PeerId, PeerInfo, Recipient,
    Room, Ticket,
};

use super::client::Client;
use super::protocol::{Attach, ContactNow, Request, Response, Step};
use super::running::Running;
use crate::links::LinkFlags;

/// Where requests run.
pub enum Backend {
    /// The node running on the data dir.
    Remote(Client),
    /// A node started for this command; stopped by [`Backend::close`].
    Local(Node),
    /// The data dir without a node (messages, rooms, contacts, identity).
    Offline(Box<DataDir>),
}

/// A request under way on a [`Backend`].
pub enum Call<'a> {
    /// On the running node; its answer is read from the socket.
    Remote(&'a mut Client),
    /// On this command's node (cancelled when dropped).
    Local(Running),
    /// Answered already.
    Offline(Option<Result<Response>>),
}

impl Call<'_> {
    /// The next update, or the end.
    pub async fn next(&mut self) -> Result<Step> {
        match self {
            Call::Remote(client) => client.next().await,
            Call::Local(running) => running.next().await,
            Call::Offline(end) => end
                .take()
                .unwrap_or_else(|| Err(anyhow!("the request has ended already")))
                .map(Step::Done),
        }
    }

    /// The result, skipping the updates.
    pub async fn finish(mut self) -> Result<Response> {
        loop {
            if let Step::Done(response) = self.next().await? {
                return Ok(response);
            }
        }
    }
}

/// Takes the payload of the response variant a request expects.
macro_rules! expect {
    ($response:expr, $variant:path) => {
        match $response {
            $variant(value) => Ok(value),
            other => Err(unexpected(&other)),
        }
    };
}

impl Backend {
    /// The running node, or a node started with `config` and `links`.
    pub async fn node(data_dir: &Path, config: NodeConfig, links: &LinkFlags) -> Result<Backend> {
        if let Some(client) = Client::connect(data_dir).await {
            crate::links::only_for_own_node(links)?;
            return Ok(Backend::Remote(client));
        }
        match Node::start(config).await {
            Ok(node) => {
                crate::links::start(&node, links).await?;
                Ok(Backend::Local(node))
            }
            Err(e) => {
                let late = Self::late(data_dir, e).await?;
                crate::links::only_for_own_node(links)?;
                Ok(late)
            }
        }
    }

    /// The running node, or the data dir opened without a node (`name` is kept when given).
    pub async fn offline(data_dir: &Path, name: Option<&str>) -> Result<Backend> {
        if let Some(client) = Client::connect(data_dir).await {
            return Ok(Backend::Remote(client));
        }
        match DataDir::open(data_dir, name) {
            Ok(dir) => Ok(Backend::Offline(Box::new(dir))),
            Err(e) => Self::late(data_dir, e).await,
        }
    }

    /// A node took the data dir after its socket was looked for: ask it once its socket is up.
    async fn late(data_dir: &Path, e: Error) -> Result<Backend> {
        let Error::AlreadyRunning { path } = e else {
            return Err(e.into());
        };
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if let Some(client) = Client::connect(data_dir).await {
                return Ok(Backend::Remote(client));
            }
        }
        bail!(
            "another meshdrop node holds data dir {} but does not answer on its control socket: \
             stop it, or pass another --data-dir to this command",
            path.display()
        )
    }

    /// Starts a request; follow it with [`Call::next`].
    pub async fn call(&mut self, req: Request) -> Result<Call<'_>> {
        Ok(match self {
            Backend::Remote(client) => {
                client.send(&req).await?;
                Call::Remote(client)
            }
            Backend::Local(node) => Call::Local(Running::attached({
                let node = node.clone();
                move |updates| async move { super::ops::execute(&node, req, &updates).await }
            })),
            Backend::Offline(dir) => Call::Offline(Some(offline(dir, req))),
        })
    }

    /// Runs a request to its end.
    pub async fn request(&mut self, req: Request) -> Result<Response> {
        self.call(req).await?.finish().await
    }

    /// Ends this command's use: stops the node started for it.
    pub async fn close(self) -> Result<()> {
        if let Backend::Local(node) = self {
            node.stop().await?;
        }
        Ok(())
    }

    /// This device's peer id and name.
    pub async fn id(&mut self) -> Result<(PeerId, String)> {
        match self.request(Request::Id).await? {
            Response::Id { peer, name } => Ok((peer, name)),
            other => Err(unexpected(&other)),
        }
    }

    /// Peers discovered, connected, added or remembered.
    pub async fn peers(&mut self) -> Result<Vec<PeerInfo>> {
        expect!(self.request(Request::Peers).await?, Response::Peers)
    }

    /// Connects to an address: the peer that answered and the verification code.
    pub async fn connect(&mut self, address: &str) -> Result<(PeerId, String)> {
        let address = address.to_string();
        match self.request(Request::Connect { address }).await? {
            Response::Connected {
                peer,
                verification_code,
            } => Ok((peer, verification_code)),
            other => Err(unexpected(&other)),
        }
    }

    /// The contacts.
    pub async fn contacts(&mut self) -> Result<Vec<Contact>> {
        expect!(self.request(Request::Contacts).await?, Response::Contacts)
    }

    /// Adds, renames or accepts a contact (`Request::AddContact`, `Request::RenameContact`,
    /// `Request::AcceptContactOffer`): the contact as it is now.
    pub async fn contact(&mut self, req: Request) -> Result<ContactNow> {
        expect!(self.request(req).await?, Response::Contact)
    }

    /// Makes contact `peer` a stranger again.
    pub async fn remove_contact(&mut self, peer: PeerId) -> Result<()> {
        match self.request(Request::RemoveContact { peer }).await? {
            Response::ContactRemoved { .. } => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// What this device serves.
    pub async fn shares(&mut self) -> Result<Vec<ShareInfo>> {
        expect!(self.request(Request::Shares).await?, Response::Shares)
    }

    /// Stops serving the share `id`; what it was.
    pub async fn unshare(&mut self, id: &str) -> Result<ShareInfo> {
        let id = id.to_string();
        expect!(
            self.request(Request::Unshare { id }).await?,
            Response::Unshared
        )
    }

    /// Checks the share `id` (every share when `None`) and repairs what came from others.
    pub async fn verify(&mut self, id: Option<&str>) -> Result<Vec<ShareHealth>> {
        let id = id.map(str::to_string);
        expect!(
            self.request(Request::Verify { id }).await?,
            Response::Verified
        )
    }

    /// Who may offer files, after setting it when `set` is given.
    pub async fn visibility(&mut self, set: Option<Visibility>) -> Result<Visibility> {
        let req = Request::Visibility { set };
        expect!(self.request(req).await?, Response::Visibility)
    }

    /// Every stored message.
    pub async fn messages(&mut self) -> Result<Vec<Message>> {
        expect!(self.request(Request::Messages).await?, Response::Messages)
    }

    /// The rooms this device is in.
    pub async fn rooms(&mut self) -> Result<Vec<Room>> {
        expect!(self.request(Request::Rooms).await?, Response::Rooms)
    }

    /// Creates a room (`Request::CreateRoom`) or joins one (`Request::JoinRoom`).
    pub async fn room(&mut self, req: Request) -> Result<Room> {
        expect!(self.request(req).await?, Response::Room)
    }

    /// Queues a message, with files attached when `attach` is not empty (served until unshared
    /// when `pin`).
    pub async fn send_message(
        &mut self,
        to: Recipient,
        text: &str,
        attach: Attach,
    ) -> Result<MessageId> {
        let text = text.to_string();
        let req = Request::SendMessage {
            to,
            text,
            attach: attach.paths,
            pin: attach.pin,
            carry: attach.carry,
        };
        match self.request(req).await? {
            Response::MessageQueued { id } => Ok(id),
            other => Err(unexpected(&other)),
        }
    }

    /// Shares files and folders (absolute paths); the ticket offers this device as a contact
    /// when `offer_contact`.
    pub async fn share(&mut self, paths: Vec<PathBuf>, offer_contact: bool) -> Result<Ticket> {
        let req = Request::Share {
            paths,
            offer_contact,
        };
        match self.request(req).await? {
            Response::Shared { ticket } => Ok(ticket),
            other => Err(unexpected(&other)),
        }
    }
}

/// What the data dir answers without a node.
fn offline(dir: &DataDir, req: Request) -> Result<Response> {
    Ok(match req {
        Request::Id => Response::Id {
            peer: dir.peer_id(),
            name: dir.name().to_string(),
        },
        Request::Contacts => Response::Contacts(dir.contacts()?),
        Request::AddContact { peer, name } => {
            let new = !dir.contacts()?.iter().any(|c| c.peer == peer);
            dir.add_contact(&peer, &name)?;
            Response::Contact(contact_now(dir, peer, new)?)
        }
        Request::RenameContact { peer, name } => {
            dir.rename_contact(&peer, &name)?;
            Response::Contact(contact_now(dir, peer, false)?)
        }
        Request::RemoveContact { peer } => {
            dir.remove_contact(&peer)?;
            Response::ContactRemoved { peer }
        }
        Request::Messages => Response::Messages(dir.messages()?),
        Request::Rooms => Response::Rooms(dir.rooms()),
        Request::CreateRoom { name } => Response::Room(dir.create_room(&name)?),
        Request::JoinRoom { invite } => Response::Room(dir.join_room(&invite)?),
        other => bail!("{other:?} needs a running node"),
    })
}

/// Contact `peer` as the data dir has it now, with its code.
fn contact_now(dir: &DataDir, peer: PeerId, new: bool) -> Result<ContactNow> {
    let contact = dir
        .contacts()?
        .into_iter()
        .find(|c| c.peer == peer)
        .ok_or_else(|| anyhow!("contact {peer} vanished"))?;
    Ok(ContactNow {
        contact,
        verification_code: verification_code(&dir.peer_id(), &peer),
        new,
    })
}

/// A response that does not answer the request (a node of another version).
pub fn unexpected(response: &Response) -> anyhow::Error {
    let text = format!("{response:?}");
    anyhow!("unexpected answer from the node: {text:.200}")
}
