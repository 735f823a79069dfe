//! Runs the shared client conformance table, `proto/conformance/cases.txt` (its header documents the format),
//! through this crate's API against a fresh gmemd (GMEMD_BINARY) started as the header says. Every case runs,
//! in file order, on one connection; the test fails naming every case that did not hold. The table runs twice,
//! each time on a fresh daemon: once all on the socket, once with the data-path ops on a ring with a 4 MiB data
//! area (the header's "Transports").

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::Daemon;
use gmem::wire::{RawAtomic, atomic_op, errno};
use gmem::{Attributes, Client, Error, Event, GpcHandle, Ring, Segment};

fn cases_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto/conformance/cases.txt")
}

/// One line of the table.
struct Case {
    line: usize,
    name: String,
    op: String,
    args: BTreeMap<String, String>,
    expect: Vec<String>,
}

fn parse(text: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    for (k, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = t.split('|').map(str::trim).collect();
        assert_eq!(fields.len(), 3, "line {}: expected `name | op args | expect`: {t}", k + 1);
        let mut words = fields[1].split_whitespace();
        let op = words.next().unwrap_or_else(|| panic!("line {}: no op", k + 1)).to_string();
        let args = words
            .map(|w| {
                let (key, v) = w.split_once('=').unwrap_or_else(|| panic!("line {}: `{w}` is not key=value", k + 1));
                (key.to_string(), v.to_string())
            })
            .collect();
        let expect = fields[2].split_whitespace().map(str::to_string).collect();
        cases.push(Case { line: k + 1, name: fields[0].to_string(), op, args, expect });
    }
    cases
}

fn num(s: &str) -> Result<u64, String> {
    let r = match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.map_err(|_| format!("`{s}` is not a number"))
}

fn hex(s: &str) -> Result<Vec<u8>, String> {
    if s.len() % 2 != 0 {
        return Err(format!("`{s}`: odd number of hex digits"));
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| format!("`{s}`: {e}"))).collect()
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn segments(s: &str) -> Result<Vec<Segment>, String> {
    let mut out = Vec::new();
    for item in s.split(',').filter(|i| !i.is_empty()) {
        let (seg, count) = match item.split_once('*') {
            Some((seg, n)) => (seg, num(n)?),
            None => (item, 1),
        };
        let (gpa, len) = seg.split_once(':').ok_or_else(|| format!("segment `{seg}` is not GPA:LEN"))?;
        let len = u32::try_from(num(len)?).map_err(|_| format!("segment length `{len}` over u32"))?;
        out.extend(std::iter::repeat_n(Segment::new(num(gpa)?, len), count as usize));
    }
    Ok(out)
}

/// What an op produced.
enum Outcome {
    Ok { data: Option<Vec<u8>>, old: Option<u64>, event: Option<Event>, info: Option<gmem::Info> },
    Failed(Error),
    NoEvent,
}

impl Outcome {
    fn ok() -> Outcome {
        Outcome::Ok { data: None, old: None, event: None, info: None }
    }
    fn data(d: Vec<u8>) -> Outcome {
        Outcome::Ok { data: Some(d), old: None, event: None, info: None }
    }
    fn old(v: u64) -> Outcome {
        Outcome::Ok { data: None, old: Some(v), event: None, info: None }
    }
}

/// Runs the table against one connection, remembering the handles it activates.
struct Runner {
    client: Client,
    /// With a ring, the data-path ops go through it.
    ring: Option<Ring>,
    handles: Vec<GpcHandle>,
}

impl Runner {
    fn arg<'a>(&self, c: &'a Case, key: &str) -> Result<&'a str, String> {
        c.args.get(key).map(String::as_str).ok_or_else(|| format!("missing {key}="))
    }

    fn n(&self, c: &Case, key: &str) -> Result<u64, String> {
        num(self.arg(c, key)?)
    }

    fn n32(&self, c: &Case, key: &str) -> Result<u32, String> {
        u32::try_from(self.n(c, key)?).map_err(|_| format!("{key}= over u32"))
    }

    fn handle(&self, c: &Case) -> Result<GpcHandle, String> {
        let v = self.arg(c, "handle")?;
        let Some(var) = v.strip_prefix('$') else {
            return Ok(GpcHandle::from_raw(num(v)?));
        };
        let index = if var == "h" {
            self.handles.len()
        } else {
            var.strip_prefix('h').and_then(|k| k.parse::<usize>().ok()).ok_or_else(|| format!("bad variable ${var}"))?
        };
        index.checked_sub(1).and_then(|i| self.handles.get(i)).copied().ok_or_else(|| format!("${var} is not set"))
    }

    fn atomic(&self, c: &Case) -> Result<RawAtomic, String> {
        let op = match self.arg(c, "kind")? {
            "load" => atomic_op::LOAD,
            "store" => atomic_op::STORE,
            "xchg" => atomic_op::XCHG,
            "cmpxchg" => atomic_op::CMPXCHG,
            "fetch_add" => atomic_op::FETCH_ADD,
            "fetch_or" => atomic_op::FETCH_OR,
            "fetch_and" => atomic_op::FETCH_AND,
            k => return Err(format!("unknown kind {k}")),
        };
        let width = u8::try_from(self.n(c, "size")?).map_err(|_| "size over 255".to_string())?;
        let opt = |k| c.args.get(k).map(|v| num(v)).transpose().map(|v| v.unwrap_or(0));
        Ok(RawAtomic { op, width, operand: opt("value")?, expected: opt("expected")? })
    }

    /// Write data: data=HEX, or len= fill=XX.
    fn write_data(&self, c: &Case) -> Result<Vec<u8>, String> {
        match c.args.get("data") {
            Some(d) => hex(d),
            None => {
                let fill = hex(self.arg(c, "fill")?)?;
                let [byte] = fill[..] else { return Err("fill= is not one byte".into()) };
                Ok(vec![byte; self.n(c, "len")? as usize])
            }
        }
    }

    fn run(&mut self, c: &Case) -> Result<Outcome, String> {
        let cl = &mut self.client;
        let r: Result<Outcome, Error> = match c.op.as_str() {
            "info" => Ok(Outcome::Ok { data: None, old: None, event: None, info: Some(*cl.info()) }),
            "ping" => {
                let payload = c.args.get("data").map(|d| hex(d)).transpose()?.unwrap_or_default();
                match &mut self.ring {
                    Some(r) if payload.is_empty() => r.ping().map(|()| Outcome::data(Vec::new())),
                    _ => self.client.echo(&payload).map(Outcome::data),
                }
            }
            "read" => {
                let mut buf = vec![0u8; self.n(c, "len")? as usize];
                let gpa = self.n(c, "gpa")?;
                match &mut self.ring {
                    Some(r) => r.read(gpa, &mut buf),
                    None => self.client.read(gpa, &mut buf),
                }
                .map(|()| Outcome::data(buf))
            }
            "write" => {
                let (gpa, data) = (self.n(c, "gpa")?, self.write_data(c)?);
                match &mut self.ring {
                    Some(r) => r.write(gpa, &data),
                    None => self.client.write(gpa, &data),
                }
                .map(|()| Outcome::ok())
            }
            "readv" => {
                let segs = segments(self.arg(c, "segs")?)?;
                let mut buf = vec![0u8; segs.iter().map(|s| s.len as usize).sum()];
                match &mut self.ring {
                    Some(r) => r.readv(&segs, &mut buf),
                    None => self.client.readv(&segs, &mut buf),
                }
                .map(|()| Outcome::data(buf))
            }
            "writev" => {
                let (segs, data) = (segments(self.arg(c, "segs")?)?, hex(self.arg(c, "data")?)?);
                match &mut self.ring {
                    Some(r) => r.writev(&segs, &data),
                    None => self.client.writev(&segs, &data),
                }
                .map(|()| Outcome::ok())
            }
            "gpc_activate" => {
                let (gpa, len) = (self.n(c, "gpa")?, self.n32(c, "len")?);
                let r = self.client.gpc_activate(gpa, len);
                if let Ok(h) = r {
                    self.handles.push(h);
                }
                r.map(|_| Outcome::ok())
            }
            "gpc_read" => {
                let (h, offset) = (self.handle(c)?, self.n32(c, "offset")?);
                let mut buf = vec![0u8; self.n(c, "len")? as usize];
                match &mut self.ring {
                    Some(r) => r.gpc_read(h, offset, &mut buf),
                    None => self.client.gpc_read(h, offset, &mut buf),
                }
                .map(|()| Outcome::data(buf))
            }
            "gpc_write" => {
                let (h, offset, data) = (self.handle(c)?, self.n32(c, "offset")?, hex(self.arg(c, "data")?)?);
                match &mut self.ring {
                    Some(r) => r.gpc_write(h, offset, &data),
                    None => self.client.gpc_write(h, offset, &data),
                }
                .map(|()| Outcome::ok())
            }
            "gpc_refresh" => {
                let (h, gpa, len) = (self.handle(c)?, self.n(c, "gpa")?, self.n32(c, "len")?);
                self.client.gpc_refresh(h, gpa, len).map(|()| Outcome::ok())
            }
            "gpc_deactivate" => {
                let h = self.handle(c)?;
                self.client.gpc_deactivate(h).map(|()| Outcome::ok())
            }
            "gpc_atomic" => {
                let (h, offset, a) = (self.handle(c)?, self.n32(c, "offset")?, self.atomic(c)?);
                match &mut self.ring {
                    Some(r) => r.gpc_atomic_raw(h, offset, a),
                    None => self.client.gpc_atomic_raw(h, offset, a),
                }
                .map(Outcome::old)
            }
            "atomic" => {
                let (gpa, a) = (self.n(c, "gpa")?, self.atomic(c)?);
                match &mut self.ring {
                    Some(r) => r.atomic_raw(gpa, a),
                    None => self.client.atomic_raw(gpa, a),
                }
                .map(Outcome::old)
            }
            "set_attributes" => {
                let (gpa, size, a) = (self.n(c, "gpa")?, self.n(c, "size")?, self.n(c, "attributes")?);
                self.client.set_attributes(gpa, size, Attributes::from_raw(a)).map(|()| Outcome::ok())
            }
            "discard" => {
                let (gpa, size) = (self.n(c, "gpa")?, self.n(c, "size")?);
                self.client.discard(gpa, size).map(|()| Outcome::ok())
            }
            "page_state" => {
                let (gpa, npages) = (self.n(c, "gpa")?, self.n32(c, "npages")?);
                // The poller serves entries in order: once a PING completes, the reference of an earlier ring
                // access is gone (the header's advice for refcount checks).
                if let Some(r) = &mut self.ring {
                    r.ping().map_err(|e| format!("ring PING before page_state: {e}"))?;
                }
                self.client.page_state(gpa, npages).map(|pages| {
                    let mut bytes = Vec::new();
                    for p in pages {
                        bytes.extend_from_slice(&p.refcount.to_le_bytes());
                        bytes.extend_from_slice(&[p.state, 0]);
                    }
                    Outcome::data(bytes)
                })
            }
            "next_event" => self.client.poll_event().map(|e| match e {
                Some(e) => Outcome::Ok { data: None, old: None, event: Some(e), info: None },
                None => Outcome::NoEvent,
            }),
            op => return Err(format!("unknown op {op}")),
        };
        Ok(r.unwrap_or_else(Outcome::Failed))
    }

    fn check(&mut self, c: &Case) -> Result<(), String> {
        let outcome = self.run(c)?;
        let (kind, checks) = c.expect.split_first().ok_or("empty expectation")?;
        match (kind.as_str(), outcome) {
            ("errno", Outcome::Failed(e)) => {
                let want = checks.first().ok_or("errno without a name")?;
                let want_n = errno::from_name(want).ok_or_else(|| format!("unknown errno name {want}"))?;
                if e.errno() != want_n {
                    return Err(format!("expected {want}, got: {e}"));
                }
                Ok(())
            }
            ("none", Outcome::NoEvent) => Ok(()),
            ("ok", Outcome::Ok { data, old, event, info }) => {
                for check in checks {
                    let (key, value) = check.split_once('=').ok_or_else(|| format!("bad check `{check}`"))?;
                    self.check_one(key, value, &data, old, &event, &info)?;
                }
                if checks.is_empty() && event.is_some() {
                    return Err(format!("unexpected event {event:?}"));
                }
                Ok(())
            }
            (_, Outcome::Failed(e)) => Err(format!("expected `{}`, got: {e}", c.expect.join(" "))),
            (_, Outcome::NoEvent) => Err(format!("expected `{}`, got no event", c.expect.join(" "))),
            (_, Outcome::Ok { event, .. }) => Err(format!(
                "expected `{}`, got success{}",
                c.expect.join(" "),
                event.map(|e| format!(" {e:?}")).unwrap_or_default()
            )),
        }
    }

    fn check_one(
        &self,
        key: &str,
        value: &str,
        data: &Option<Vec<u8>>,
        old: Option<u64>,
        event: &Option<Event>,
        info: &Option<gmem::Info>,
    ) -> Result<(), String> {
        let data = || data.as_ref().ok_or_else(|| format!("{key}= on an op without reply bytes"));
        match key {
            "data" => {
                let got = data()?;
                if *got != hex(value)? {
                    return Err(format!("data {} != expected {value}", to_hex(got)));
                }
            }
            "len" => {
                if data()?.len() as u64 != num(value)? {
                    return Err(format!("{} bytes, expected {value}", data()?.len()));
                }
            }
            "fill" => {
                let [b] = hex(value)?[..] else { return Err("fill= is not one byte".into()) };
                if let Some(at) = data()?.iter().position(|&x| x != b) {
                    return Err(format!("byte {at} is not {value}"));
                }
            }
            "old" => {
                if old != Some(num(value)?) {
                    return Err(format!("old value {old:?}, expected {value}"));
                }
            }
            "handle" | "reason" => {
                let Some(Event::GpcInvalidated { handle, reason }) = event else {
                    return Err(format!("expected a GPC_INVALIDATED event, got {event:?}"));
                };
                let ok = if key == "handle" {
                    let want = if value.starts_with('$') {
                        let case = Case {
                            line: 0,
                            name: String::new(),
                            op: String::new(),
                            args: [("handle".to_string(), value.to_string())].into(),
                            expect: vec![],
                        };
                        self.handle(&case)?
                    } else {
                        GpcHandle::from_raw(num(value)?)
                    };
                    *handle == want
                } else {
                    u64::from(reason.raw()) == num(value)?
                };
                if !ok {
                    return Err(format!("event {event:?} does not have {key}={value}"));
                }
            }
            "page_size" | "region_size" | "max_payload" | "max_gpcs" | "max_segments" | "features" => {
                let i = info.as_ref().ok_or_else(|| format!("{key}= on an op other than info"))?;
                let got = match key {
                    "page_size" => u64::from(i.page_size),
                    "region_size" => i.region_size,
                    "max_payload" => u64::from(i.max_payload),
                    "max_gpcs" => u64::from(i.max_gpcs),
                    "max_segments" => u64::from(i.max_segments),
                    _ => u64::from(i.features),
                };
                if got != num(value)? {
                    return Err(format!("{key} is {got}, expected {value}"));
                }
            }
            _ => return Err(format!("unknown check {key}=")),
        }
        Ok(())
    }
}

#[test]
fn conformance_cases_on_the_socket() {
    run_table(false);
}

#[test]
fn conformance_cases_on_a_ring() {
    run_table(true);
}

fn run_table(on_ring: bool) {
    let path = cases_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}. The shared conformance table proto/conformance/cases.txt must be in the repository \
             (it comes from the C client's branch); this test does not skip without it",
            path.display()
        )
    });
    let cases = parse(&text);
    assert!(!cases.is_empty(), "{}: no cases", path.display());
    let mut names = std::collections::BTreeSet::new();
    for c in &cases {
        assert!(names.insert(&c.name), "line {}: case name {} repeats", c.line, c.name);
    }

    let d = Daemon::start(&["--size", "64M", "--max-payload", "1M", "--max-gpcs", "8"]);
    let mut client = d.connect();
    let ring = on_ring.then(|| client.ring(8, 4 << 20).unwrap_or_else(|e| panic!("{e}")));
    let mut runner = Runner { client, ring, handles: Vec::new() };
    let transport = if on_ring { "on a ring" } else { "on the socket" };
    let mut failures = Vec::new();
    for c in &cases {
        if let Err(why) = runner.check(c) {
            failures.push(format!("line {} {}: {why}", c.line, c.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} conformance cases failed {transport}:\n  {}",
        failures.len(),
        cases.len(),
        failures.join("\n  ")
    );
    eprintln!("{} conformance cases passed {transport}", cases.len());
}
