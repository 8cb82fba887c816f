//! HTTP/1.1 on the wire: a request head parsed by `httparse` and checked against the limits, and
//! response heads written straight into a connection's output buffer (no `format!`, no allocation).
//!
//! Limits: a request target of at most [`MAX_TARGET`] bytes (else 414), a header section of at most
//! [`MAX_HEADER_BYTES`] bytes and [`MAX_HEADERS`] fields (else 431). HTTP/1.0 and HTTP/1.1 are
//! served; a well-formed request line naming another version gets 505, anything else malformed 400
//! (501 for a transfer coding the server does not implement): the rules are listed in `mod.rs`,
//! "Malformed requests". Nothing is allocated per request or per field.

use std::cell::Cell;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use super::buf::Buf;

/// The longest request target accepted (414 beyond).
pub(super) const MAX_TARGET: usize = 8 * 1024;
/// The most bytes of header fields accepted after the request line (431 beyond).
pub(super) const MAX_HEADER_BYTES: usize = 16 * 1024;
/// The most header fields accepted (431 beyond).
pub(super) const MAX_HEADERS: usize = 64;
/// The longest request line: the target plus room for the method and the version.
const MAX_LINE: usize = MAX_TARGET + 64;
/// Empty lines tolerated before a request line (RFC 9112 section 2.2 asks for at least one).
const MAX_LEADING_EMPTY: usize = 8;
/// The most a connection ever buffers for one request head: a verdict (complete, 414 or 431) always
/// comes before this much is buffered.
pub(super) const MAX_HEAD: usize = MAX_LEADING_EMPTY * 2 + MAX_LINE + 2 + MAX_HEADER_BYTES + 4;

/// The response statuses the server sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Status {
    /// 200.
    Ok,
    /// 206, a byte range.
    PartialContent,
    /// 301, a directory asked for without its trailing slash.
    MovedPermanently,
    /// 304, If-Modified-Since.
    NotModified,
    /// 400.
    BadRequest,
    /// 403, the file exists but may not be opened.
    Forbidden,
    /// 404, also every path that would leave the served directory.
    NotFound,
    /// 405, any method but GET and HEAD.
    MethodNotAllowed,
    /// 414.
    UriTooLong,
    /// 416.
    RangeNotSatisfiable,
    /// 431.
    HeadersTooLarge,
    /// 500.
    InternalError,
    /// 501, a transfer coding the server does not implement.
    NotImplemented,
    /// 505.
    VersionNotSupported,
}

impl Status {
    /// The status line, with its CRLF.
    fn line(self) -> &'static [u8] {
        match self {
            Status::Ok => b"HTTP/1.1 200 OK\r\n",
            Status::PartialContent => b"HTTP/1.1 206 Partial Content\r\n",
            Status::MovedPermanently => b"HTTP/1.1 301 Moved Permanently\r\n",
            Status::NotModified => b"HTTP/1.1 304 Not Modified\r\n",
            Status::BadRequest => b"HTTP/1.1 400 Bad Request\r\n",
            Status::Forbidden => b"HTTP/1.1 403 Forbidden\r\n",
            Status::NotFound => b"HTTP/1.1 404 Not Found\r\n",
            Status::MethodNotAllowed => b"HTTP/1.1 405 Method Not Allowed\r\n",
            Status::UriTooLong => b"HTTP/1.1 414 URI Too Long\r\n",
            Status::RangeNotSatisfiable => b"HTTP/1.1 416 Range Not Satisfiable\r\n",
            Status::HeadersTooLarge => b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
            Status::InternalError => b"HTTP/1.1 500 Internal Server Error\r\n",
            Status::NotImplemented => b"HTTP/1.1 501 Not Implemented\r\n",
            Status::VersionNotSupported => b"HTTP/1.1 505 HTTP Version Not Supported\r\n",
        }
    }

    /// The code and reason (`404 Not Found`): with a newline, the small body of an error response.
    fn text(self) -> &'static [u8] {
        let line = self.line();
        // Between "HTTP/1.1 " and "\r\n".
        &line[9..line.len() - 2]
    }

    /// Whether the connection's framing is lost after this error, so it must be closed.
    pub(super) fn closes(self) -> bool {
        matches!(
            self,
            Status::BadRequest
                | Status::UriTooLong
                | Status::HeadersTooLarge
                | Status::VersionNotSupported
                | Status::InternalError
                | Status::NotImplemented
        )
    }
}

/// The request method, as far as the server cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Method {
    /// GET.
    Get,
    /// HEAD: the response of a GET without its body.
    Head,
    /// Anything else: 405.
    Other,
}

/// What the response says about the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Persist {
    /// HTTP/1.1 keep-alive, the default: no header.
    Default,
    /// HTTP/1.0 with `Connection: keep-alive`: say so.
    KeepAlive,
    /// The connection closes after this response: `Connection: close`.
    Close,
}

/// The parts of a request head the server uses, borrowed from the input buffer.
#[derive(Debug)]
pub(super) struct Request<'b> {
    /// The method.
    pub(super) method: Method,
    /// The request target as sent.
    pub(super) target: &'b [u8],
    /// What happens to the connection after the response.
    pub(super) persist: Persist,
    /// `If-Modified-Since`, unparsed.
    pub(super) if_modified_since: Option<&'b [u8]>,
    /// An `If-None-Match` was sent: If-Modified-Since is then ignored (RFC 9110 section 13.1.3).
    pub(super) if_none_match: bool,
    /// `Range`, unparsed.
    pub(super) range: Option<&'b [u8]>,
    /// An `If-Range` was sent: the server has no validators to compare, so it ignores `Range`.
    pub(super) if_range: bool,
}

/// The outcome of parsing the start of the input.
#[derive(Debug)]
pub(super) enum Parsed<'b> {
    /// A complete request head of `len` bytes.
    Complete {
        /// The request.
        req: Request<'b>,
        /// Its length in the input.
        len: usize,
    },
    /// More input is needed.
    Partial,
    /// The input is not a request the server accepts: answer with this status and close.
    Invalid(Status),
}

/// Parses the request head at the start of `input`.
///
/// httparse enforces the syntax of the request line and of each field line (RFC 9112 sections 2.2,
/// 3 and 5): exactly one SP between method, target and version; `HTTP/1.0` or `HTTP/1.1` exactly;
/// field names of tchars with no whitespace before the colon; values without CTLs but HTAB (no
/// NUL, no CR, no LF); no obsolete line folding and no whitespace before the first field; every CR
/// followed by LF. This function adds the rules about what the fields mean: Host, Content-Length,
/// Transfer-Encoding and the request target (see `mod.rs`, "Malformed requests").
pub(super) fn parse(input: &[u8]) -> Parsed<'_> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut r = httparse::Request::new(&mut headers);
    let len = match r.parse(input) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return partial(input),
        Err(httparse::Error::TooManyHeaders) => return Parsed::Invalid(Status::HeadersTooLarge),
        Err(httparse::Error::Version) => return Parsed::Invalid(bad_version(input)),
        Err(_) => return Parsed::Invalid(Status::BadRequest),
    };
    let target = r.path.unwrap_or("").as_bytes();
    if target.len() > MAX_TARGET {
        return Parsed::Invalid(Status::UriTooLong);
    }
    let start = leading_empty(input);
    let line_end = input[start..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(len, |i| start + i + 1);
    if start > MAX_LEADING_EMPTY * 2 {
        return Parsed::Invalid(Status::BadRequest);
    }
    if len - line_end > MAX_HEADER_BYTES {
        return Parsed::Invalid(Status::HeadersTooLarge);
    }
    // RFC 9112 section 3.2: no whitespace in the request target; httparse lets UTF-8 through,
    // which no URI contains unencoded (RFC 3986 section 2).
    if !all_vchar(target) || !absolute_form_ok(target) {
        return Parsed::Invalid(Status::BadRequest);
    }
    let method = match r.method {
        Some("GET") => Method::Get,
        Some("HEAD") => Method::Head,
        _ => Method::Other,
    };
    let minor = r.version.unwrap_or(1);
    let mut req = Request {
        method,
        target,
        persist: Persist::Default,
        if_modified_since: None,
        if_none_match: false,
        range: None,
        if_range: false,
    };
    let (mut close, mut keep_alive, mut hosts, mut bad) = (false, false, 0, false);
    let mut length: Option<u64> = None;
    let mut te = Codings::default();
    for h in r.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
            bad |= authority(h.value).is_none();
        } else if name.eq_ignore_ascii_case(b"if-modified-since") {
            req.if_modified_since = Some(h.value);
        } else if name.eq_ignore_ascii_case(b"if-none-match") {
            req.if_none_match = true;
        } else if name.eq_ignore_ascii_case(b"range") {
            req.range = Some(h.value);
        } else if name.eq_ignore_ascii_case(b"if-range") {
            req.if_range = true;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            // RFC 9110 section 8.6: repeated fields and lists are accepted when every value is
            // the same; RFC 9112 section 6.3 (5): anything else is a 400.
            match (content_length(h.value), length) {
                (Some(n), None) => length = Some(n),
                (Some(n), Some(m)) if n == m => {}
                _ => bad = true,
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            te.add(h.value);
        }
    }
    // RFC 9112 section 3.2: a 1.1 request without a Host, and any request with more than one or
    // with an invalid one, is answered with 400.
    if bad || hosts > 1 || (minor == 1 && hosts == 0) {
        return Parsed::Invalid(Status::BadRequest);
    }
    if te.present {
        // RFC 9112 section 6.1: Transfer-Encoding in 1.0 is faulty framing, and with a
        // Content-Length it is a smuggling attempt (the server must close either way); section
        // 6.3 (4): chunked must be the final coding, and it is applied once only (section 7).
        if minor == 0 || length.is_some() || te.bad() {
            return Parsed::Invalid(Status::BadRequest);
        }
        // Section 6.1: a coding the server does not implement (it decodes none but chunked).
        if te.other {
            return Parsed::Invalid(Status::NotImplemented);
        }
    }
    // A request body is never read: the connection cannot find the next request, so it closes.
    let body = te.present || length.is_some_and(|n| n > 0);
    req.persist = if close || body || (minor == 0 && !keep_alive) {
        Persist::Close
    } else if minor == 0 {
        Persist::KeepAlive
    } else {
        Persist::Default
    };
    Parsed::Complete { req, len }
}

/// A visible ASCII character (RFC 5234 VCHAR): the bytes a request target may hold.
fn is_vchar(b: u8) -> bool {
    (0x21..0x7f).contains(&b)
}

/// Whether every byte of `s` is a VCHAR: without an early exit, so that the loop is vectorized.
fn all_vchar(s: &[u8]) -> bool {
    !s.iter()
        .fold(false, |bad, &b| bad | (b.wrapping_sub(0x21) >= 0x5e))
}

/// A tchar (RFC 9110 section 5.6.2): the bytes of a method, a field name, a transfer coding.
fn is_tchar(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

/// The bytes in `set`, as a table (a lookup per byte keeps the checks off the profile).
const fn byte_table(set: &[u8]) -> [bool; 256] {
    let mut table = [false; 256];
    let mut i = 0;
    while i < set.len() {
        table[set[i] as usize] = true;
        i += 1;
    }
    let mut b = 0;
    while b < 256 {
        if (b as u8).is_ascii_alphanumeric() {
            table[b] = true;
        }
        b += 1;
    }
    table
}

/// Alphanumerics and `!#$%&'*+-.^_`|~`.
static TCHAR: [bool; 256] = byte_table(b"!#$%&'*+-.^_`|~");
/// `unreserved / sub-delims` (RFC 3986 section 2): alphanumerics and `-._~!$&'()*+,;=`.
static HOST_CHAR: [bool; 256] = byte_table(b"-._~!$&'()*+,;=");

/// Optional whitespace (RFC 9110 section 5.6.3) trimmed off both ends.
fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// A Content-Length value: one decimal number, or a list of the same number (`5, 5`).
fn content_length(value: &[u8]) -> Option<u64> {
    let mut n = None;
    for part in value.split(|&b| b == b',') {
        let m = parse_u64(trim_ows(part))?;
        if n.is_some_and(|n| n != m) {
            return None;
        }
        n = Some(m);
    }
    n
}

/// What the Transfer-Encoding fields of a request list, in order (RFC 9112 section 6.1).
#[derive(Default)]
struct Codings {
    /// A Transfer-Encoding field was sent.
    present: bool,
    /// How many codings are listed.
    count: u32,
    /// A coding is malformed (not a token, or chunked with parameters).
    malformed: bool,
    /// How many times chunked is listed.
    chunked: u32,
    /// The last coding listed is chunked.
    chunked_last: bool,
    /// A coding other than chunked is listed.
    other: bool,
}

impl Codings {
    /// Adds the codings of one field value: `transfer-coding *( OWS "," OWS transfer-coding )`,
    /// each a token with optional `;` parameters. Empty list elements are skipped (RFC 9110
    /// section 5.6.1.2).
    fn add(&mut self, value: &[u8]) {
        self.present = true;
        for element in value.split(|&b| b == b',') {
            let element = trim_ows(element);
            if element.is_empty() {
                continue;
            }
            self.count += 1;
            let (name, params) = match element.iter().position(|&b| b == b';') {
                Some(i) => (trim_ows(&element[..i]), true),
                None => (element, false),
            };
            self.chunked_last = false;
            if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
                self.malformed = true;
            } else if name.eq_ignore_ascii_case(b"chunked") {
                // chunked takes no parameters.
                self.malformed |= params;
                self.chunked += 1;
                self.chunked_last = true;
            } else {
                self.other = true;
            }
        }
    }

    /// The framing cannot be known: no coding, a malformed one, chunked twice or not last.
    fn bad(&self) -> bool {
        self.count == 0 || self.malformed || self.chunked != 1 || !self.chunked_last
    }
}

/// The host of an authority, `uri-host [ ":" port ]` (RFC 9110 section 7.2, RFC 3986 section
/// 3.2.2): its length, or `None` if the syntax is wrong. The host may be empty (a Host field is
/// empty when the target URI has none) and has no userinfo.
fn authority(value: &[u8]) -> Option<usize> {
    let host_len = if let Some(inner) = value.strip_prefix(b"[") {
        // IP-literal = "[" ( IPv6address / IPvFuture ) "]"
        let close = inner.iter().position(|&b| b == b']')?;
        if !ip_literal(&inner[..close]) {
            return None;
        }
        close + 2
    } else {
        // reg-name (IPv4address is one too) = *( unreserved / pct-encoded / sub-delims ): runs
        // of plain characters, each maybe followed by a percent escape.
        let mut i = 0;
        loop {
            i += value[i..]
                .iter()
                .position(|&b| !is_unreserved_or_sub_delim(b))
                .unwrap_or(value.len() - i);
            match value.get(i..i + 3) {
                Some([b'%', hi, lo]) if hi.is_ascii_hexdigit() && lo.is_ascii_hexdigit() => i += 3,
                _ => break i,
            }
        }
    };
    match &value[host_len..] {
        [] => Some(host_len),
        [b':', port @ ..] if port.iter().all(u8::is_ascii_digit) => Some(host_len),
        _ => None,
    }
}

/// `unreserved / sub-delims` (RFC 3986 section 2).
fn is_unreserved_or_sub_delim(b: u8) -> bool {
    HOST_CHAR[usize::from(b)]
}

/// `IPv6address / IPvFuture`, between the brackets.
fn ip_literal(s: &[u8]) -> bool {
    match s {
        // IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )
        [b'v' | b'V', rest @ ..] => {
            let Some(dot) = rest.iter().position(|&b| b == b'.') else {
                return false;
            };
            let (version, tail) = (&rest[..dot], &rest[dot + 1..]);
            !version.is_empty()
                && version.iter().all(u8::is_ascii_hexdigit)
                && !tail.is_empty()
                && tail
                    .iter()
                    .all(|&b| b == b':' || is_unreserved_or_sub_delim(b))
        }
        _ => std::str::from_utf8(s).is_ok_and(|s| s.parse::<std::net::Ipv6Addr>().is_ok()),
    }
}

/// Checks the authority of an absolute-form target (`http://host:port/path`, RFC 9112 section
/// 3.2.2), which stands in for Host: its host must not be empty (RFC 9110 section 4.2.1) and it
/// has no userinfo (section 4.2.4). Other forms pass: their paths are checked later.
fn absolute_form_ok(target: &[u8]) -> bool {
    if target.first() == Some(&b'/') {
        return true;
    }
    let scheme_end = match target.iter().position(|&b| b == b':') {
        Some(i) => i,
        None => return true,
    };
    let scheme = &target[..scheme_end];
    if !(scheme.eq_ignore_ascii_case(b"http") || scheme.eq_ignore_ascii_case(b"https")) {
        return true;
    }
    let Some(rest) = target[scheme_end + 1..].strip_prefix(b"//") else {
        return false;
    };
    let end = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    matches!(authority(&rest[..end]), Some(host) if host > 0)
}

/// How many bytes of empty lines (CRLF or LF) `input` starts with.
fn leading_empty(input: &[u8]) -> usize {
    input
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(input.len())
}

/// An incomplete head: still acceptable (more input is needed), or over a limit already.
fn partial(input: &[u8]) -> Parsed<'_> {
    let start = leading_empty(input);
    if start > MAX_LEADING_EMPTY * 2 {
        return Parsed::Invalid(Status::BadRequest);
    }
    match input[start..].iter().position(|&b| b == b'\n') {
        None if input.len() - start > MAX_LINE => Parsed::Invalid(Status::UriTooLong),
        Some(i) if input.len() - (start + i + 1) > MAX_HEADER_BYTES => {
            Parsed::Invalid(Status::HeadersTooLarge)
        }
        _ => Parsed::Partial,
    }
}

/// The status for a version httparse refused: 505 if the request line is well formed
/// (`method SP request-target SP HTTP/DIGIT.DIGIT`, RFC 9112 section 2.3), 400 otherwise.
fn bad_version(input: &[u8]) -> Status {
    let input = &input[leading_empty(input)..];
    let line = input.split(|&b| b == b'\n').next().unwrap_or(input);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.splitn(3, |&b| b == b' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Status::BadRequest;
    };
    let well_formed = !method.is_empty()
        && method.iter().all(|&b| is_tchar(b))
        && !target.is_empty()
        && target.iter().all(|&b| is_vchar(b))
        && matches!(version, [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit());
    if well_formed {
        Status::VersionNotSupported
    } else {
        Status::BadRequest
    }
}

/// A decimal number of at most 19 digits (no sign, no spaces).
pub(super) fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0')))
}

/// What a `Range` header asks of a representation of a given length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Range {
    /// No usable single range: send the whole representation (200). Multiple ranges and invalid
    /// syntax land here too (RFC 9110 section 14.2 lets a server ignore Range).
    Full,
    /// The bytes `first..=last` (206).
    Part(u64, u64),
    /// No byte of the range exists (416).
    Unsatisfiable,
}

/// Evaluates a `Range` value (`bytes=a-b`, `bytes=a-`, `bytes=-n`) against `len` bytes.
pub(super) fn range(value: &[u8], len: u64) -> Range {
    let value = value.trim_ascii();
    let Some(unit_end) = value.iter().position(|&b| b == b'=') else {
        return Range::Full;
    };
    if !value[..unit_end]
        .trim_ascii()
        .eq_ignore_ascii_case(b"bytes")
    {
        return Range::Full;
    }
    let spec = value[unit_end + 1..].trim_ascii();
    if spec.contains(&b',') {
        return Range::Full;
    }
    let Some(dash) = spec.iter().position(|&b| b == b'-') else {
        return Range::Full;
    };
    let (first, last) = (spec[..dash].trim_ascii(), spec[dash + 1..].trim_ascii());
    match (
        parse_u64(first),
        first.is_empty(),
        parse_u64(last),
        last.is_empty(),
    ) {
        // a-b
        (Some(a), _, Some(b), _) if a <= b => {
            if a >= len {
                Range::Unsatisfiable
            } else {
                Range::Part(a, b.min(len - 1))
            }
        }
        // a-
        (Some(a), _, None, true) => {
            if a >= len {
                Range::Unsatisfiable
            } else {
                Range::Part(a, len - 1)
            }
        }
        // -n
        (None, true, Some(n), _) => {
            if n == 0 || len == 0 {
                Range::Unsatisfiable
            } else {
                Range::Part(len.saturating_sub(n), len - 1)
            }
        }
        _ => Range::Full,
    }
}

/// Whether a representation last modified at `mtime_secs` (Unix seconds) is unchanged since the
/// date in an `If-Modified-Since` value. An invalid date never matches.
pub(super) fn not_modified_since(value: &[u8], mtime_secs: i64) -> bool {
    let Ok(text) = std::str::from_utf8(value) else {
        return false;
    };
    let Ok(since) = httpdate::parse_http_date(text.trim()) else {
        return false;
    };
    let since = match since.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(_) => return false,
    };
    mtime_secs <= since
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`): always 29 bytes.
pub(super) type HttpDate = [u8; 29];

/// Formats `t` as an HTTP date.
pub(super) fn http_date(t: SystemTime) -> HttpDate {
    let mut out = [b' '; 29];
    // 29 bytes is exactly the length of the format; a write that does not fit leaves spaces.
    let _ = write!(&mut out[..], "{}", httpdate::HttpDate::from(t));
    out
}

std::thread_local! {
    /// This thread's `Date` value and the second it is for: formatted once per second per thread.
    static DATE: Cell<(u64, HttpDate)> = const { Cell::new((u64::MAX, [b' '; 29])) };
}

/// The current time as an HTTP date.
fn now_date() -> HttpDate {
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|cell| {
        let (at, date) = cell.get();
        if at == secs {
            return date;
        }
        let date = http_date(now);
        cell.set((secs, date));
        date
    })
}

/// Appends a decimal number.
pub(super) fn push_u64(out: &mut Buf, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.push(&digits[i..]);
}

/// Appends a status line and the headers every response has: `Server` and `Date`.
pub(super) fn start_head(out: &mut Buf, status: Status) {
    out.push(status.line());
    out.push(b"Server: iocport\r\nDate: ");
    out.push(&now_date());
    out.push(b"\r\n");
}

/// Appends one header field.
pub(super) fn header(out: &mut Buf, name: &[u8], value: &[u8]) {
    out.push(name);
    out.push(b": ");
    out.push(value);
    out.push(b"\r\n");
}

/// Appends the `Connection` header `persist` calls for (if any) and the empty line ending the head.
pub(super) fn end_head(out: &mut Buf, persist: Persist) {
    match persist {
        Persist::Default => out.push(b"\r\n"),
        Persist::KeepAlive => out.push(b"Connection: keep-alive\r\n\r\n"),
        Persist::Close => out.push(b"Connection: close\r\n\r\n"),
    }
}

/// Appends a complete error (or redirect) response with its small text body (none for HEAD),
/// with the extra header fields given.
pub(super) fn error(
    out: &mut Buf,
    status: Status,
    head_only: bool,
    persist: Persist,
    extra: &[(&[u8], &[u8])],
) {
    let text = status.text();
    start_head(out, status);
    out.push(b"Content-Type: text/plain\r\nContent-Length: ");
    push_u64(out, text.len() as u64 + 1);
    out.push(b"\r\n");
    for (name, value) in extra {
        header(out, name, value);
    }
    end_head(out, persist);
    if !head_only {
        out.push(text);
        out.push(b"\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_of(input: &[u8]) -> Option<Status> {
        match parse(input) {
            Parsed::Invalid(s) => Some(s),
            _ => None,
        }
    }

    #[test]
    fn parses_a_request() {
        let input = b"GET /a%20b?x=1 HTTP/1.1\r\nHost: h\r\nRange: bytes=0-9\r\n\r\nGET";
        let Parsed::Complete { req, len } = parse(input) else {
            panic!("not complete");
        };
        assert_eq!(len, input.len() - 3);
        assert_eq!(req.method, Method::Get);
        assert_eq!(req.target, b"/a%20b?x=1");
        assert_eq!(req.persist, Persist::Default);
        assert_eq!(req.range, Some(&b"bytes=0-9"[..]));
        assert!(matches!(parse(&input[..10]), Parsed::Partial));
    }

    #[test]
    fn connection_rules() {
        let p = |s: &[u8]| match parse(s) {
            Parsed::Complete { req, .. } => req.persist,
            other => panic!("{other:?}"),
        };
        assert_eq!(p(b"GET / HTTP/1.0\r\n\r\n"), Persist::Close);
        assert_eq!(
            p(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"),
            Persist::KeepAlive
        );
        assert_eq!(
            p(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"),
            Persist::Close
        );
        assert_eq!(
            p(b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n"),
            Persist::Close
        );
    }

    #[test]
    fn errors() {
        assert_eq!(
            status_of(b"GET / HTTP/2.0\r\n\r\n"),
            Some(Status::VersionNotSupported)
        );
        assert_eq!(
            status_of(b"GET / HTTP/1.2\r\n\r\n"),
            Some(Status::VersionNotSupported)
        );
        assert_eq!(
            status_of(b"GET / FOO/1.1\r\n\r\n"),
            Some(Status::BadRequest)
        );
        assert_eq!(
            status_of(b"\x01\x02 hello\r\n\r\n"),
            Some(Status::BadRequest)
        );
        assert_eq!(
            status_of(b"GET / HTTP/1.1\r\n\r\n"),
            Some(Status::BadRequest)
        );
        let mut long = b"GET /".to_vec();
        long.resize(MAX_LINE + 10, b'a');
        assert_eq!(status_of(&long), Some(Status::UriTooLong));
        let mut many = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
        for i in 0..MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(status_of(&many), Some(Status::HeadersTooLarge));
        let mut big = b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: ".to_vec();
        big.resize(big.len() + MAX_HEADER_BYTES, b'b');
        assert_eq!(status_of(&big), Some(Status::HeadersTooLarge));
    }

    #[test]
    fn ranges() {
        assert_eq!(range(b"bytes=0-9", 100), Range::Part(0, 9));
        assert_eq!(range(b"bytes=90-200", 100), Range::Part(90, 99));
        assert_eq!(range(b"bytes=90-", 100), Range::Part(90, 99));
        assert_eq!(range(b"bytes=-10", 100), Range::Part(90, 99));
        assert_eq!(range(b"bytes=-1000", 100), Range::Part(0, 99));
        assert_eq!(range(b"bytes=100-", 100), Range::Unsatisfiable);
        assert_eq!(range(b"bytes=-0", 100), Range::Unsatisfiable);
        assert_eq!(range(b"bytes=0-0", 0), Range::Unsatisfiable);
        assert_eq!(range(b"bytes=5-1", 100), Range::Full);
        assert_eq!(range(b"bytes=0-1,5-6", 100), Range::Full);
        assert_eq!(range(b"items=0-1", 100), Range::Full);
        assert_eq!(range(b"bytes=x-1", 100), Range::Full);
    }

    #[test]
    fn dates_and_numbers() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(784111777);
        assert_eq!(&http_date(t), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert!(not_modified_since(
            b"Sun, 06 Nov 1994 08:49:37 GMT",
            784111777
        ));
        assert!(!not_modified_since(
            b"Sun, 06 Nov 1994 08:49:36 GMT",
            784111777
        ));
        assert!(!not_modified_since(b"yesterday", 0));
        let mut b = Buf::with_size(0);
        push_u64(&mut b, 0);
        push_u64(&mut b, 1234567890);
        assert_eq!(b.content(), b"01234567890");
        assert_eq!(Status::NotFound.text(), b"404 Not Found");
    }

    /// `GET / HTTP/1.1` with `fields` (each line with its CRLF) and the final CRLF.
    fn with_fields(fields: &str) -> Vec<u8> {
        format!("GET / HTTP/1.1\r\n{fields}\r\n").into_bytes()
    }

    /// Asserts that each request is refused with `status`.
    fn refused(status: Status, cases: &[&[u8]]) {
        for case in cases {
            assert_eq!(
                status_of(case),
                Some(status),
                "{:?}",
                String::from_utf8_lossy(case)
            );
        }
    }

    /// Asserts that each request parses, and returns what it says about the connection.
    fn accepted(case: &[u8]) -> Persist {
        match parse(case) {
            Parsed::Complete { req, len } => {
                assert_eq!(len, case.len(), "{:?}", String::from_utf8_lossy(case));
                req.persist
            }
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(case)),
        }
    }

    /// A value long enough for httparse's vectored scans (32 bytes at a time) to run over it.
    const LONG: &str = "0123456789abcdef0123456789abcdef0123456789";

    #[test]
    fn content_length_conflicting_or_malformed() {
        // RFC 9112 section 6.3 (5), RFC 9110 section 8.6.
        for value in [
            "+5", "-5", "5x", "x", "", " ", "0x5", "5 5", "5,", ",5", "5, 6", "1.0",
        ] {
            refused(
                Status::BadRequest,
                &[&with_fields(&format!(
                    "Host: h\r\nContent-Length: {value}\r\n"
                ))],
            );
        }
        refused(
            Status::BadRequest,
            &[
                &with_fields("Host: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n"),
                &with_fields("Host: h\r\nContent-Length: 0\r\nContent-Length: 1\r\n"),
                &with_fields("Host: h\r\nContent-Length: 99999999999999999999\r\n"),
            ],
        );
        // The same number, repeated or listed, is that number (RFC 9110 section 8.6).
        assert_eq!(
            accepted(&with_fields("Host: h\r\nContent-Length: 0, 0\r\n")),
            Persist::Default
        );
        assert_eq!(
            accepted(&with_fields(
                "Host: h\r\nContent-Length: 0\r\nContent-Length: 00\r\n"
            )),
            Persist::Default
        );
        assert_eq!(
            accepted(&with_fields("Host: h\r\nContent-Length: 5,5\r\n")),
            Persist::Close
        );
    }

    #[test]
    fn transfer_encoding() {
        // With Content-Length (RFC 9112 section 6.1), in either order.
        refused(
            Status::BadRequest,
            &[
                &with_fields("Host: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n"),
                &with_fields("Host: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n"),
                // chunked not last (section 6.3 (4)), twice (section 7), malformed, empty.
                &with_fields("Host: h\r\nTransfer-Encoding: gzip\r\n"),
                &with_fields("Host: h\r\nTransfer-Encoding: chunked, gzip\r\n"),
                &with_fields(
                    "Host: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n",
                ),
                &with_fields("Host: h\r\nTransfer-Encoding: chunked, chunked\r\n"),
                &with_fields("Host: h\r\nTransfer-Encoding: chunked;x=1\r\n"),
                &with_fields("Host: h\r\nTransfer-Encoding: \"chunked\"\r\n"),
                &with_fields("Host: h\r\nTransfer-Encoding: chunked x\r\n"),
                &with_fields("Host: h\r\nTransfer-Encoding:\r\n"),
                &with_fields("Host: h\r\nTransfer-Encoding: ,\r\n"),
                // In HTTP/1.0 (section 6.1).
                b"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            ],
        );
        // A coding the server does not implement, before chunked (section 6.1).
        refused(
            Status::NotImplemented,
            &[
                &with_fields("Host: h\r\nTransfer-Encoding: gzip, chunked\r\n"),
                &with_fields(
                    "Host: h\r\nTransfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n",
                ),
            ],
        );
        assert!(Status::NotImplemented.closes());
        // chunked alone is understood: answered, then the connection closes.
        for fields in [
            "Host: h\r\nTransfer-Encoding: chunked\r\n",
            "Host: h\r\nTransfer-Encoding: CHUNKED\r\n",
            "Host: h\r\nTransfer-Encoding: , chunked ,\r\n",
        ] {
            assert_eq!(accepted(&with_fields(fields)), Persist::Close, "{fields}");
        }
    }

    #[test]
    fn host() {
        // RFC 9112 section 3.2: missing (1.1), repeated, invalid (RFC 9110 section 7.2).
        refused(
            Status::BadRequest,
            &[
                b"GET / HTTP/1.1\r\n\r\n",
                &with_fields("Host: a\r\nHost: a\r\n"),
                b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
                b"GET / HTTP/1.0\r\nHost: a b\r\n\r\n",
            ],
        );
        for value in [
            "a b",
            "a/b",
            "user@host",
            "a:b",
            "a:80:80",
            "a:-1",
            "[::1",
            "[::g]",
            "[1.2.3.4]",
            "[v1]",
            "[v.x]",
            "::1",
            "a%2",
            "a%zz",
            "a\"b",
            "a?b",
            "a#b",
            "\u{e9}",
        ] {
            refused(
                Status::BadRequest,
                &[&with_fields(&format!("Host: {value}\r\n"))],
            );
        }
        for value in [
            "",
            "example.com",
            "example.com:8080",
            "example.com:",
            "127.0.0.1:80",
            "[::1]:8080",
            "[2001:db8::1]",
            "[v7.a:b]",
            "a%2Db_c~d!$&'()*+,;=",
            LONG,
        ] {
            accepted(&with_fields(&format!("Host: {value}\r\n")));
        }
        // HTTP/1.0 needs no Host.
        accepted(b"GET / HTTP/1.0\r\n\r\n");
    }

    #[test]
    fn field_syntax() {
        let long_ctl = format!("Host: h\r\nX-A: {LONG}\x01{LONG}\r\n");
        let long_nul = format!("Host: h\r\nX-A: {LONG}\0{LONG}\r\n");
        let long_cr = format!("Host: h\r\nX-A: {LONG}\r{LONG}\r\n");
        refused(
            Status::BadRequest,
            &[
                // Whitespace between name and colon (RFC 9112 section 5.1).
                &with_fields("Host : h\r\n"),
                &with_fields("Host: h\r\nContent-Length : 5\r\n"),
                &with_fields("Host: h\r\nTransfer-Encoding\t: chunked\r\n"),
                // Obsolete line folding (section 5.2), and whitespace before the first field
                // (section 2.2).
                &with_fields("Host: h\r\nX-A: a\r\n b\r\n"),
                &with_fields("Host: h\r\nX-A: a\r\n\tb\r\n"),
                &with_fields(" Host: h\r\n"),
                // Names of tchars only (RFC 9110 section 5.1).
                &with_fields("Host: h\r\nX(A): a\r\n"),
                &with_fields("Host: h\r\n: a\r\n"),
                &with_fields("Host: h\r\nX\u{e9}: a\r\n"),
                &with_fields(&format!("Host: h\r\nX-{LONG}\x7f: a\r\n")),
                // Values: no CTL but HTAB, no NUL, CR, LF, DEL (RFC 9110 section 5.5).
                &with_fields("Host: h\r\nX-A: a\x01b\r\n"),
                &with_fields("Host: h\r\nX-A: a\0b\r\n"),
                &with_fields("Host: h\r\nX-A: a\x7fb\r\n"),
                long_ctl.as_bytes(),
                long_nul.as_bytes(),
                // Bare CR anywhere (RFC 9112 section 2.2).
                &with_fields("Host: h\r\nX-A: a\rb\r\n"),
                &with_fields("Host: h\r\nX-A: a\r\r\n"),
                long_cr.as_bytes(),
                b"GET / HTTP/1.1\r\nHost: h\r\n\r\r\n",
                b"GET / HTTP/1.1\rHost: h\r\n\r\n",
                b"GET /a\rb HTTP/1.1\r\nHost: h\r\n\r\n",
                b"GE\rT / HTTP/1.1\r\nHost: h\r\n\r\n",
                b"\r\rGET / HTTP/1.1\r\nHost: h\r\n\r\n",
                b"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n",
            ],
        );
        // HTAB and obs-text in values, bare LF line ends (section 2.2 allows them).
        accepted(&with_fields("Host: h\r\nX-A: a\tb \u{e9}\r\n"));
        accepted(b"GET / HTTP/1.1\nHost: h\nX-A: b\n\n");
    }

    #[test]
    fn request_line_syntax() {
        refused(
            Status::BadRequest,
            &[
                // Exactly one SP between the parts (RFC 9112 section 3).
                b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
                b"GET /  HTTP/1.1\r\nHost: h\r\n\r\n",
                b"GET / HTTP/1.1 \r\nHost: h\r\n\r\n",
                b"GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n",
                b" GET / HTTP/1.1\r\nHost: h\r\n\r\n",
                // HTTP-version syntax (section 2.3): case-sensitive, one digit each.
                b"GET / http/1.1\r\nHost: h\r\n\r\n",
                b"GET / HTTP/1.10\r\nHost: h\r\n\r\n",
                b"GET / HTTP/11\r\nHost: h\r\n\r\n",
                b"GET / HTTP/2\r\nHost: h\r\n\r\n",
                b"GET / HTTP/2.0 \r\nHost: h\r\n\r\n",
                b"GET / HTTP/1.1x\r\nHost: h\r\n\r\n",
                b"GET / HTTP/1.1\r\n\r\n",
                // No whitespace or invalid bytes in the target (section 3.2).
                b"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n",
                b"GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n",
                b"GET /a\0b HTTP/1.1\r\nHost: h\r\n\r\n",
                b"GET /a\x7fb HTTP/1.1\r\nHost: h\r\n\r\n",
                "GET /\u{e9} HTTP/1.1\r\nHost: h\r\n\r\n".as_bytes(),
                // A method is a token.
                b"G(T / HTTP/1.1\r\nHost: h\r\n\r\n",
            ],
        );
        refused(
            Status::VersionNotSupported,
            &[
                b"GET / HTTP/2.0\r\nHost: h\r\n\r\n",
                b"GET / HTTP/0.9\r\n\r\n",
            ],
        );
        accepted(b"GET /a?b=c&d=%20 HTTP/1.1\r\nHost: h\r\n\r\n");
        accepted(b"\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n");
    }

    #[test]
    fn absolute_form() {
        // RFC 9112 section 3.2.2: the authority stands in for Host; RFC 9110 section 4.2.1:
        // an empty host is invalid; section 4.2.4: no userinfo.
        refused(
            Status::BadRequest,
            &[
                b"GET http:///a HTTP/1.1\r\nHost: h\r\n\r\n",
                b"GET http://:80/a HTTP/1.1\r\nHost: h\r\n\r\n",
                b"GET http://u@h/a HTTP/1.1\r\nHost: h\r\n\r\n",
                b"GET http://h:x/a HTTP/1.1\r\nHost: h\r\n\r\n",
                b"GET http:/h/a HTTP/1.1\r\nHost: h\r\n\r\n",
                b"GET HTTPS://[::1/a HTTP/1.1\r\nHost: h\r\n\r\n",
                // Host is still required in 1.1, once and well formed.
                b"GET http://h/a HTTP/1.1\r\n\r\n",
                b"GET http://h/a HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n",
            ],
        );
        for target in [
            "http://example.com/a",
            "HTTP://example.com",
            "https://[::1]:8443/a?b",
            "http://h?x",
        ] {
            let req = format!("GET {target} HTTP/1.1\r\nHost: other\r\n\r\n");
            accepted(req.as_bytes());
        }
        accepted(b"GET http://h/a HTTP/1.0\r\n\r\n");
    }
}
