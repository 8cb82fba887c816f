//! HTTP/1.1 on the wire: a request head parsed by `httparse` and checked against the limits, and
//! response heads written straight into a connection's output buffer (no `format!`, no allocation).
//!
//! Limits: a request target of at most [`MAX_TARGET`] bytes (else 414), a header section of at most
//! [`MAX_HEADER_BYTES`] bytes and [`MAX_HEADERS`] fields (else 431). HTTP/1.0 and HTTP/1.1 are
//! served; a well-formed request line naming another version gets 505, anything else malformed 400.

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
    let (mut close, mut keep_alive, mut hosts, mut body) = (false, false, 0, false);
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
        } else if name.eq_ignore_ascii_case(b"if-modified-since") {
            req.if_modified_since = Some(h.value);
        } else if name.eq_ignore_ascii_case(b"if-none-match") {
            req.if_none_match = true;
        } else if name.eq_ignore_ascii_case(b"range") {
            req.range = Some(h.value);
        } else if name.eq_ignore_ascii_case(b"if-range") {
            req.if_range = true;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            match parse_u64(h.value.trim_ascii()) {
                Some(0) => {}
                Some(_) => body = true,
                None => return Parsed::Invalid(Status::BadRequest),
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            body = true;
        }
    }
    // RFC 9112 section 3.2: a 1.1 request without exactly one Host is answered with 400.
    if minor == 1 && hosts != 1 {
        return Parsed::Invalid(Status::BadRequest);
    }
    // A request body is never read: the connection cannot find the next request, so it closes.
    req.persist = if close || body || (minor == 0 && !keep_alive) {
        Persist::Close
    } else if minor == 0 {
        Persist::KeepAlive
    } else {
        Persist::Default
    };
    Parsed::Complete { req, len }
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
/// (`METHOD SP target SP HTTP/digits[.digits]`), 400 otherwise.
fn bad_version(input: &[u8]) -> Status {
    let input = &input[leading_empty(input)..];
    let line = input.split(|&b| b == b'\n').next().unwrap_or(input);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let parts: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    let well_formed = match parts.as_slice() {
        [method, target, version] => {
            !method.is_empty()
                && !target.is_empty()
                && version.len() > 5
                && version[..5] == *b"HTTP/"
                && version[5].is_ascii_digit()
                && version[5..]
                    .iter()
                    .all(|b| b.is_ascii_digit() || *b == b'.')
        }
        _ => false,
    };
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
}
