//! `shares`: what this device serves (each ticket's key, what it opens, how much it served);
//! `unshare ID`: stop serving one at once; `verify [ID]`: check what it serves against its
//! manifest and repair from peers. Through the running node, or a node started for the command.

use std::path::Path;

use anyhow::Result;
use indicatif::HumanBytes;
use meshdrop_core::transfer::{ShareInfo, ShareKind};
use serde_json::json;

use crate::Cli;
use crate::commands::config;
use crate::control::Backend;
use crate::messaging::utc;
use crate::output::Output;
use crate::text::clean;

/// `shares`: one line (or JSON object) per share.
pub async fn list(cli: &Cli, data_dir: &Path, out: Output) -> Result<()> {
    let mut backend = Backend::node(data_dir, config(cli, data_dir)?, &cli.links).await?;
    let shares = backend.shares().await;
    backend.close().await?;
    let shares = shares?;
    for s in &shares {
        if out.json {
            let mut v = json!(s);
            v["event"] = json!("share");
            out.raw(&v);
        } else {
            println!("{}", line(s));
        }
    }
    if shares.is_empty() && !out.json {
        println!("this device serves nothing");
    }
    Ok(())
}

/// `unshare ID`.
pub async fn unshare(cli: &Cli, data_dir: &Path, out: Output, id: &str) -> Result<()> {
    let mut backend = Backend::node(data_dir, config(cli, data_dir)?, &cli.links).await?;
    let gone = backend.unshare(id).await;
    backend.close().await?;
    let gone = gone?;
    if out.json {
        let mut v = json!(gone);
        v["event"] = json!("unshared");
        out.raw(&v);
    } else {
        println!(
            "stopped serving {} ({}): its ticket opens nothing here any more",
            gone.id,
            clean(&gone.name)
        );
    }
    Ok(())
}

/// `verify [ID]`: every file read and checked; a damaged file of a share that came from others
/// is fetched again from peers. Fails (after printing) when a file stays damaged.
pub async fn verify(cli: &Cli, data_dir: &Path, out: Output, id: Option<&str>) -> Result<()> {
    let mut backend = Backend::node(data_dir, config(cli, data_dir)?, &cli.links).await?;
    let checked = backend.verify(id).await;
    backend.close().await?;
    let checked = checked?;
    out.verified(&checked);
    if checked.is_empty() && !out.json {
        println!("this device serves nothing");
    }
    let left: Vec<&str> = checked
        .iter()
        .flat_map(|s| &s.damaged)
        .filter(|f| !f.repaired)
        .map(|f| f.file.as_str())
        .collect();
    if !left.is_empty() {
        anyhow::bail!(
            "{} file{} still damaged: {}",
            left.len(),
            if left.len() == 1 { " is" } else { "s are" },
            clean(&left.join(", "))
        );
    }
    Ok(())
}

/// `ID  KIND  NAME  SIZE (FILES)  since …  served …  EXPIRY`.
fn line(s: &ShareInfo) -> String {
    let files = if s.files == 1 { "file" } else { "files" };
    let expires = match s.expires {
        Some(at) => format!("expires {} UTC", utc(at.saturating_mul(1000))),
        None => "until unshared".into(),
    };
    format!(
        "{}  {:<10}  {}  {} ({} {files})  since {} UTC  served {}  {expires}",
        s.id,
        kind(s.kind),
        clean(&s.name),
        HumanBytes(s.bytes),
        s.files,
        utc(s.since.saturating_mul(1000)),
        HumanBytes(s.served),
    )
}

fn kind(kind: ShareKind) -> &'static str {
    match kind {
        ShareKind::Shared => "shared",
        ShareKind::Offer => "offer",
        ShareKind::Attachment => "attachment",
        ShareKind::Download => "download",
    }
}
