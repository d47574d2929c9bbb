//! Draws the chart of the swarming benchmark (issue 4, "Benchmark"): each leecher's bytes over time.
//!
//! Input: one log per leecher, as `scripts/bench-swarm.sh` records them: every line is
//! `SECONDS<TAB>JSON`, where SECONDS is the time since the run started and JSON is one line of
//! `meshdrop --json get` output. Only `transfer_progress` and `transfer_finished` lines count; their
//! `peers` field (`[{peer, bytes}]`, bytes received from each provider in this run) is split into
//! bytes from the seeder (the peer id given with `--seeder`) and bytes from everyone else (the
//! other leechers).
//!
//! Output: an SVG with two panels sharing the time axis.
//! - Top: per leecher, MiB received (solid) and, in the same colour, the part of it that came from
//!   other leechers (dashed).
//! - Bottom: all leechers together, MiB from the seeder and MiB from other leechers, with the
//!   most the seeder's capped uplink could have sent since the start (`--cap-mbit`) as a thin line.
//!
//! Only the SVG backend of `plotters` is used (no font or image crates, cheap to compile);
//! `scripts/bench-swarm.sh` turns the SVG into a PNG with `rsvg-convert`.
//!
//! Usage: `swarm_chart --seeder PEER_ID --out FILE.svg [--title TEXT] [--cap-mbit N] LABEL=LOG...`

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use plotters::prelude::*;
use serde_json::Value;

const MIB: f64 = 1024.0 * 1024.0;

/// One line per leecher, in this order (colour-blind-friendly Okabe–Ito colours).
const COLOURS: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(240, 228, 66),
    RGBColor(0, 0, 0),
];

/// What one leecher had received at one moment.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Sample {
    /// Seconds since the run started.
    t: f64,
    /// Bytes received from the seeder.
    from_seeder: u64,
    /// Bytes received from any other peer.
    from_others: u64,
}

impl Sample {
    fn total(&self) -> u64 {
        self.from_seeder + self.from_others
    }
}

/// One leecher's log, read.
#[derive(Debug)]
struct Leecher {
    label: String,
    /// Starts with a zero sample at t = 0; in time order.
    samples: Vec<Sample>,
}

struct Args {
    seeder: String,
    out: PathBuf,
    title: String,
    cap_mbit: Option<f64>,
    logs: Vec<(String, PathBuf)>,
}

fn parse_args() -> Result<Args> {
    let mut seeder = None;
    let mut out = None;
    let mut title = "meshdrop swarm: bytes received over time".to_owned();
    let mut cap_mbit = None;
    let mut logs = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--seeder" => seeder = Some(value("--seeder")?),
            "--out" => out = Some(PathBuf::from(value("--out")?)),
            "--title" => title = value("--title")?,
            "--cap-mbit" => {
                let v = value("--cap-mbit")?;
                cap_mbit = Some(v.parse().with_context(|| format!("--cap-mbit {v:?}"))?);
            }
            "-h" | "--help" => {
                println!(
                    "usage: swarm_chart --seeder PEER_ID --out FILE.svg [--title TEXT] \
                     [--cap-mbit N] LABEL=LOG..."
                );
                std::process::exit(0);
            }
            other => {
                let Some((label, path)) = other.split_once('=') else {
                    bail!("unexpected argument {other:?} (expected LABEL=LOG)");
                };
                logs.push((label.to_owned(), PathBuf::from(path)));
            }
        }
    }
    ensure!(!logs.is_empty(), "give at least one LABEL=LOG");
    Ok(Args {
        seeder: seeder.context("--seeder PEER_ID is required")?,
        out: out.context("--out FILE.svg is required")?,
        title,
        cap_mbit,
        logs,
    })
}

/// Bytes from the seeder and from everyone else in a `peers` array of a progress or finished event.
fn split_peers(peers: &Value, seeder: &str) -> (u64, u64) {
    let mut split = (0, 0);
    for p in peers.as_array().into_iter().flatten() {
        let bytes = p.get("bytes").and_then(Value::as_u64).unwrap_or(0);
        if p.get("peer").and_then(Value::as_str) == Some(seeder) {
            split.0 += bytes;
        } else {
            split.1 += bytes;
        }
    }
    split
}

/// Reads one `SECONDS<TAB>JSON` log.
fn read_log(label: &str, path: &Path, seeder: &str) -> Result<Leecher> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut samples = vec![Sample {
        t: 0.0,
        from_seeder: 0,
        from_others: 0,
    }];
    for (n, line) in text.lines().enumerate() {
        let Some((t, json)) = line.split_once('\t') else {
            continue;
        };
        let t: f64 = t
            .trim()
            .parse()
            .with_context(|| format!("{}:{}: bad time {t:?}", path.display(), n + 1))?;
        let Ok(v) = serde_json::from_str::<Value>(json) else {
            continue;
        };
        if !matches!(
            v.get("event").and_then(Value::as_str),
            Some("transfer_progress" | "transfer_finished")
        ) {
            continue;
        }
        let (from_seeder, from_others) = split_peers(&v["peers"], seeder);
        samples.push(Sample {
            t,
            from_seeder,
            from_others,
        });
    }
    samples.sort_by(|a, b| a.t.total_cmp(&b.t));
    Ok(Leecher {
        label: label.to_owned(),
        samples,
    })
}

/// All leechers summed: at every moment any of them reported, the latest numbers of each added up.
fn swarm_totals(leechers: &[Leecher]) -> Vec<Sample> {
    let mut events: Vec<(usize, Sample)> = leechers
        .iter()
        .enumerate()
        .flat_map(|(i, l)| l.samples.iter().map(move |s| (i, *s)))
        .collect();
    events.sort_by(|a, b| a.1.t.total_cmp(&b.1.t));
    let mut latest = vec![(0u64, 0u64); leechers.len()];
    events
        .into_iter()
        .map(|(i, s)| {
            latest[i] = (s.from_seeder, s.from_others);
            Sample {
                t: s.t,
                from_seeder: latest.iter().map(|l| l.0).sum(),
                from_others: latest.iter().map(|l| l.1).sum(),
            }
        })
        .collect()
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB
}

/// A solid line with an entry in the legend.
fn labelled_line(
    chart: &mut ChartContext<
        '_,
        SVGBackend<'_>,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    points: impl IntoIterator<Item = (f64, f64)>,
    colour: RGBColor,
    label: &str,
) -> Result<()> {
    chart
        .draw_series(LineSeries::new(points, colour.stroke_width(3)))?
        .label(label)
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], colour.stroke_width(3)));
    Ok(())
}

/// The panel's legend, top left.
fn legend<'a, 'b: 'a>(
    chart: &mut ChartContext<
        'a,
        SVGBackend<'b>,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// One panel with its caption and mesh: seconds across, MiB up.
fn panel<'a, 'b>(
    area: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    caption: &str,
    t_max: f64,
    y_max: f64,
) -> Result<
    ChartContext<
        'a,
        SVGBackend<'b>,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
> {
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 17))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the leechers started")
        .y_desc("MiB")
        .x_label_formatter(&|t| format!("{t:.0}"))
        .y_label_formatter(&|m| format!("{m:.0}"))
        .label_style(("sans-serif", 14))
        .draw()?;
    Ok(chart)
}

fn draw(args: &Args, leechers: &[Leecher]) -> Result<()> {
    let totals = swarm_totals(leechers);
    let t_max = totals.last().map_or(1.0, |s| s.t).max(1.0) * 1.03;
    let leecher_max = leechers
        .iter()
        .flat_map(|l| l.samples.iter().map(|s| mib(s.total())))
        .fold(1.0, f64::max)
        * 1.08;
    let swarm_max = totals
        .iter()
        .map(|s| mib(s.from_seeder.max(s.from_others)))
        .fold(1.0, f64::max)
        * 1.15;

    let root = SVGBackend::new(&args.out, (1100, 820)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(&args.title, ("sans-serif", 24))?;
    let (top, bottom) = root.split_vertically(490);

    let mut chart = panel(
        &top,
        "per leecher: MiB received (solid), of which from other leechers (dashed)",
        t_max,
        leecher_max,
    )?;
    for (i, l) in leechers.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        labelled_line(
            &mut chart,
            l.samples.iter().map(|s| (s.t, mib(s.total()))),
            colour,
            &l.label,
        )?;
        chart.draw_series(DashedLineSeries::new(
            l.samples.iter().map(|s| (s.t, mib(s.from_others))),
            8,
            5,
            colour.stroke_width(2),
        ))?;
    }
    legend(&mut chart)?;

    let mut chart = panel(
        &bottom,
        "all leechers: MiB from the seeder vs from other leechers",
        t_max,
        swarm_max,
    )?;
    let seeder_colour = RGBColor(90, 90, 90);
    let others_colour = RGBColor(0, 158, 115);
    labelled_line(
        &mut chart,
        totals.iter().map(|s| (s.t, mib(s.from_seeder))),
        seeder_colour,
        "from the seeder",
    )?;
    labelled_line(
        &mut chart,
        totals.iter().map(|s| (s.t, mib(s.from_others))),
        others_colour,
        "from other leechers",
    )?;
    if let Some(cap) = args.cap_mbit {
        // The most a link capped at `cap` Mbit/s carries in t seconds (payload and overheads).
        let mib_per_s = cap * 1e6 / 8.0 / MIB;
        let t_end = (swarm_max / mib_per_s).min(t_max);
        chart
            .draw_series(LineSeries::new(
                [(0.0, 0.0), (t_end, t_end * mib_per_s)],
                BLACK.mix(0.5).stroke_width(1),
            ))?
            .label(format!("seeder uplink cap ({cap} Mbit/s)"))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 24, y)], BLACK.mix(0.5)));
    }
    legend(&mut chart)?;
    root.present()?;
    Ok(())
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let leechers = args
        .logs
        .iter()
        .map(|(label, path)| read_log(label, path, &args.seeder))
        .collect::<Result<Vec<_>>>()?;
    draw(&args, &leechers)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, from_seeder: u64, from_others: u64) -> Sample {
        Sample {
            t,
            from_seeder,
            from_others,
        }
    }

    #[test]
    fn progress_lines_split_bytes_by_source() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("l1.log");
        std::fs::write(
            &log,
            "0.50\t{\"event\":\"peer_connected\",\"peer\":\"S\"}\n\
             1.00\t{\"event\":\"transfer_progress\",\"peers\":[{\"peer\":\"S\",\"bytes\":10},{\"peer\":\"L2\",\"bytes\":5}]}\n\
             not a sample\n\
             2.00\t{\"event\":\"transfer_finished\",\"peers\":[{\"peer\":\"S\",\"bytes\":20},{\"peer\":\"L2\",\"bytes\":7},{\"peer\":\"L3\",\"bytes\":1}]}\n",
        )?;
        let l = read_log("l1", &log, "S")?;
        assert_eq!(
            l.samples,
            vec![sample(0.0, 0, 0), sample(1.0, 10, 5), sample(2.0, 20, 8)]
        );
        Ok(())
    }

    #[test]
    fn swarm_totals_add_each_leechers_latest_numbers() {
        let a = Leecher {
            label: "a".into(),
            samples: vec![sample(0.0, 0, 0), sample(1.0, 4, 0), sample(3.0, 8, 2)],
        };
        let b = Leecher {
            label: "b".into(),
            samples: vec![sample(0.0, 0, 0), sample(2.0, 3, 1)],
        };
        let totals = swarm_totals(&[a, b]);
        let last = totals.last().copied();
        assert_eq!(last, Some(sample(3.0, 11, 3)));
        assert_eq!(totals[totals.len() - 2], sample(2.0, 7, 1));
    }
}
