//! A strict parser of the Prometheus text exposition format (0.0.4), written
//! independently of the daemon's renderer so the integration tests check
//! `/metrics` against the format rather than against the renderer.
//!
//! Strict means: the text ends with a line feed and has no carriage returns;
//! every sample belongs to a family declared by `# TYPE` before it, and a
//! family's lines form one group; at most one `# HELP` and one `# TYPE` per
//! family, both before its samples; metric and label names are valid, label names not repeated in a
//! sample nor reserved (`__`), label values quoted with only `\\`, `\"`, `\n`
//! escapes; values parse as f64 (`+Inf`, `-Inf`, `NaN` allowed); counters are
//! not negative; no series appears twice; histograms have `_bucket` samples
//! with an `le` label, cumulative counts in increasing `le` order, a `+Inf`
//! bucket equal to `_count`, and a `_sum`; summaries' samples carry
//! `quantile` (plain samples) or are `_sum`/`_count`.
#![allow(dead_code)]

use std::collections::HashSet;

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The sample's own name (with `_bucket`/`_sum`/`_count` for histograms).
    pub name: String,
    /// Labels in the order written.
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    /// The value of its label `name`.
    pub fn label(&self, name: &str) -> Option<&str> {
        label(&self.labels, name)
    }
}

/// A metric family: its `# TYPE`, `# HELP` and samples.
#[derive(Clone, Debug, PartialEq)]
pub struct Family {
    pub name: String,
    /// counter, gauge, histogram, summary or untyped.
    pub kind: String,
    /// The unescaped help text; empty without `# HELP`.
    pub help: String,
    pub samples: Vec<Sample>,
}

const KINDS: [&str; 5] = ["counter", "gauge", "histogram", "summary", "untyped"];

/// Parses the whole exposition strictly (see the module documentation).
/// The error names the 1-based line number and the reason.
pub fn parse(text: &str) -> Result<Vec<Family>, String> {
    if !text.is_empty() && !text.ends_with('\n') {
        let n = text.lines().count();
        return Err(format!(
            "line {n}: the last line does not end with a line feed"
        ));
    }
    let mut p = Parser::default();
    for (i, line) in text.split_terminator('\n').enumerate() {
        p.line(line)
            .map_err(|e| format!("line {}: {e}: {line:?}", i + 1))?;
    }
    for f in &p.families {
        check_family(f).map_err(|e| format!("family {}: {e}", f.name))?;
    }
    Ok(p.families)
}

/// The value of the sample `name` with exactly these labels (in any order).
pub fn value(families: &[Family], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    families
        .iter()
        .flat_map(|f| f.samples.iter())
        .find(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
        })
        .map(|s| s.value)
}

/// The family declared as `name`.
pub fn family<'a>(families: &'a [Family], name: &str) -> Option<&'a Family> {
    families.iter().find(|f| f.name == name)
}

/// The sum of the values of every sample named `name`, whatever its labels.
pub fn sum(families: &[Family], name: &str) -> f64 {
    families
        .iter()
        .flat_map(|f| f.samples.iter())
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .sum()
}

#[derive(Default)]
struct Parser {
    families: Vec<Family>,
    /// Index of the family whose samples are being read, if any.
    current: Option<usize>,
    /// Families that had samples and were followed by another family's.
    closed: HashSet<usize>,
    helped: HashSet<usize>,
    typed: HashSet<usize>,
    series: HashSet<String>,
}

impl Parser {
    fn line(&mut self, line: &str) -> Result<(), String> {
        if line.contains('\r') {
            return Err("carriage return in line".into());
        }
        let trimmed = line.trim_start_matches([' ', '\t']);
        if trimmed.is_empty() {
            return Ok(());
        }
        if let Some(rest) = trimmed.strip_prefix('#') {
            return self.comment(rest);
        }
        self.sample(trimmed)
    }

    fn comment(&mut self, rest: &str) -> Result<(), String> {
        let rest = rest.trim_start_matches([' ', '\t']);
        let (keyword, rest) = split_token(rest);
        match keyword {
            "HELP" | "TYPE" => {}
            _ => return Ok(()), // an ordinary comment
        }
        let rest = rest.trim_start_matches([' ', '\t']);
        let (name, rest) = split_token(rest);
        if !valid_metric_name(name) {
            return Err(format!("invalid metric name {name:?} in # {keyword}"));
        }
        let idx = self.family_index(name);
        if self.closed.contains(&idx) {
            return Err(format!("# {keyword} for {name} after its group ended"));
        }
        if keyword == "HELP" {
            if !self.helped.insert(idx) {
                return Err(format!("second # HELP for {name}"));
            }
            if !self.families[idx].samples.is_empty() {
                return Err(format!("# HELP for {name} after its samples"));
            }
            // One blank separates the name from the docstring, which may be empty.
            let doc = rest
                .strip_prefix([' ', '\t'])
                .map(|d| d.trim_start_matches([' ', '\t']))
                .unwrap_or(rest);
            if !rest.is_empty() && doc.len() == rest.len() {
                return Err("no blank after the name in # HELP".into());
            }
            self.families[idx].help = unescape(doc, false)?;
        } else {
            if !self.typed.insert(idx) {
                return Err(format!("second # TYPE for {name}"));
            }
            if !self.families[idx].samples.is_empty() {
                return Err(format!("# TYPE for {name} after its samples"));
            }
            let kind = rest.trim_matches([' ', '\t']);
            if !KINDS.contains(&kind) {
                return Err(format!("unknown type {kind:?}"));
            }
            self.families[idx].kind = kind.to_string();
        }
        self.switch_to(idx);
        Ok(())
    }

    /// The index of the family `name`, declaring it (untyped) if new.
    fn family_index(&mut self, name: &str) -> usize {
        if let Some(i) = self.families.iter().position(|f| f.name == name) {
            return i;
        }
        self.families.push(Family {
            name: name.to_string(),
            kind: "untyped".to_string(),
            help: String::new(),
            samples: Vec::new(),
        });
        self.families.len() - 1
    }

    fn switch_to(&mut self, idx: usize) {
        if let Some(cur) = self.current {
            if cur != idx {
                self.closed.insert(cur);
            }
        }
        self.current = Some(idx);
    }

    /// The family a sample named `name` belongs to: a declared family of
    /// that exact name that is neither histogram nor summary, else a
    /// histogram or summary that the suffix names.
    fn owner(&self, name: &str) -> Result<usize, String> {
        let typed = |n: &str| {
            self.families
                .iter()
                .position(|f| f.name == n)
                .filter(|i| self.typed.contains(i))
        };
        if let Some(i) = typed(name) {
            if self.families[i].kind == "histogram" {
                return Err(format!("histogram sample {name} without a suffix"));
            }
            // A summary's plain samples must carry quantile (checked by the caller).
            return Ok(i);
        }
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix) {
                if let Some(i) = typed(base) {
                    match (self.families[i].kind.as_str(), suffix) {
                        ("histogram", _) | ("summary", "_sum" | "_count") => return Ok(i),
                        _ => {}
                    }
                }
            }
        }
        Err(format!(
            "sample {name} of no family declared by # TYPE before it"
        ))
    }

    fn sample(&mut self, line: &str) -> Result<(), String> {
        let name_end = line.find(['{', ' ', '\t']).unwrap_or(line.len());
        let name = &line[..name_end];
        if !valid_metric_name(name) {
            return Err(format!("invalid metric name {name:?}"));
        }
        let mut rest = &line[name_end..];
        let mut labels: Vec<(String, String)> = Vec::new();
        if let Some(r) = rest.strip_prefix('{') {
            rest = parse_labels(r, &mut labels)?;
        }
        // A blank, the value, then an optional integer timestamp.
        if !rest.starts_with([' ', '\t']) {
            return Err("missing value, or no blank before it".into());
        }
        let rest = rest.trim_matches([' ', '\t']);
        let (value, ts) = split_token(rest);
        let value = parse_value(value)?;
        let ts = ts.trim_start_matches([' ', '\t']);
        if !ts.is_empty() && ts.parse::<i64>().is_err() {
            return Err(format!("invalid timestamp {ts:?}"));
        }

        let idx = self.owner(name)?;
        if self.closed.contains(&idx) {
            return Err(format!("sample {name} after its family's group ended"));
        }
        self.switch_to(idx);
        let fam = &self.families[idx];
        let is_bucket = fam.kind == "histogram" && name.ends_with("_bucket");
        let is_quantile = fam.kind == "summary" && name == fam.name;
        for (k, _) in &labels {
            if k == "le" && !is_bucket && fam.kind == "histogram" {
                return Err("le label on a histogram's _sum or _count".into());
            }
            if k == "quantile" && fam.kind == "summary" && !is_quantile {
                return Err("quantile label on a summary's _sum or _count".into());
            }
        }
        if is_bucket {
            let le = label(&labels, "le").ok_or("histogram bucket without le")?;
            parse_value(le).map_err(|e| format!("le: {e}"))?;
        }
        if is_quantile {
            let q = label(&labels, "quantile").ok_or("summary sample without quantile")?;
            parse_value(q).map_err(|e| format!("quantile: {e}"))?;
        }
        if fam.kind == "counter" && value < 0.0 {
            return Err(format!("negative counter value {value}"));
        }
        if !self.series.insert(series_key(name, &labels)) {
            return Err(format!("duplicate series {name}{labels:?}"));
        }
        self.families[idx].samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
        Ok(())
    }
}

/// Parses `name="value",...}`; returns the text after the closing brace.
fn parse_labels<'a>(mut s: &'a str, labels: &mut Vec<(String, String)>) -> Result<&'a str, String> {
    loop {
        s = s.trim_start_matches([' ', '\t']);
        if let Some(r) = s.strip_prefix('}') {
            return Ok(r);
        }
        let end = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .ok_or("unterminated label set")?;
        let name = &s[..end];
        if !valid_label_name(name) {
            return Err(format!("invalid label name {name:?}"));
        }
        if name.starts_with("__") {
            return Err(format!("reserved label name {name:?}"));
        }
        if labels.iter().any(|(k, _)| k == name) {
            return Err(format!("label {name:?} repeated"));
        }
        s = s[end..].trim_start_matches([' ', '\t']);
        s = s
            .strip_prefix('=')
            .ok_or(format!("no '=' after label {name:?}"))?;
        s = s.trim_start_matches([' ', '\t']);
        s = s
            .strip_prefix('"')
            .ok_or(format!("label {name:?} value not quoted"))?;
        // Find the closing quote, skipping escaped characters.
        let mut close = None;
        let mut chars = s.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    close = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let close = close.ok_or(format!("label {name:?} value not closed"))?;
        let value = unescape(&s[..close], true)?;
        labels.push((name.to_string(), value));
        s = s[close + 1..].trim_start_matches([' ', '\t']);
        if let Some(r) = s.strip_prefix(',') {
            s = r;
        } else if !s.starts_with('}') {
            return Err(format!("expected ',' or '}}' after label {name:?}"));
        }
    }
}

/// Unescapes `\\`, `\n` and, in label values, `\"`; any other escape is an
/// error, as is a raw line feed.
fn unescape(s: &str, label_value: bool) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                Some('"') if label_value => out.push('"'),
                Some(o) => return Err(format!("invalid escape sequence \\{o}")),
                None => return Err("trailing backslash".into()),
            },
            '\n' => return Err("raw line feed".into()),
            c => out.push(c),
        }
    }
    Ok(out)
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => return Ok(f64::INFINITY),
        "-Inf" => return Ok(f64::NEG_INFINITY),
        "NaN" => return Ok(f64::NAN),
        "" => return Err("missing value".into()),
        _ => {}
    }
    // Rust's parser also takes spellings such as "inf" or "infinity" that
    // Prometheus renderers do not write; accept only decimal syntax here.
    if !s
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '.' | 'e' | 'E'))
    {
        return Err(format!("invalid value {s:?}"));
    }
    s.parse::<f64>().map_err(|_| format!("invalid value {s:?}"))
}

fn split_token(s: &str) -> (&str, &str) {
    match s.find([' ', '\t']) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    }
}

fn valid_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn label<'a>(labels: &'a [(String, String)], name: &str) -> Option<&'a str> {
    labels
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A key naming one series: the name and the labels sorted by name.
fn series_key(name: &str, labels: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = labels.iter().collect();
    sorted.sort();
    let mut key = name.to_string();
    for (k, v) in sorted {
        key.push('\u{0}');
        key.push_str(k);
        key.push('\u{0}');
        key.push_str(v);
    }
    key
}

/// The labels of a sample other than `skip`, sorted: what groups a
/// histogram's or summary's samples into one series.
fn group_key(labels: &[(String, String)], skip: &str) -> Vec<(String, String)> {
    let mut g: Vec<(String, String)> = labels.iter().filter(|(k, _)| k != skip).cloned().collect();
    g.sort();
    g
}

/// Checks that span a family's samples: histogram buckets and counts.
fn check_family(f: &Family) -> Result<(), String> {
    if f.kind != "histogram" {
        if f.kind == "summary" {
            for s in &f.samples {
                if s.name.ends_with("_count") && s.value < 0.0 {
                    return Err("negative summary count".into());
                }
            }
        }
        return Ok(());
    }
    let bucket = format!("{}_bucket", f.name);
    let count = format!("{}_count", f.name);
    let sum = format!("{}_sum", f.name);
    let mut groups: Vec<Vec<(String, String)>> = Vec::new();
    for s in &f.samples {
        let g = group_key(&s.labels, "le");
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    for g in &groups {
        let mut buckets: Vec<(f64, f64)> = Vec::new();
        let (mut c, mut has_sum) = (None, false);
        for s in f
            .samples
            .iter()
            .filter(|s| &group_key(&s.labels, "le") == g)
        {
            if s.name == bucket {
                let le = parse_value(label(&s.labels, "le").unwrap_or(""))?;
                if le.is_nan() {
                    return Err("bucket le is NaN".into());
                }
                if s.value.is_nan() || s.value < 0.0 {
                    return Err(format!("bucket le={le} has count {}", s.value));
                }
                buckets.push((le, s.value));
            } else if s.name == count {
                if s.value.is_nan() || s.value < 0.0 {
                    return Err(format!("_count is {}", s.value));
                }
                c = Some(s.value);
            } else if s.name == sum {
                has_sum = true;
            }
        }
        let c = c.ok_or(format!("series {g:?} has no _count"))?;
        if !has_sum {
            return Err(format!("series {g:?} has no _sum"));
        }
        for pair in buckets.windows(2) {
            if pair[0].0 >= pair[1].0 {
                return Err(format!(
                    "buckets not in increasing le order: {} then {}",
                    pair[0].0, pair[1].0
                ));
            }
            if pair[0].1 > pair[1].1 {
                return Err(format!(
                    "buckets not cumulative: le={} has {}, le={} has {}",
                    pair[0].0, pair[0].1, pair[1].0, pair[1].1
                ));
            }
        }
        match buckets.last() {
            Some(&(le, v)) if le == f64::INFINITY => {
                if v != c {
                    return Err(format!("+Inf bucket {v} != _count {c}"));
                }
            }
            _ => return Err(format!("series {g:?} has no +Inf bucket last")),
        }
    }
    Ok(())
}
