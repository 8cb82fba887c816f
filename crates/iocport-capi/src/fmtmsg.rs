//! `FormatMessageA` and `FormatMessageW`: Windows' English text for the Win32 and Winsock errors,
//! so that servers print their errors the way they do on Windows.
//!
//! The system "message table" is [`MESSAGES`]: Windows' own texts (from the Windows SDK's
//! `winerror.h`, as Windows 10 returns them) for every code this library can set or its error
//! tables can produce, and for the other common ones. A unit test fails if a code that
//! `status.rs`, `types.rs`, the headers or any module's error constants can produce has no text.
//!
//! Formatting follows Windows' rules: a message ends with the line break of its definition
//! ("\r\n"); escapes `%n` (a hard line break), `%r`, `%t`, `%0` (end, without the final line
//! break), `%%`, `%.`, `%!`, `% `; inserts `%1`..`%99` (copied with `FORMAT_MESSAGE_IGNORE_INSERTS`,
//! otherwise strings from a `FORMAT_MESSAGE_ARGUMENT_ARRAY`); with a width in
//! `FORMAT_MESSAGE_MAX_WIDTH_MASK`'s bits the definition's own line breaks become spaces (so
//! `FORMAT_MESSAGE_MAX_WIDTH_MASK` gives "The handle is invalid. ", as Windows does), and a width
//! below 255 wraps the lines at white space.

use std::ffi::{c_char, c_void};

use crate::guard;
use crate::heap::local_alloc;
use crate::status::set_last_error;
use crate::types::*;

/// `FORMAT_MESSAGE_ALLOCATE_BUFFER`: `lpBuffer` is where to store a `LocalAlloc`'d buffer.
pub const FORMAT_MESSAGE_ALLOCATE_BUFFER: DWORD = 0x100;
/// `FORMAT_MESSAGE_IGNORE_INSERTS`: `%1`.. are copied as they are.
pub const FORMAT_MESSAGE_IGNORE_INSERTS: DWORD = 0x200;
/// `FORMAT_MESSAGE_FROM_STRING`: `lpSource` is the message definition.
pub const FORMAT_MESSAGE_FROM_STRING: DWORD = 0x400;
/// `FORMAT_MESSAGE_FROM_HMODULE`: a module's message table (there are none here).
pub const FORMAT_MESSAGE_FROM_HMODULE: DWORD = 0x800;
/// `FORMAT_MESSAGE_FROM_SYSTEM`: the system's message table.
pub const FORMAT_MESSAGE_FROM_SYSTEM: DWORD = 0x1000;
/// `FORMAT_MESSAGE_ARGUMENT_ARRAY`: `Arguments` is an array of `DWORD_PTR`, not a `va_list`.
pub const FORMAT_MESSAGE_ARGUMENT_ARRAY: DWORD = 0x2000;
/// `FORMAT_MESSAGE_MAX_WIDTH_MASK`: the line width bits.
pub const FORMAT_MESSAGE_MAX_WIDTH_MASK: DWORD = 0xFF;

/// `ERROR_RESOURCE_TYPE_NOT_FOUND`: `FROM_HMODULE` alone (no module has a message table here).
pub const ERROR_RESOURCE_TYPE_NOT_FOUND: DWORD = 1813;
/// `ERROR_RESOURCE_LANG_NOT_FOUND`: a language the table is not in.
pub const ERROR_RESOURCE_LANG_NOT_FOUND: DWORD = 1815;

/// `LANG_NEUTRAL`, whose sublanguages (neutral, user default, system default, the custom
/// defaults) all mean "a default language", which is the table's.
const LANG_NEUTRAL: u32 = 0x00;
/// `LANG_ENGLISH`: the table's language.
const LANG_ENGLISH: u32 = 0x09;

/// The system message table: (code, text without the final line break), sorted by code. The
/// texts are Windows' (English, as Windows 10 has them).
pub(crate) const MESSAGES: &[(DWORD, &str)] = &[
    (0, "The operation completed successfully."),
    (1, "Incorrect function."),
    (2, "The system cannot find the file specified."),
    (3, "The system cannot find the path specified."),
    (4, "The system cannot open the file."),
    (5, "Access is denied."),
    (6, "The handle is invalid."),
    (7, "The storage control blocks were destroyed."),
    (8, "Not enough memory resources are available to process this command."),
    (9, "The storage control block address is invalid."),
    (12, "The access code is invalid."),
    (13, "The data is invalid."),
    (14, "Not enough memory resources are available to complete this operation."),
    (19, "The media is write protected."),
    (21, "The device is not ready."),
    (24, "The program issued a command but the command length is incorrect."),
    (31, "A device attached to the system is not functioning."),
    (32, "The process cannot access the file because it is being used by another process."),
    (33, "The process cannot access the file because another process has locked a portion of the file."),
    (38, "Reached the end of the file."),
    (39, "The disk is full."),
    (50, "The request is not supported."),
    (53, "The network path was not found."),
    (54, "The network is busy."),
    (55, "The specified network resource or device is no longer available."),
    (59, "An unexpected network error occurred."),
    (64, "The specified network name is no longer available."),
    (65, "Network access is denied."),
    (67, "The network name cannot be found."),
    (80, "The file exists."),
    (87, "The parameter is incorrect."),
    (109, "The pipe has been ended."),
    (110, "The system cannot open the device or file specified."),
    (112, "There is not enough space on the disk."),
    (120, "This function is not supported on this system."),
    (121, "The semaphore timeout period has expired."),
    (122, "The data area passed to a system call is too small."),
    (123, "The filename, directory name, or volume label syntax is incorrect."),
    (126, "The specified module could not be found."),
    (127, "The specified procedure could not be found."),
    (131, "An attempt was made to move the file pointer before the beginning of the file."),
    (145, "The directory is not empty."),
    (158, "The segment is already unlocked."),
    (160, "One or more arguments are not correct."),
    (161, "The specified path is invalid."),
    (170, "The requested resource is in use."),
    (183, "Cannot create a file when that file already exists."),
    (206, "The filename or extension is too long."),
    (230, "The pipe state is invalid."),
    (231, "All pipe instances are busy."),
    (232, "The pipe is being closed."),
    (233, "No process is on the other end of the pipe."),
    (234, "More data is available."),
    (258, "The wait operation timed out."),
    (259, "No more data is available."),
    (267, "The directory name is invalid."),
    (288, "Attempt to release mutex not owned by caller."),
    (298, "Too many posts were made to a semaphore."),
    (317, "The system cannot find message text for message number 0x%1 in the message file for %2."),
    (487, "Attempt to access invalid address."),
    (534, "Arithmetic result exceeded 32 bits."),
    (735, "ERROR_ABANDONED_WAIT_0"),
    (995, "The I/O operation has been aborted because of either a thread exit or an application request."),
    (996, "Overlapped I/O event is not in a signaled state."),
    (997, "Overlapped I/O operation is in progress."),
    (998, "Invalid access to memory location."),
    (1004, "Invalid flags."),
    (1168, "Element not found."),
    (1223, "The operation was canceled by the user."),
    (1225, "The remote computer refused the network connection."),
    (1226, "The network connection was gracefully closed."),
    (1227, "The network transport endpoint already has an address associated with it."),
    (1228, "An address has not yet been associated with the network endpoint."),
    (1229, "An operation was attempted on a nonexistent network connection."),
    (1230, "An invalid operation was attempted on an active network connection."),
    (1231, "The network location cannot be reached. For information about network troubleshooting, see Windows Help."),
    (1232, "The network location cannot be reached. For information about network troubleshooting, see Windows Help."),
    (1233, "The network location cannot be reached. For information about network troubleshooting, see Windows Help."),
    (1234, "No service is operating at the destination network endpoint on the remote system."),
    (1235, "The request was aborted."),
    (1236, "The network connection was aborted by the local system."),
    (1359, "An internal error occurred."),
    (1450, "Insufficient system resources exist to complete the requested service."),
    (1460, "This operation returned because the timeout period expired."),
    (1812, "The specified image file did not contain a resource section."),
    (1813, "The specified resource type cannot be found in the image file."),
    (1814, "The specified resource name cannot be found in the image file."),
    (1815, "The specified resource language ID cannot be found in the image file."),
    (10004, "A blocking operation was interrupted by a call to WSACancelBlockingCall."),
    (10009, "The file handle supplied is not valid."),
    (10013, "An attempt was made to access a socket in a way forbidden by its access permissions."),
    (10014, "The system detected an invalid pointer address in attempting to use a pointer argument in a call."),
    (10022, "An invalid argument was supplied."),
    (10024, "Too many open sockets."),
    (10035, "A non-blocking socket operation could not be completed immediately."),
    (10036, "A blocking operation is currently executing."),
    (10037, "An operation was attempted on a non-blocking socket that already had an operation in progress."),
    (10038, "An operation was attempted on something that is not a socket."),
    (10039, "A required address was omitted from an operation on a socket."),
    (10040, "A message sent on a datagram socket was larger than the internal message buffer or some other network limit, or the buffer used to receive a datagram into was smaller than the datagram itself."),
    (10041, "A protocol was specified in the socket function call that does not support the semantics of the socket type requested."),
    (10042, "An unknown, invalid, or unsupported option or level was specified in a getsockopt or setsockopt call."),
    (10043, "The requested protocol has not been configured into the system, or no implementation for it exists."),
    (10044, "The support for the specified socket type does not exist in this address family."),
    (10045, "The attempted operation is not supported for the type of object referenced."),
    (10046, "The protocol family has not been configured into the system or no implementation for it exists."),
    (10047, "An address incompatible with the requested protocol was used."),
    (10048, "Only one usage of each socket address (protocol/network address/port) is normally permitted."),
    (10049, "The requested address is not valid in its context."),
    (10050, "A socket operation encountered a dead network."),
    (10051, "A socket operation was attempted to an unreachable network."),
    (10052, "The connection has been broken due to keep-alive activity detecting a failure while the operation was in progress."),
    (10053, "An established connection was aborted by the software in your host machine."),
    (10054, "An existing connection was forcibly closed by the remote host."),
    (10055, "An operation on a socket could not be performed because the system lacked sufficient buffer space or because a queue was full."),
    (10056, "A connect request was made on an already connected socket."),
    (10057, "A request to send or receive data was disallowed because the socket is not connected and (when sending on a datagram socket using a sendto call) no address was supplied."),
    (10058, "A request to send or receive data was disallowed because the socket had already been shut down in that direction with a previous shutdown call."),
    (10059, "Too many references to some kernel object."),
    (10060, "A connection attempt failed because the connected party did not properly respond after a period of time, or established connection failed because connected host has failed to respond."),
    (10061, "No connection could be made because the target machine actively refused it."),
    (10062, "Cannot translate name."),
    (10063, "Name component or name was too long."),
    (10064, "A socket operation failed because the destination host was down."),
    (10065, "A socket operation was attempted to an unreachable host."),
    (10066, "Cannot remove a directory that is not empty."),
    (10067, "A Windows Sockets implementation may have a limit on the number of applications that may use it simultaneously."),
    (10091, "WSAStartup cannot function at this time because the underlying system it uses to provide network services is currently unavailable."),
    (10092, "The Windows Sockets version requested is not supported."),
    (10093, "Either the application has not called WSAStartup, or WSAStartup failed."),
    (10101, "Returned by WSARecv or WSARecvFrom to indicate the remote party has initiated a graceful shutdown sequence."),
    (11001, "No such host is known."),
    (11002, "This is usually a temporary error during hostname resolution and means that the local server did not receive a response from an authoritative server."),
    (11003, "A non-recoverable error occurred during a database lookup."),
    (11004, "The requested name is valid, but no data of the requested type was found."),
];

/// The system table's text for `code` (without the final line break).
pub(crate) fn message(code: DWORD) -> Option<&'static str> {
    MESSAGES
        .binary_search_by_key(&code, |&(c, _)| c)
        .ok()
        .map(|i| MESSAGES[i].1)
}

/// The text `FormatMessage(FORMAT_MESSAGE_FROM_SYSTEM)` finds for an id: the Win32 or Winsock
/// error's, also for its `HRESULT_FROM_WIN32` form (`0x8007xxxx`, as COM programs pass it).
fn system_message(id: DWORD) -> Option<&'static str> {
    if id & 0xFFFF_0000 == 0x8007_0000 {
        return message(id & 0xFFFF);
    }
    message(id)
}

/// Whether the table is in language `lang`: neutral (a default language: neutral, the user's,
/// the system's), or English (any sublanguage). The sort-order bits above the language id are
/// not part of it.
fn language_ok(lang: DWORD) -> bool {
    if lang > 0xFFFF {
        return false;
    }
    let primary = lang & 0x3ff;
    primary == LANG_NEUTRAL || primary == LANG_ENGLISH
}

/// Where an insert's strings come from.
enum Args {
    /// None given.
    None,
    /// A `va_list` (refused: not readable here).
    VaList,
    /// An array of `DWORD_PTR` holding string pointers (`char *` for A, `wchar_t *` for W).
    Array(*const usize),
}

/// Reads a NUL-terminated string of `wide` or narrow characters as code units.
///
/// # Safety
///
/// `p` must be NULL or point to a NUL-terminated string of that width.
unsafe fn units(p: *const c_void, wide: bool) -> Vec<u32> {
    let mut out = Vec::new();
    if p.is_null() {
        return out;
    }
    let mut i = 0usize;
    loop {
        // SAFETY: the caller's string, read up to and including its NUL.
        let c = unsafe {
            if wide {
                // Unaligned: a misaligned wide string is the caller's mistake, not UB here.
                (p as *const libc::wchar_t).add(i).read_unaligned() as u32
            } else {
                *(p as *const u8).add(i) as u32
            }
        };
        if c == 0 {
            return out;
        }
        out.push(c);
        i += 1;
    }
}

/// Formats a message definition: escapes, inserts, the width. `Err` is the last error to fail
/// with.
///
/// # Safety
///
/// `Args::Array` must point to as many string pointers as the definition's largest insert
/// number, each NULL or a string of the width `wide` says.
unsafe fn format(src: &[u32], flags: DWORD, args: &Args, wide: bool) -> Result<Vec<u32>, DWORD> {
    let width = flags & FORMAT_MESSAGE_MAX_WIDTH_MASK;
    let ignore = flags & FORMAT_MESSAGE_IGNORE_INSERTS != 0;
    let ch = |c: char| c as u32;
    let mut out: Vec<u32> = Vec::with_capacity(src.len() + 2);
    let mut i = 0;
    while i < src.len() {
        let c = src[i];
        if c == ch('%') {
            let Some(&next) = src.get(i + 1) else {
                // A lone % at the end.
                out.push(c);
                break;
            };
            if (ch('1')..=ch('9')).contains(&next) {
                if ignore {
                    // Copied as it is: the digits and any !fmt! follow as plain text.
                    out.push(c);
                    i += 1;
                    continue;
                }
                let mut n = next - ch('0');
                i += 2;
                if let Some(&d) = src.get(i) {
                    if (ch('0')..=ch('9')).contains(&d) {
                        n = n * 10 + (d - ch('0'));
                        i += 1;
                    }
                }
                // An optional !fmt!: only !s! (the default) is understood.
                if src.get(i) == Some(&ch('!')) {
                    let end = src[i + 1..]
                        .iter()
                        .position(|&x| x == ch('!'))
                        .ok_or(ERROR_INVALID_PARAMETER)?;
                    let spec = &src[i + 1..i + 1 + end];
                    if spec != [ch('s')] {
                        return Err(ERROR_INVALID_PARAMETER);
                    }
                    i += end + 2;
                }
                match args {
                    Args::Array(a) if !a.is_null() => {
                        // SAFETY: the caller's array has an entry for insert `n`.
                        let p = unsafe { a.add(n as usize - 1).read_unaligned() } as *const c_void;
                        if p.is_null() {
                            out.extend("(null)".chars().map(|c| c as u32));
                        } else {
                            // SAFETY: the entry is a string of the caller's width.
                            out.extend(unsafe { units(p, wide) });
                        }
                    }
                    _ => return Err(ERROR_INVALID_PARAMETER),
                }
                continue;
            }
            match char::from_u32(next) {
                Some('n') => {
                    out.push(ch('\r'));
                    out.push(ch('\n'));
                }
                Some('r') => out.push(ch('\r')),
                Some('t') => out.push(ch('\t')),
                Some('0') => return Ok(wrap(out, width)),
                _ => out.push(next),
            }
            i += 2;
            continue;
        }
        if width != 0 && (c == ch('\r') || c == ch('\n')) {
            // The definition's own line break: a space when a width is given.
            out.push(ch(' '));
            if c == ch('\r') && src.get(i + 1) == Some(&ch('\n')) {
                i += 1;
            }
            i += 1;
            continue;
        }
        out.push(c);
        i += 1;
    }
    Ok(wrap(out, width))
}

/// Wraps `text` at `width` characters (1..=254), breaking at spaces; words longer than the width
/// stay whole. Hard line breaks ("\r\n") start a new line.
fn wrap(mut text: Vec<u32>, width: DWORD) -> Vec<u32> {
    if width == 0 || width == FORMAT_MESSAGE_MAX_WIDTH_MASK {
        return text;
    }
    let width = width as usize;
    let (cr, lf, sp) = ('\r' as u32, '\n' as u32, ' ' as u32);
    let mut i = 0;
    let mut line_start = 0;
    let mut last_space: Option<usize> = None;
    while i < text.len() {
        let c = text[i];
        if c == lf {
            line_start = i + 1;
            last_space = None;
        } else if c == sp {
            last_space = Some(i);
        }
        if c != cr && c != lf && i + 1 - line_start > width {
            if let Some(s) = last_space.filter(|&s| s > line_start) {
                text.splice(s..s + 1, [cr, lf]);
                line_start = s + 2;
                last_space = None;
                i = line_start;
                continue;
            }
        }
        i += 1;
    }
    text
}

/// Both forms: the definition, formatting, and the output buffer.
///
/// # Safety
///
/// The caller's pointers as `FormatMessageA`/`W` document them, with `wide` telling the width
/// of characters.
#[allow(clippy::too_many_arguments)]
unsafe fn format_message(
    flags: DWORD,
    source: *const c_void,
    id: DWORD,
    lang: DWORD,
    buffer: *mut c_void,
    size: DWORD,
    arguments: *mut c_void,
    wide: bool,
) -> DWORD {
    let fail = |e: DWORD| {
        set_last_error(e);
        0
    };
    let allocate = flags & FORMAT_MESSAGE_ALLOCATE_BUFFER != 0;
    if allocate {
        if buffer.is_null() {
            return fail(ERROR_NOT_ENOUGH_MEMORY);
        }
        // SAFETY: with ALLOCATE_BUFFER, `buffer` is where the program wants the pointer.
        unsafe { (buffer as *mut *mut c_void).write_unaligned(std::ptr::null_mut()) };
    }
    let from_string = flags & FORMAT_MESSAGE_FROM_STRING != 0;
    let from_system = flags & FORMAT_MESSAGE_FROM_SYSTEM != 0;
    let from_module = flags & FORMAT_MESSAGE_FROM_HMODULE != 0;
    let src: Vec<u32> = if from_string {
        if from_system || from_module || source.is_null() {
            return fail(ERROR_INVALID_PARAMETER);
        }
        // SAFETY: FROM_STRING: `source` is the caller's NUL-terminated definition.
        unsafe { units(source, wide) }
    } else if from_system {
        if !language_ok(lang) {
            return fail(ERROR_RESOURCE_LANG_NOT_FOUND);
        }
        let Some(text) = system_message(id) else {
            return fail(ERROR_MR_MID_NOT_FOUND);
        };
        // The definition ends with its line break, as in a message table.
        text.chars()
            .chain("\r\n".chars())
            .map(|c| c as u32)
            .collect()
    } else if from_module {
        return fail(ERROR_RESOURCE_TYPE_NOT_FOUND);
    } else {
        return fail(ERROR_INVALID_PARAMETER);
    };
    let args = if arguments.is_null() {
        Args::None
    } else if flags & FORMAT_MESSAGE_ARGUMENT_ARRAY != 0 {
        Args::Array(arguments as *const usize)
    } else {
        Args::VaList
    };
    // SAFETY: the caller's arguments, as documented.
    let text = match unsafe { format(&src, flags, &args, wide) } {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    if !wide && text.iter().any(|&c| c > 0xFF) {
        // Only narrow code units reach the A form (its definitions and inserts are bytes).
        return fail(ERROR_INVALID_PARAMETER);
    }
    let len = text.len();
    let unit = if wide {
        std::mem::size_of::<libc::wchar_t>()
    } else {
        1
    };
    let out = if allocate {
        let chars = (len + 1).max(size as usize);
        let Some(p) = chars.checked_mul(unit).and_then(local_alloc) else {
            return fail(ERROR_NOT_ENOUGH_MEMORY);
        };
        // SAFETY: as above; the caller gets the buffer only on success.
        unsafe { (buffer as *mut *mut c_void).write_unaligned(p) };
        p
    } else {
        if len + 1 > size as usize {
            return fail(ERROR_INSUFFICIENT_BUFFER);
        }
        if buffer.is_null() {
            // Windows faults here; a NULL buffer is refused.
            return fail(ERROR_INVALID_PARAMETER);
        }
        buffer
    };
    // SAFETY: `out` has room for len + 1 characters of `unit` bytes (checked or allocated).
    unsafe {
        for (k, &c) in text.iter().chain(std::iter::once(&0)).enumerate() {
            if wide {
                (out as *mut libc::wchar_t)
                    .add(k)
                    .write_unaligned(c as libc::wchar_t);
            } else {
                *(out as *mut u8).add(k) = c as u8;
            }
        }
    }
    len as DWORD
}

/// Formats a message into `char`s: from the system table (`FORMAT_MESSAGE_FROM_SYSTEM`, Windows'
/// English texts for the Win32 and Winsock errors) or the caller's string
/// (`FORMAT_MESSAGE_FROM_STRING`). Returns the characters stored, without the NUL; 0 with the
/// last error on failure: `ERROR_MR_MID_NOT_FOUND` for an unknown id,
/// `ERROR_RESOURCE_LANG_NOT_FOUND` for a language other than neutral or English,
/// `ERROR_INSUFFICIENT_BUFFER` if `nSize` characters are too few, `ERROR_INVALID_PARAMETER` for
/// an insert without `FORMAT_MESSAGE_IGNORE_INSERTS` or an array of strings. With
/// `FORMAT_MESSAGE_ALLOCATE_BUFFER` the message goes to a buffer of at least `nSize` characters
/// that the function allocates and stores at `*(char **)lpBuffer`; `LocalFree` frees it.
#[no_mangle]
pub unsafe extern "C" fn FormatMessageA(
    dwFlags: DWORD,
    lpSource: *const c_void,
    dwMessageId: DWORD,
    dwLanguageId: DWORD,
    lpBuffer: *mut c_char,
    nSize: DWORD,
    Arguments: *mut c_void,
) -> DWORD {
    guard(0, || {
        // SAFETY: the caller's pointers, as documented.
        unsafe {
            format_message(
                dwFlags,
                lpSource,
                dwMessageId,
                dwLanguageId,
                lpBuffer as *mut c_void,
                nSize,
                Arguments,
                false,
            )
        }
    })
}

/// `FormatMessageA` in `wchar_t`s (UTF-32 on Linux): sizes and the result count characters,
/// `FROM_STRING` definitions and inserts are wide strings.
#[no_mangle]
pub unsafe extern "C" fn FormatMessageW(
    dwFlags: DWORD,
    lpSource: *const c_void,
    dwMessageId: DWORD,
    dwLanguageId: DWORD,
    lpBuffer: *mut libc::wchar_t,
    nSize: DWORD,
    Arguments: *mut c_void,
) -> DWORD {
    guard(0, || {
        // SAFETY: the caller's pointers, as documented.
        unsafe {
            format_message(
                dwFlags,
                lpSource,
                dwMessageId,
                dwLanguageId,
                lpBuffer as *mut c_void,
                nSize,
                Arguments,
                true,
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;
    use crate::status::{errno_to_status, errno_to_wsa, status_to_win32, status_to_wsa, Origin};

    /// The `NAME = value` error constants of a Rust source (`pub const ERROR_X: DWORD = 5;`) or
    /// a header (`#define ERROR_X 5L`).
    fn constants(text: &str) -> Vec<(String, DWORD)> {
        let mut out = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            let (name, value) = if let Some(rest) = line.strip_prefix("#define ") {
                let mut words = rest.split_whitespace();
                match (words.next(), words.next(), words.next()) {
                    (Some(n), Some(v), None) => (n, v.trim_end_matches('L')),
                    _ => continue,
                }
            } else if let Some(pos) = line.find("const ") {
                let rest = &line[pos + 6..];
                let Some((name, rest)) = rest.split_once(':') else {
                    continue;
                };
                let Some((ty, value)) = rest.split_once('=') else {
                    continue;
                };
                if !matches!(ty.trim(), "DWORD" | "u32") {
                    continue;
                }
                (name.trim(), value.trim().trim_end_matches(';').trim())
            } else {
                continue;
            };
            let is_error = name.starts_with("ERROR_")
                || name == "WAIT_TIMEOUT"
                || (name.starts_with("WSA")
                    && !name.starts_with("WSA_FLAG")
                    && !matches!(
                        name,
                        "WSABASEERR" | "WSADESCRIPTION_LEN" | "WSASYS_STATUS_LEN"
                    ));
            if !is_error {
                continue;
            }
            let value = value.replace('_', "");
            let parsed = match value.strip_prefix("0x") {
                Some(hex) => DWORD::from_str_radix(hex.trim_end_matches("u32"), 16),
                None => value.trim_end_matches("u32").parse::<DWORD>(),
            };
            if let Ok(v) = parsed {
                out.push((name.to_string(), v));
            }
        }
        out
    }

    /// Every error code the library can produce: what its error tables map errnos and statuses
    /// to, and every error constant defined in its sources and headers.
    fn every_code() -> BTreeSet<(DWORD, String)> {
        let mut codes = BTreeSet::new();
        let mut statuses: Vec<NTSTATUS> = Vec::new();
        for e in 0..200 {
            for origin in [Origin::Socket, Origin::File] {
                statuses.push(errno_to_status(e, origin));
            }
            codes.insert((errno_to_wsa(e), format!("errno_to_wsa({e})")));
        }
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        for sub in ["src", "include/iocport"] {
            for entry in std::fs::read_dir(dir.join(sub)).expect("read the sources") {
                let path = entry.expect("a source").path();
                if path.extension().is_some_and(|e| e == "rs" || e == "h") {
                    files.push(path);
                }
            }
        }
        assert!(files.len() >= 10, "found the sources: {files:?}");
        for path in &files {
            let text = std::fs::read_to_string(path).expect("read a source");
            for (name, v) in constants(&text) {
                codes.insert((v, format!("{name} in {}", path.display())));
            }
            // Every STATUS_ constant of types.rs through both tables.
            for line in text.lines() {
                if let Some(rest) = line.trim().strip_prefix("pub const STATUS_") {
                    let hex = rest
                        .split("0x")
                        .nth(1)
                        .and_then(|h| h.split(|c: char| !c.is_ascii_hexdigit() && c != '_').next())
                        .map(|h| h.replace('_', ""));
                    let value = match hex {
                        Some(h) => u32::from_str_radix(&h, 16).expect("a status") as i32,
                        None => rest
                            .split('=')
                            .nth(1)
                            .and_then(|v| v.trim().trim_end_matches(';').parse().ok())
                            .expect("a status"),
                    };
                    statuses.push(value);
                }
            }
        }
        for st in statuses {
            codes.insert((status_to_win32(st), format!("status_to_win32({st:#x})")));
            codes.insert((status_to_wsa(st), format!("status_to_wsa({st:#x})")));
        }
        codes
    }

    #[test]
    fn every_code_the_library_can_produce_has_text() {
        let codes = every_code();
        // The scan finds the header's, types.rs's and the modules' constants and the tables'
        // results.
        for (code, name) in [
            (10101, "WSAEDISCON in"),
            (158, "ERROR_NOT_LOCKED in"),
            (258, "WAIT_TIMEOUT in"),
            (1815, "ERROR_RESOURCE_LANG_NOT_FOUND in"),
            (64, "status_to_win32("),
            (10054, "status_to_wsa("),
            (10022, "errno_to_wsa("),
        ] {
            assert!(
                codes.iter().any(|(c, n)| *c == code && n.starts_with(name)),
                "{name} {code} not found: {codes:?}"
            );
        }
        let missing: Vec<_> = codes
            .iter()
            .filter(|(c, _)| message(*c).is_none())
            .collect();
        assert!(missing.is_empty(), "codes without a message: {missing:?}");
    }

    #[test]
    fn the_table_is_sorted_and_plain() {
        assert!(MESSAGES.windows(2).all(|w| w[0].0 < w[1].0));
        for &(code, text) in MESSAGES {
            assert!(!text.is_empty() && text.is_ascii(), "{code}");
            assert!(!text.ends_with('\n') && !text.ends_with(' '), "{code}");
        }
    }

    fn fmt_a(flags: DWORD, id: DWORD, lang: DWORD) -> Result<String, DWORD> {
        let mut buf = [0u8; 512];
        // SAFETY: a buffer of 512 bytes.
        let n = unsafe {
            FormatMessageA(
                flags,
                std::ptr::null(),
                id,
                lang,
                buf.as_mut_ptr() as *mut c_char,
                buf.len() as DWORD,
                std::ptr::null_mut(),
            )
        };
        if n == 0 {
            return Err(crate::status::last_error());
        }
        assert_eq!(buf[n as usize], 0);
        Ok(String::from_utf8(buf[..n as usize].to_vec()).unwrap())
    }

    #[test]
    fn system_messages_as_windows_gives_them() {
        let sys = FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS;
        assert_eq!(fmt_a(sys, 6, 0).unwrap(), "The handle is invalid.\r\n");
        assert_eq!(
            fmt_a(sys, 10054, 0x409).unwrap(),
            "An existing connection was forcibly closed by the remote host.\r\n"
        );
        assert_eq!(
            fmt_a(sys | 0xFF, 6, 0x400).unwrap(),
            "The handle is invalid. "
        );
        assert_eq!(fmt_a(sys, 317, 0).unwrap(), "The system cannot find message text for message number 0x%1 in the message file for %2.\r\n");
        assert_eq!(
            fmt_a(FORMAT_MESSAGE_FROM_SYSTEM, 317, 0),
            Err(ERROR_INVALID_PARAMETER)
        );
        assert_eq!(fmt_a(sys, 4242, 0), Err(ERROR_MR_MID_NOT_FOUND));
        assert_eq!(fmt_a(sys, 0x8007_0005, 0).unwrap(), "Access is denied.\r\n");
        assert_eq!(fmt_a(sys, 0x8004_0005, 0), Err(ERROR_MR_MID_NOT_FOUND));
        assert_eq!(fmt_a(sys, 6, 0x40c), Err(ERROR_RESOURCE_LANG_NOT_FOUND));
        assert_eq!(fmt_a(sys, 6, 0x7f), Err(ERROR_RESOURCE_LANG_NOT_FOUND));
        assert_eq!(fmt_a(sys, 6, 0x0c00).unwrap(), "The handle is invalid.\r\n");
        let wrapped = fmt_a(sys | 20, 10054, 0).unwrap();
        assert!(wrapped.split("\r\n").all(|l| l.len() <= 20), "{wrapped:?}");
        assert_eq!(
            wrapped.replace("\r\n", " "),
            "An existing connection was forcibly closed by the remote host. "
        );
    }

    #[test]
    fn escapes_and_inserts_from_a_string() {
        let src = b"a%n%1!s!-%2 100%% %t.%0ignored\0";
        let a1 = b"one\0";
        let args = [a1.as_ptr() as usize, 0usize];
        let mut buf = [0u8; 64];
        // SAFETY: a NUL-terminated definition, two string arguments, 64 bytes of buffer.
        let n = unsafe {
            FormatMessageA(
                FORMAT_MESSAGE_FROM_STRING | FORMAT_MESSAGE_ARGUMENT_ARRAY,
                src.as_ptr() as *const c_void,
                0,
                0,
                buf.as_mut_ptr() as *mut c_char,
                64,
                args.as_ptr() as *mut c_void,
            )
        };
        assert_eq!(
            std::str::from_utf8(&buf[..n as usize]).unwrap(),
            "a\r\none-(null) 100% \t."
        );
    }
}
