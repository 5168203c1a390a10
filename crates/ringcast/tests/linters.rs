//! Lints as code: the rules of this repository that neither rustc nor
//! clippy checks, as ordinary tests over its source tree (read from
//! `CARGO_MANIFEST_DIR/../..`). Each failure names the file and line and
//! says what to do.
//!
//! - `ringcast-proto` stays sans I/O: no `std::net`, no `std::time` (no
//!   `Instant`, no `SystemTime`), no `io_uring`.
//! - `unsafe` appears only in the files of [`UNSAFE_ALLOWED`], each there
//!   for a reason; a new one is added to that list on purpose, in review.
//! - Every `unsafe` block and `unsafe impl` has a `// SAFETY:` comment right
//!   above it (attributes and blank lines may stand between; a statement
//!   that runs over several lines has it above its first line), and every
//!   `unsafe fn` has a `# Safety` section in its doc comment (a method of a
//!   trait impl takes its contract from the trait).
//! - Nothing refers to a `shared` folder beside the repository: the
//!   repository holds everything it needs.
//!
//! The checks look at code with comments and the contents of string and
//! character literals blanked out, so prose and strings that mention
//! `unsafe` or `std::net` do not count.

use std::fs;
use std::path::{Path, PathBuf};

/// Every file that may contain `unsafe`, with why it needs it. Keep each
/// file's unsafe code small and its `// SAFETY:` comments exact; a file that
/// no longer needs unsafe comes off this list.
#[rustfmt::skip]
const UNSAFE_ALLOWED: &[(&str, &str)] = &[
    // The engine.
    ("crates/ringcast/src/sys.rs", "raw syscalls (libc) and the memory they map"),
    ("crates/ringcast/src/pool.rs", "registered frame memory: raw slices into the mmap'd pool"),
    ("crates/ringcast/src/mailbox.rs", "the lock-free SPSC queue's slots (UnsafeCell, MaybeUninit)"),
    ("crates/ringcast/src/reactor/mod.rs", "the ring driver: SQEs whose buffers the kernel reads"),
    ("crates/ringcast/src/reactor/ring.rs", "ring setup: registered buffers, the provided-buffer ring"),
    ("crates/ringcast/src/server/mod.rs", "signal masks and sigwait (libc)"),
    ("crates/ringcast/src/core/mod.rs", "writes frames into registered frame memory"),
    ("crates/ringcast/src/core/conn.rs", "send queues: iovecs into registered frame memory"),
    ("crates/ringcast/src/core/pubsub.rs", "encodes and sequences frames in registered frame memory"),
    ("crates/ringcast/src/core/tests.rs", "reads sent iovecs back"),
    ("crates/ringcast/src/front/web.rs", "writes WebSocket frames into registered frame memory"),
    ("crates/ringcast/benches/engine.rs", "fills a pool frame (FrameRef::bytes_mut)"),
    // The engine's tests: raw syscalls to provoke what the engine must survive.
    ("crates/ringcast/tests/bad_input.rs", "raw syscalls (setsockopt)"),
    ("crates/ringcast/tests/browser.rs", "raw syscalls (kill the browser's process group)"),
    ("crates/ringcast/tests/fd_exhaustion.rs", "raw syscalls (setrlimit, fcntl)"),
    ("crates/ringcast/tests/graceful_shutdown.rs", "raw syscalls (kill: SIGTERM)"),
    ("crates/ringcast/tests/short_writes.rs", "raw sockets with tiny buffers (socket, setsockopt)"),
    ("crates/ringcast/tests/zero_alloc.rs", "a counting GlobalAlloc"),
    // The load generator.
    ("crates/ringcast-bench/src/sys.rs", "raw syscalls (libc)"),
    ("crates/ringcast-bench/src/run.rs", "epoll event buffers (zeroed libc structs)"),
    ("crates/ringcast-bench/src/bin/ringcast-chaos/sys.rs", "raw syscalls: PR_SET_PDEATHSIG in pre_exec, setrlimit"),
    ("crates/ringcast-bench/examples/raw_uring_floor.rs", "the raw io_uring floor: SQEs and registered buffers"),
];

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `path` relative to the root, with `/`.
fn rel(path: &Path) -> String {
    let root = root().canonicalize().expect("the repository root");
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    path.strip_prefix(&root)
        .unwrap_or(&path)
        .to_string_lossy()
        .replace('\\', "/")
}

/// Every file under `dir`, skipping `.git` and `target` folders, sorted.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if name != ".git" && name != "target" {
                walk(&path, out);
            }
        } else if kind.is_file() {
            out.push(path);
        }
    }
}

/// The workspace's Rust sources: `crates/*/{src,tests,benches,examples}/**/*.rs`.
fn rust_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let crates = fs::read_dir(root().join("crates")).expect("read crates/");
    let mut crates: Vec<_> = crates.filter_map(Result::ok).map(|e| e.path()).collect();
    crates.sort();
    for krate in crates {
        for sub in ["src", "tests", "benches", "examples"] {
            walk(&krate.join(sub), &mut files);
        }
    }
    files.retain(|p| p.extension().is_some_and(|e| e == "rs"));
    assert!(
        files.len() > 20,
        "found only {} .rs files under {}: is the tree where this test thinks?",
        files.len(),
        root().display()
    );
    files
}

/// `src` with comments and the contents of string and char literals replaced
/// by spaces (quotes and line breaks kept), so positions and line numbers stay.
fn code_only(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut blanked = vec![false; c.len()];
    let blank = |blanked: &mut Vec<bool>, from: usize, to: usize| {
        for b in &mut blanked[from.min(c.len())..to.min(c.len())] {
            *b = true;
        }
    };
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            '/' if c.get(i + 1) == Some(&'/') => {
                let end = (i..c.len()).find(|&j| c[j] == '\n').unwrap_or(c.len());
                blank(&mut blanked, i, end);
                i = end;
            }
            '/' if c.get(i + 1) == Some(&'*') => {
                let (mut depth, mut j) = (1, i + 2);
                while j < c.len() && depth > 0 {
                    if c[j] == '/' && c.get(j + 1) == Some(&'*') {
                        depth += 1;
                        j += 2;
                    } else if c[j] == '*' && c.get(j + 1) == Some(&'/') {
                        depth -= 1;
                        j += 2;
                    } else {
                        j += 1;
                    }
                }
                blank(&mut blanked, i, j);
                i = j;
            }
            // Raw strings: r"..", r#".."#, br#".."#.
            'r' if (i == 0
                || !ident(c[i - 1])
                || (c[i - 1] == 'b' && (i < 2 || !ident(c[i - 2]))))
                && matches!(c.get(i + 1), Some('"') | Some('#')) =>
            {
                let hashes = c[i + 1..].iter().take_while(|&&h| h == '#').count();
                if c.get(i + 1 + hashes) != Some(&'"') {
                    i += 1;
                    continue;
                }
                let open = i + 1 + hashes;
                let mut j = open + 1;
                let close = loop {
                    if j >= c.len() {
                        break c.len();
                    }
                    if c[j] == '"'
                        && c[j + 1..]
                            .iter()
                            .take(hashes)
                            .filter(|&&h| h == '#')
                            .count()
                            == hashes
                    {
                        break j;
                    }
                    j += 1;
                };
                blank(&mut blanked, open + 1, close);
                i = close + 1 + hashes;
            }
            '"' => {
                let mut j = i + 1;
                while j < c.len() && c[j] != '"' {
                    j += if c[j] == '\\' { 2 } else { 1 };
                }
                blank(&mut blanked, i + 1, j);
                i = j + 1;
            }
            '\'' => {
                // A char literal ('x', '\n', '\u{..}'), or a lifetime ('a).
                if c.get(i + 1) == Some(&'\\') {
                    let mut j = i + 3;
                    while j < c.len() && c[j] != '\'' {
                        j += 1;
                    }
                    blank(&mut blanked, i + 1, j);
                    i = j + 1;
                } else if c.get(i + 2) == Some(&'\'') {
                    blank(&mut blanked, i + 1, i + 2);
                    i += 3;
                } else {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    // A blanked character becomes as many spaces as it has bytes, so byte
    // offsets into the result are byte offsets into `src`.
    let mut out = String::with_capacity(src.len());
    for (ch, blank) in c.iter().zip(blanked) {
        if blank && *ch != '\n' {
            out.extend(std::iter::repeat(' ').take(ch.len_utf8()));
        } else {
            out.push(*ch);
        }
    }
    out
}

/// The byte offsets of `word` in `code` as a whole word.
fn word_offsets<'a>(code: &'a str, word: &'a str) -> impl Iterator<Item = usize> + 'a {
    let ident = |ch: Option<char>| ch.is_some_and(|ch| ch.is_alphanumeric() || ch == '_');
    code.match_indices(word)
        .map(|(at, _)| at)
        .filter(move |&at| {
            !ident(code[..at].chars().next_back()) && !ident(code[at + word.len()..].chars().next())
        })
}

/// The 1-based line of byte offset `at`.
fn line_of(code: &str, at: usize) -> usize {
    code[..at].matches('\n').count() + 1
}

/// The words after byte offset `at` (identifiers, or single punctuation characters).
fn words_after(code: &str, at: usize, n: usize) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = code[at..].chars().peekable();
    while words.len() < n {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else { break };
        if first.is_alphanumeric() || first == '_' {
            let mut w = String::new();
            while let Some(&c) = chars.peek().filter(|c| c.is_alphanumeric() || **c == '_') {
                w.push(c);
                chars.next();
            }
            words.push(w);
        } else {
            words.push(first.to_string());
            chars.next();
        }
    }
    words
}

#[test]
fn proto_is_sans_io() {
    let mut problems = Vec::new();
    let dir = root().join("crates/ringcast-proto/src");
    let mut files = Vec::new();
    walk(&dir, &mut files);
    files.retain(|p| p.extension().is_some_and(|e| e == "rs"));
    assert!(!files.is_empty(), "no sources under {}", dir.display());
    for path in files {
        let src = fs::read_to_string(&path).unwrap();
        let code = code_only(&src);
        // `std :: net`, `std::{io, net}` and the like, whitespace aside.
        let squeezed: String = code
            .chars()
            .filter(|c| !c.is_whitespace() || *c == '\n')
            .collect();
        let mut hits: Vec<(usize, String)> = Vec::new();
        for (n, line) in squeezed.lines().enumerate() {
            for bad in ["std::net", "std::time"] {
                if line.contains(bad) {
                    hits.push((n + 1, bad.into()));
                }
            }
        }
        // Grouped imports: `use std::{..., net::..., time, ...}`.
        for at in squeezed.match_indices("std::{").map(|(at, _)| at) {
            let group = &squeezed[at + 6..];
            let (mut depth, mut end) = (1, group.len());
            for (i, ch) in group.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    end = i;
                    break;
                }
            }
            for item in group[..end].split(',') {
                let item = item.trim_start_matches('\n');
                if item == "net"
                    || item == "time"
                    || item.starts_with("net::")
                    || item.starts_with("time::")
                {
                    hits.push((line_of(&squeezed, at), format!("std::{{{item}}}")));
                }
            }
        }
        for word in ["io_uring", "Instant", "SystemTime"] {
            for at in word_offsets(&code, word) {
                hits.push((line_of(&code, at), word.into()));
            }
        }
        hits.sort();
        hits.dedup();
        for (line, what) in hits {
            problems.push(format!(
                "{}:{line}: names `{what}`; ringcast-proto is sans I/O (no sockets, no clocks, \
                 no io_uring): take the bytes or the time as an argument, and keep the I/O in \
                 ringcast or ringcast-client",
                rel(&path)
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

/// What follows an `unsafe` keyword.
#[derive(Debug, PartialEq)]
enum UnsafeUse {
    Block,
    Impl,
    /// A function declaration (`unsafe fn name`, `unsafe extern "C" fn name`).
    Fn,
    Trait,
    /// `unsafe fn(..)` or `unsafe extern "C" fn(..)`: a pointer type, nothing to document.
    FnType,
    Other,
}

fn classify(code: &str, at: usize) -> UnsafeUse {
    let words = words_after(code, at + "unsafe".len(), 12);
    let mut w: &[String] = &words;
    // Skip `extern` and its ABI string, if any.
    if w.first().is_some_and(|x| x == "extern") {
        w = &w[1..];
        if w.first().is_some_and(|x| x == "\"") {
            let close = w[1..]
                .iter()
                .position(|x| x == "\"")
                .map_or(w.len(), |p| p + 2);
            w = &w[close.min(w.len())..];
        }
    }
    let w: Vec<&str> = w.iter().map(String::as_str).collect();
    match w.as_slice() {
        ["{", ..] => UnsafeUse::Block,
        ["impl", ..] => UnsafeUse::Impl,
        ["trait", ..] | ["auto", "trait", ..] => UnsafeUse::Trait,
        ["fn", "(", ..] => UnsafeUse::FnType,
        ["fn", ..] => UnsafeUse::Fn,
        _ => UnsafeUse::Other,
    }
}

/// Whether the innermost block around byte offset `at` is a trait impl (`impl X for Y {`).
fn in_trait_impl(code: &str, at: usize) -> bool {
    let mut stack: Vec<bool> = Vec::new();
    let mut header_start = 0;
    for (i, ch) in code[..at].char_indices() {
        match ch {
            '{' => {
                let mut header = code[header_start..i].trim();
                // Attributes before the item.
                while let Some(rest) = header.strip_prefix('#') {
                    let mut depth = 0;
                    let mut end = rest.len();
                    for (j, c) in rest.char_indices() {
                        match c {
                            '[' => depth += 1,
                            ']' => {
                                depth -= 1;
                                if depth == 0 {
                                    end = j + 1;
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                    header = rest[end..].trim_start();
                }
                let header = header.strip_prefix("unsafe ").unwrap_or(header);
                let is_impl = header.starts_with("impl")
                    && !header[4..].starts_with(|c: char| c.is_alphanumeric() || c == '_');
                stack.push(is_impl && word_offsets(header, "for").next().is_some());
                header_start = i + 1;
            }
            '}' => {
                stack.pop();
                header_start = i + 1;
            }
            ';' => header_start = i + 1,
            _ => {}
        }
    }
    stack.last().copied().unwrap_or(false)
}

/// Whether the comment block right above line `line` (1-based), past blank
/// lines and attributes, contains `needle`; a statement that starts on an
/// earlier line (`let x = foo(\n    unsafe {`) is looked above as a whole.
fn comment_above(lines: &[&str], code_lines: &[&str], line: usize, needle: &str) -> bool {
    let mut i = line - 1; // 0-based index of the line with `unsafe`
                          // Back to the first line of the statement: while the line above is code
                          // that does not end a statement or open/close a block, it continues here.
    while i > 0 {
        let above = code_lines[i - 1].trim();
        let continues = !above.is_empty()
            && !above.ends_with(';')
            && !above.ends_with('{')
            && !above.ends_with('}')
            && !above.starts_with("#[");
        if !continues {
            break;
        }
        i -= 1;
    }
    // A comment on the statement's own line, before the code.
    if lines[i].contains(needle) && !code_lines[i].trim().is_empty() {
        let comment_col = lines[i].find(needle).unwrap_or(usize::MAX);
        let code_col = code_lines[i]
            .find(|c: char| !c.is_whitespace())
            .unwrap_or(0);
        if comment_col < code_col || lines[i][..comment_col].trim_end().ends_with("/*") {
            return true;
        }
    }
    let mut j = i;
    // Past blank lines and attributes.
    while j > 0 {
        let above = lines[j - 1].trim();
        if above.is_empty() || above.starts_with("#[") || above.starts_with("#![") {
            j -= 1;
        } else {
            break;
        }
    }
    // The comment block.
    while j > 0 {
        let above = lines[j - 1].trim();
        let is_comment = code_lines[j - 1].trim().is_empty() && !above.is_empty();
        if !is_comment {
            break;
        }
        if above.contains(needle) {
            return true;
        }
        j -= 1;
    }
    false
}

/// Whether the doc comment of the item on line `line` has a `# Safety` heading.
fn doc_has_safety_section(lines: &[&str], line: usize) -> bool {
    let mut j = line - 1;
    while j > 0 {
        let above = lines[j - 1].trim();
        if above.starts_with("///")
            || above.starts_with("#[")
            || above.starts_with("#![")
            || above.is_empty()
        {
            if above.trim_start_matches('/').trim() == "# Safety" {
                return true;
            }
            if above.is_empty() {
                // A blank line ends the item's doc comment.
                return false;
            }
            j -= 1;
        } else {
            break;
        }
    }
    false
}

#[test]
fn every_unsafe_is_justified() {
    let mut problems = Vec::new();
    for path in rust_files() {
        let src = fs::read_to_string(&path).unwrap();
        let code = code_only(&src);
        let lines: Vec<&str> = src.lines().collect();
        let code_lines: Vec<&str> = code.lines().collect();
        let file = rel(&path);
        for at in word_offsets(&code, "unsafe") {
            let line = line_of(&code, at);
            match classify(&code, at) {
                UnsafeUse::Block | UnsafeUse::Impl | UnsafeUse::Other => {
                    if !comment_above(&lines, &code_lines, line, "SAFETY:") {
                        problems.push(format!(
                            "{file}:{line}: `{}` has no `// SAFETY:` comment right above it: \
                             say why this is sound (which invariant holds, who owns the memory, \
                             why the pointer is valid) in a `// SAFETY: ...` comment on the \
                             lines just above",
                            lines[line - 1].trim()
                        ));
                    }
                }
                UnsafeUse::Fn | UnsafeUse::Trait => {
                    if matches!(classify(&code, at), UnsafeUse::Fn) && in_trait_impl(&code, at) {
                        continue;
                    }
                    if !doc_has_safety_section(&lines, line) {
                        problems.push(format!(
                            "{file}:{line}: `{}` has no `# Safety` section in its doc comment: \
                             add `/// # Safety` and, under it, what a caller must guarantee",
                            lines[line - 1].trim()
                        ));
                    }
                }
                UnsafeUse::FnType => {}
            }
        }
    }
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

#[test]
fn unsafe_only_in_the_allowed_files() {
    let mut problems = Vec::new();
    let mut using = Vec::new();
    for path in rust_files() {
        let code = code_only(&fs::read_to_string(&path).unwrap());
        let first = word_offsets(&code, "unsafe").next();
        if let Some(at) = first {
            using.push((rel(&path), line_of(&code, at)));
        }
    }
    for (file, line) in &using {
        if !UNSAFE_ALLOWED.iter().any(|(allowed, _)| allowed == file) {
            problems.push(format!(
                "{file}:{line}: uses `unsafe`, and is not in UNSAFE_ALLOWED \
                 (crates/ringcast/tests/linters.rs): do without it (a safe API, or a \
                 function of a file that is on the list), or add the file there with the \
                 reason it needs unsafe, for review"
            ));
        }
    }
    for (allowed, _) in UNSAFE_ALLOWED {
        if !using.iter().any(|(file, _)| file == allowed) {
            problems.push(format!(
                "{allowed}: is in UNSAFE_ALLOWED (crates/ringcast/tests/linters.rs) but has \
                 no `unsafe` (or is gone): take it off the list"
            ));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (allowed, reason) in UNSAFE_ALLOWED {
        assert!(seen.insert(allowed), "{allowed} is twice in UNSAFE_ALLOWED");
        assert!(
            !reason.is_empty(),
            "{allowed} needs a reason in UNSAFE_ALLOWED"
        );
    }
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

#[test]
fn nothing_refers_to_a_shared_folder_outside_the_repository() {
    // Spelled in two halves, so that this file does not find itself.
    let needle = ["..", "/shared"].concat();
    let mut files = Vec::new();
    walk(&root(), &mut files);
    let mut problems = Vec::new();
    for path in files {
        let Ok(bytes) = fs::read(&path) else { continue };
        if bytes.contains(&0) {
            continue; // not text
        }
        let text = String::from_utf8_lossy(&bytes);
        for (n, line) in text.lines().enumerate() {
            if line.contains(&needle) {
                problems.push(format!(
                    "{}:{}: refers to `{needle}`, which is outside the repository and not \
                     there for CI or a fresh clone: bring what it needs into the repository \
                     (or install it from a package registry) and point there",
                    rel(&path),
                    n + 1
                ));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

#[test]
fn the_checks_see_code_not_prose() {
    let src = "let s = \"unsafe { std::net }\"; // unsafe\n/* unsafe /* nested */ unsafe */ let c = '\\'';\nlet r = r#\"unsafe\"#; fn f<'a>(x: &'a u8) {}\nunsafe { x }";
    let code = code_only(src);
    assert_eq!(code.lines().count(), src.lines().count());
    let hits: Vec<usize> = word_offsets(&code, "unsafe")
        .map(|at| line_of(&code, at))
        .collect();
    assert_eq!(hits, [4], "{code}");
    assert_eq!(
        classify(&code, src.rfind("unsafe").unwrap()),
        UnsafeUse::Block
    );
    let item = "impl Foo for Bar {\n    unsafe fn f() {}\n}\nimpl Bar {\n    unsafe fn g() {}\n}\n";
    assert!(in_trait_impl(item, item.find("unsafe fn f").unwrap()));
    assert!(!in_trait_impl(item, item.find("unsafe fn g").unwrap()));
    assert_eq!(
        classify("unsafe extern \"C\" fn(i32)", 0),
        UnsafeUse::FnType
    );
    assert_eq!(classify("unsafe extern \"C\" fn h()", 0), UnsafeUse::Fn);

    let ok = "// SAFETY: fine.\n#[allow(x)]\n\nlet a = foo(\n    unsafe { b },\n);";
    let (lines, code) = (ok.lines().collect::<Vec<_>>(), code_only(ok));
    let code_lines: Vec<&str> = code.lines().collect();
    assert!(comment_above(&lines, &code_lines, 5, "SAFETY:"));
    let bad = "// SAFETY: for the first.\nlet a = unsafe { b };\nlet c = unsafe { d };";
    let (lines, code) = (bad.lines().collect::<Vec<_>>(), code_only(bad));
    let code_lines: Vec<&str> = code.lines().collect();
    assert!(comment_above(&lines, &code_lines, 2, "SAFETY:"));
    assert!(!comment_above(&lines, &code_lines, 3, "SAFETY:"));
    let doc =
        "/// Does it.\n///\n/// # Safety\n///\n/// The caller...\n#[inline]\npub unsafe fn f() {}";
    assert!(doc_has_safety_section(&doc.lines().collect::<Vec<_>>(), 7));
    assert!(!doc_has_safety_section(
        &["/// Does it.", "pub unsafe fn f() {}"],
        2
    ));
}
