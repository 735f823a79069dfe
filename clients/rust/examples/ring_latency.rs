//! Latency of the crate's `Ring::gpc_read` at depth 1.
//!
//! ```sh
//! cargo run --offline --release --example ring_latency -- --socket PATH [--duration S] [--warmup S] [--json]
//! ```
//!
//! The method of `gmem-bench ring --op gpc-read --depth 1`, so the two figures can be compared (issue 14: within
//! 1.2x; `Benchmarks/clients-ring.sh` runs both): one connection, a ring of 1 entry and 1 MiB of data area, one
//! GPC of a whole page at gpa 16 * page_size, then 8-byte GPC_READs at offset 0, one call after another. Each call
//! is timed with the monotonic clock around it (at depth 1 that is submission to completion); calls that start
//! after the warm-up and end before the end of the measured window are recorded. Percentiles come from the sorted
//! samples (at most `MAX_SAMPLES`; ops are counted beyond that). Prints
//! `rust ring gpc-read depth 1: N ops/s, p50 X ns, p99 Y ns`, or with `--json`
//! `{"client":"rust","ops_per_second":N,"p50_ns":X,"p99_ns":Y}`. Defaults: 2 s measured after 0.5 s.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use gmem::Client;

const MAX_SAMPLES: usize = 4 << 20;

struct Args {
    socket: String,
    duration: f64,
    warmup: f64,
    json: bool,
}

fn parse_args() -> Option<Args> {
    let mut args = Args { socket: String::new(), duration: 2.0, warmup: 0.5, json: false };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => args.json = true,
            "--socket" => args.socket = it.next()?,
            "--duration" => args.duration = seconds(&it.next()?).filter(|&s| s > 0.0)?,
            "--warmup" => args.warmup = seconds(&it.next()?)?,
            _ => return None,
        }
    }
    (!args.socket.is_empty()).then_some(args)
}

fn seconds(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|v| (0.0..=3600.0).contains(v))
}

/// Nearest rank: the smallest sample with at least `p` percent of the samples at or below it.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn main() -> ExitCode {
    let Some(args) = parse_args() else {
        eprintln!("usage: ring_latency --socket PATH [--duration S] [--warmup S] [--json]");
        return ExitCode::from(2);
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ring_latency: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), gmem::Error> {
    let mut client = Client::connect(&args.socket)?;
    let page = client.info().page_size;
    let mut ring = client.ring(1, 1 << 20)?;
    let handle = client.gpc_activate(16 * u64::from(page), page)?;
    // Touched now, so that no page fault lands in a measured call.
    let mut samples = vec![1u64; MAX_SAMPLES];
    let mut n = 0usize;
    let mut ops = 0u64;
    let mut value = [0u8; 8];

    let begin = Instant::now();
    let start = begin + Duration::from_secs_f64(args.warmup);
    let end = start + Duration::from_secs_f64(args.duration);
    loop {
        let sent = Instant::now();
        ring.gpc_read(handle, 0, &mut value)?;
        let done = Instant::now();
        if sent >= start && done <= end {
            ops += 1;
            if n < MAX_SAMPLES {
                samples[n] = (done - sent).as_nanos() as u64;
                n += 1;
            }
        }
        if done >= end {
            break;
        }
    }
    client.gpc_deactivate(handle)?;
    client.ring_close(ring)?;

    let samples = &mut samples[..n];
    samples.sort_unstable();
    let per_second = ops as f64 / args.duration;
    let (p50, p99) = (percentile(samples, 50.0), percentile(samples, 99.0));
    if args.json {
        println!("{{\"client\":\"rust\",\"ops_per_second\":{per_second:.1},\"p50_ns\":{p50},\"p99_ns\":{p99}}}");
    } else {
        println!("rust ring gpc-read depth 1: {per_second:.0} ops/s, p50 {p50} ns, p99 {p99} ns");
    }
    Ok(())
}
