/*
 * FormatMessageA and FormatMessageW: Windows' texts for the library's Win32 and Winsock errors
 * (every one of them), FORMAT_MESSAGE_ALLOCATE_BUFFER with LocalFree, IGNORE_INSERTS,
 * MAX_WIDTH_MASK and widths, FROM_STRING with an argument array, and the failures: unknown ids,
 * languages other than neutral or English, buffers too small or NULL, inserts without arguments,
 * va_list arguments, contradictory or missing source flags.
 */
#include "common.h"

#include <wchar.h>

#define SYS (FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS)

/* Every error code the library's headers name (and so may set). */
static const DWORD g_codes[] = {
    ERROR_SUCCESS, ERROR_INVALID_FUNCTION, ERROR_FILE_NOT_FOUND, ERROR_PATH_NOT_FOUND,
    ERROR_TOO_MANY_OPEN_FILES, ERROR_ACCESS_DENIED, ERROR_INVALID_HANDLE,
    ERROR_NOT_ENOUGH_MEMORY, ERROR_OUTOFMEMORY, ERROR_WRITE_PROTECT, ERROR_NOT_READY,
    ERROR_GEN_FAILURE, ERROR_SHARING_VIOLATION, ERROR_HANDLE_EOF, ERROR_HANDLE_DISK_FULL,
    ERROR_NOT_SUPPORTED, ERROR_NETWORK_BUSY, ERROR_NETNAME_DELETED, ERROR_FILE_EXISTS,
    ERROR_INVALID_PARAMETER, ERROR_BROKEN_PIPE, ERROR_DISK_FULL, ERROR_CALL_NOT_IMPLEMENTED,
    ERROR_SEM_TIMEOUT, ERROR_INSUFFICIENT_BUFFER, ERROR_INVALID_NAME, ERROR_DIR_NOT_EMPTY,
    ERROR_BUSY, ERROR_ALREADY_EXISTS, ERROR_PIPE_NOT_CONNECTED, ERROR_MORE_DATA, WAIT_TIMEOUT,
    ERROR_DIRECTORY, ERROR_MR_MID_NOT_FOUND, ERROR_ABANDONED_WAIT_0, ERROR_OPERATION_ABORTED,
    ERROR_IO_INCOMPLETE, ERROR_IO_PENDING, ERROR_NOACCESS, ERROR_NOT_FOUND,
    ERROR_CONNECTION_REFUSED, ERROR_GRACEFUL_DISCONNECT, ERROR_NETWORK_UNREACHABLE,
    ERROR_HOST_UNREACHABLE, ERROR_PORT_UNREACHABLE, ERROR_CONNECTION_ABORTED,
    ERROR_CONNECTION_INVALID, ERROR_CONNECTION_ACTIVE, ERROR_INTERNAL_ERROR,
    ERROR_NOT_LOCKED, ERROR_NOT_OWNER, ERROR_TOO_MANY_POSTS, ERROR_INVALID_FLAGS,
    ERROR_TIMEOUT, ERROR_RESOURCE_TYPE_NOT_FOUND, ERROR_RESOURCE_LANG_NOT_FOUND,
    WSA_IO_PENDING, WSA_IO_INCOMPLETE, WSA_INVALID_HANDLE, WSA_INVALID_PARAMETER,
    WSA_NOT_ENOUGH_MEMORY, WSA_OPERATION_ABORTED, WSAEINTR, WSAEBADF, WSAEACCES, WSAEFAULT,
    WSAEINVAL, WSAEMFILE, WSAEWOULDBLOCK, WSAEINPROGRESS, WSAEALREADY, WSAENOTSOCK,
    WSAEDESTADDRREQ, WSAEMSGSIZE, WSAEPROTOTYPE, WSAENOPROTOOPT, WSAEPROTONOSUPPORT,
    WSAESOCKTNOSUPPORT, WSAEOPNOTSUPP, WSAEPFNOSUPPORT, WSAEAFNOSUPPORT, WSAEADDRINUSE,
    WSAEADDRNOTAVAIL, WSAENETDOWN, WSAENETUNREACH, WSAENETRESET, WSAECONNABORTED,
    WSAECONNRESET, WSAENOBUFS, WSAEISCONN, WSAENOTCONN, WSAESHUTDOWN, WSAETIMEDOUT,
    WSAECONNREFUSED, WSAEHOSTUNREACH, WSASYSNOTREADY, WSAVERNOTSUPPORTED, WSANOTINITIALISED,
    WSAEDISCON,
};

static int ends_with_crlf(const char *s)
{
    size_t n = strlen(s);
    return n >= 2 && s[n - 2] == '\r' && s[n - 1] == '\n';
}

static void system_texts(void)
{
    char buf[512];
    wchar_t wbuf[512];
    DWORD n;

    test_step("FormatMessageA(FROM_SYSTEM): Windows' text with its CRLF");
    memset(buf, 'x', sizeof buf);
    n = FormatMessageA(SYS, NULL, ERROR_INVALID_HANDLE, 0, buf, sizeof buf, NULL);
    CHECK_EQ(n, strlen("The handle is invalid.\r\n"));
    CHECK_EQ(strcmp(buf, "The handle is invalid.\r\n"), 0);
    n = FormatMessageA(SYS, NULL, WSAECONNRESET, MAKELANGID(LANG_NEUTRAL, SUBLANG_DEFAULT), buf,
                       sizeof buf, NULL);
    CHECK_EQ(strcmp(buf, "An existing connection was forcibly closed by the remote host.\r\n"), 0);
    CHECK_EQ(n, strlen(buf));
    n = FormatMessageA(SYS, NULL, ERROR_NETNAME_DELETED, LANG_USER_DEFAULT, buf, sizeof buf,
                       NULL);
    CHECK_EQ(strcmp(buf, "The specified network name is no longer available.\r\n"), 0);
    n = FormatMessageA(SYS, NULL, ERROR_OPERATION_ABORTED, LANG_SYSTEM_DEFAULT, buf, sizeof buf,
                       NULL);
    CHECK_EQ(strcmp(buf, "The I/O operation has been aborted because of either a thread exit or "
                         "an application request.\r\n"),
             0);
    n = FormatMessageA(SYS, NULL, ERROR_SUCCESS, MAKELANGID(LANG_ENGLISH, SUBLANG_ENGLISH_UK),
                       buf, sizeof buf, NULL);
    CHECK_EQ(strcmp(buf, "The operation completed successfully.\r\n"), 0);
    /* Without IGNORE_INSERTS, as many programs call it: fine for messages without inserts. */
    n = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM, NULL, WSAEADDRINUSE, 0, buf, sizeof buf, NULL);
    CHECK(n > 0);
    CHECK(strstr(buf, "Only one usage of each socket address") == buf);
    /* The HRESULT_FROM_WIN32 form, as COM programs pass it. */
    n = FormatMessageA(SYS, NULL, 0x80070005u, 0, buf, sizeof buf, NULL);
    CHECK_EQ(strcmp(buf, "Access is denied.\r\n"), 0);
    /* The neutral name is the A function (no UNICODE). */
    n = FormatMessage(SYS, NULL, ERROR_IO_PENDING, 0, buf, sizeof buf, NULL);
    CHECK_EQ(strcmp(buf, "Overlapped I/O operation is in progress.\r\n"), 0);

    test_step("FormatMessageW: the same in wchar_t, sizes in characters");
    wmemset(wbuf, L'x', 512);
    n = FormatMessageW(SYS, NULL, ERROR_INVALID_HANDLE, 0, wbuf, 512, NULL);
    CHECK_EQ(n, wcslen(L"The handle is invalid.\r\n"));
    CHECK_EQ(wcscmp(wbuf, L"The handle is invalid.\r\n"), 0);
    n = FormatMessageW(SYS, NULL, WSAEWOULDBLOCK, 0x409, wbuf, 512, NULL);
    CHECK_EQ(wcscmp(wbuf, L"A non-blocking socket operation could not be completed "
                          L"immediately.\r\n"),
             0);

    test_step("the message with inserts keeps them with IGNORE_INSERTS");
    n = FormatMessageA(SYS, NULL, ERROR_MR_MID_NOT_FOUND, 0, buf, sizeof buf, NULL);
    CHECK(n > 0);
    CHECK(strstr(buf, "message number 0x%1 in the message file for %2.") != NULL);
}

static void every_code(void)
{
    char buf[512], alloc_text[512];
    wchar_t wbuf[512];
    LPSTR msg;
    size_t i, k;
    DWORD n, w;

    test_step("every error the library can set has text, in A, W and allocated forms");
    for (i = 0; i < ARRAYSIZE(g_codes); i++) {
        n = FormatMessageA(SYS, NULL, g_codes[i], 0, buf, sizeof buf, NULL);
        if (n == 0) {
            fprintf(stderr, "no text for %lu\n", (unsigned long)g_codes[i]);
            CHECK(n > 0);
            continue;
        }
        CHECK_EQ(n, strlen(buf));
        CHECK(ends_with_crlf(buf));
        CHECK(n > 10);
        w = FormatMessageW(SYS, NULL, g_codes[i], 0, wbuf, 512, NULL);
        CHECK_EQ(w, n);
        for (k = 0; k <= n; k++) {
            if ((wchar_t)(unsigned char)buf[k] != wbuf[k]) {
                CHECK(!"the W text differs from the A text");
                break;
            }
        }
        msg = NULL;
        n = FormatMessageA(SYS | FORMAT_MESSAGE_ALLOCATE_BUFFER, NULL, g_codes[i], 0,
                           (LPSTR)&msg, 0, NULL);
        CHECK(msg != NULL);
        if (msg) {
            snprintf(alloc_text, sizeof alloc_text, "%s", msg);
            CHECK_EQ(strcmp(alloc_text, buf), 0);
            CHECK(LocalFree(msg) == NULL);
        }
    }
}

static void allocate_buffer(void)
{
    LPSTR msg = NULL;
    LPWSTR wmsg = NULL;
    DWORD n;
    char line[256];

    test_step("ALLOCATE_BUFFER: a LocalAlloc'd buffer at *lpBuffer, freed by LocalFree");
    n = FormatMessageA(FORMAT_MESSAGE_ALLOCATE_BUFFER | SYS, NULL, WSAECONNREFUSED,
                       MAKELANGID(LANG_NEUTRAL, SUBLANG_DEFAULT), (LPSTR)&msg, 0, NULL);
    CHECK(msg != NULL);
    CHECK_EQ(n, strlen(msg));
    CHECK_EQ(strcmp(msg, "No connection could be made because the target machine actively "
                         "refused it.\r\n"),
             0);
    CHECK(LocalSize(msg) >= n + 1);
    /* The way servers print it. */
    snprintf(line, sizeof line, "connect failed with error %d: %s", WSAECONNREFUSED, msg);
    CHECK(strstr(line, "10061: No connection") != NULL);
    CHECK(LocalFree(msg) == NULL);

    test_step("nSize is the minimum to allocate");
    msg = NULL;
    n = FormatMessageA(FORMAT_MESSAGE_ALLOCATE_BUFFER | SYS, NULL, ERROR_SUCCESS, 0, (LPSTR)&msg,
                       300, NULL);
    CHECK(n > 0);
    CHECK(LocalSize(msg) >= 300);
    CHECK(LocalFree(msg) == NULL);

    test_step("FormatMessageW with ALLOCATE_BUFFER");
    n = FormatMessageW(FORMAT_MESSAGE_ALLOCATE_BUFFER | SYS, NULL, WSAETIMEDOUT, 0,
                       (LPWSTR)&wmsg, 0, NULL);
    CHECK(wmsg != NULL);
    CHECK_EQ(n, wcslen(wmsg));
    CHECK(wcsstr(wmsg, L"A connection attempt failed") == wmsg);
    CHECK(LocalSize(wmsg) >= (n + 1) * sizeof(wchar_t));
    CHECK(LocalFree(wmsg) == NULL);

    test_step("ALLOCATE_BUFFER with NULL lpBuffer: ERROR_NOT_ENOUGH_MEMORY");
    SetLastError(0);
    CHECK_EQ(FormatMessageA(FORMAT_MESSAGE_ALLOCATE_BUFFER | SYS, NULL, ERROR_SUCCESS, 0, NULL, 0,
                            NULL),
             0);
    CHECK_ERR(ERROR_NOT_ENOUGH_MEMORY);

    test_step("ALLOCATE_BUFFER that fails stores NULL");
    msg = (LPSTR)(uintptr_t)1;
    SetLastError(0);
    CHECK_EQ(FormatMessageA(FORMAT_MESSAGE_ALLOCATE_BUFFER | SYS, NULL, 0x12345, 0, (LPSTR)&msg,
                            0, NULL),
             0);
    CHECK_ERR(ERROR_MR_MID_NOT_FOUND);
    CHECK(msg == NULL);
}

static void widths(void)
{
    char buf[512];
    char *line;
    DWORD n;

    test_step("FORMAT_MESSAGE_MAX_WIDTH_MASK: the line break becomes a space, as Windows");
    n = FormatMessageA(SYS | FORMAT_MESSAGE_MAX_WIDTH_MASK, NULL, ERROR_INVALID_HANDLE, 0, buf,
                       sizeof buf, NULL);
    CHECK_EQ(strcmp(buf, "The handle is invalid. "), 0);
    CHECK_EQ(n, strlen(buf));

    test_step("a width of 30 wraps at spaces");
    n = FormatMessageA(SYS | 30, NULL, WSAECONNRESET, 0, buf, sizeof buf, NULL);
    CHECK(n > 0);
    CHECK(strchr(buf, '\n') != NULL);
    for (line = strtok(buf, "\r\n"); line; line = strtok(NULL, "\r\n")) {
        CHECK(strlen(line) <= 30);
    }
}

static DWORD format_with_va_list(DWORD flags, const char *source, char *buf, DWORD size, ...)
{
    va_list ap;
    DWORD n;
    va_start(ap, size);
    n = FormatMessageA(flags, source, 0, 0, buf, size, &ap);
    va_end(ap);
    return n;
}

static void from_string(void)
{
    char buf[256];
    wchar_t wbuf[256];
    const char *args[2];
    const wchar_t *wargs[1];
    DWORD n;

    test_step("FROM_STRING with an ARGUMENT_ARRAY: inserts and escapes");
    args[0] = "world";
    args[1] = "x";
    n = FormatMessageA(FORMAT_MESSAGE_FROM_STRING | FORMAT_MESSAGE_ARGUMENT_ARRAY,
                       "Hello %1!s!, %2%n100%% %.%!", 0, 0, buf, sizeof buf, (va_list *)args);
    CHECK_EQ(strcmp(buf, "Hello world, x\r\n100% .!"), 0);
    CHECK_EQ(n, strlen(buf));
    n = FormatMessageA(FORMAT_MESSAGE_FROM_STRING, "abc%0def", 0, 0, buf, sizeof buf, NULL);
    CHECK_EQ(strcmp(buf, "abc"), 0);
    CHECK_EQ(n, 3);
    n = FormatMessageA(FORMAT_MESSAGE_FROM_STRING, "tab%tend", 0, 0, buf, sizeof buf, NULL);
    CHECK_EQ(strcmp(buf, "tab\tend"), 0);

    test_step("FROM_STRING with IGNORE_INSERTS keeps %1; the language is not looked at");
    n = FormatMessageA(FORMAT_MESSAGE_FROM_STRING | FORMAT_MESSAGE_IGNORE_INSERTS, "a %1 b %2!s!",
                       0, MAKELANGID(LANG_FRENCH, SUBLANG_DEFAULT), buf, sizeof buf, NULL);
    CHECK_EQ(strcmp(buf, "a %1 b %2!s!"), 0);

    test_step("FROM_STRING in W");
    wargs[0] = L"wide";
    n = FormatMessageW(FORMAT_MESSAGE_FROM_STRING | FORMAT_MESSAGE_ARGUMENT_ARRAY, L"a %1 \x263A",
                       0, 0, wbuf, 256, (va_list *)wargs);
    CHECK_EQ(wcscmp(wbuf, L"a wide \x263A"), 0);
    CHECK_EQ(n, 8);

    test_step("inserts without arguments, a va_list, or a format other than !s!: "
              "ERROR_INVALID_PARAMETER");
    SetLastError(0);
    CHECK_EQ(FormatMessageA(FORMAT_MESSAGE_FROM_STRING, "x %1", 0, 0, buf, sizeof buf, NULL), 0);
    CHECK_ERR(ERROR_INVALID_PARAMETER);
    SetLastError(0);
    CHECK_EQ(format_with_va_list(FORMAT_MESSAGE_FROM_STRING, "x %1", buf, sizeof buf, "arg"), 0);
    CHECK_ERR(ERROR_INVALID_PARAMETER);
    /* A va_list is harmless where there is no insert. */
    CHECK_EQ(format_with_va_list(FORMAT_MESSAGE_FROM_STRING, "plain", buf, sizeof buf, "arg"), 5);
    CHECK_EQ(strcmp(buf, "plain"), 0);
    SetLastError(0);
    CHECK_EQ(FormatMessageA(FORMAT_MESSAGE_FROM_STRING | FORMAT_MESSAGE_ARGUMENT_ARRAY,
                            "%1!d!", 0, 0, buf, sizeof buf, (va_list *)args),
             0);
    CHECK_ERR(ERROR_INVALID_PARAMETER);
    SetLastError(0);
    CHECK_EQ(FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM, NULL, ERROR_MR_MID_NOT_FOUND, 0, buf,
                            sizeof buf, NULL),
             0);
    CHECK_ERR(ERROR_INVALID_PARAMETER);
}

static void failures(void)
{
    char buf[256];
    wchar_t wbuf[256];
    DWORD len = (DWORD)strlen("The handle is invalid.\r\n");

    test_step("an unknown id: ERROR_MR_MID_NOT_FOUND");
    SetLastError(0);
    CHECK_EQ(FormatMessageA(SYS, NULL, 0x12345, 0, buf, sizeof buf, NULL), 0);
    CHECK_ERR(ERROR_MR_MID_NOT_FOUND);
    SetLastError(0);
    CHECK_EQ(FormatMessageW(SYS, NULL, 4242, 0, wbuf, 256, NULL), 0);
    CHECK_ERR(ERROR_MR_MID_NOT_FOUND);
    SetLastError(0);
    CHECK_EQ(FormatMessageA(SYS, NULL, WSABASEERR, 0, buf, sizeof buf, NULL), 0);
    CHECK_ERR(ERROR_MR_MID_NOT_FOUND);

    test_step("a language other than neutral or English: ERROR_RESOURCE_LANG_NOT_FOUND");
    SetLastError(0);
    CHECK_EQ(FormatMessageA(SYS, NULL, ERROR_INVALID_HANDLE,
                            MAKELANGID(LANG_FRENCH, SUBLANG_DEFAULT), buf, sizeof buf, NULL),
             0);
    CHECK_ERR(ERROR_RESOURCE_LANG_NOT_FOUND);
    SetLastError(0);
    CHECK_EQ(FormatMessageW(SYS, NULL, ERROR_INVALID_HANDLE,
                            MAKELANGID(LANG_JAPANESE, SUBLANG_DEFAULT), wbuf, 256, NULL),
             0);
    CHECK_ERR(ERROR_RESOURCE_LANG_NOT_FOUND);
    SetLastError(0);
    CHECK_EQ(FormatMessageA(SYS, NULL, ERROR_INVALID_HANDLE, MAKELANGID(LANG_INVARIANT, 0), buf,
                            sizeof buf, NULL),
             0);
    CHECK_ERR(ERROR_RESOURCE_LANG_NOT_FOUND);
    SetLastError(0);
    CHECK_EQ(FormatMessageA(SYS, NULL, ERROR_INVALID_HANDLE, 0x10409, buf, sizeof buf, NULL), 0);
    CHECK_ERR(ERROR_RESOURCE_LANG_NOT_FOUND);

    test_step("too small a buffer: ERROR_INSUFFICIENT_BUFFER (room for the NUL is needed)");
    SetLastError(0);
    CHECK_EQ(FormatMessageA(SYS, NULL, ERROR_INVALID_HANDLE, 0, buf, len, NULL), 0);
    CHECK_ERR(ERROR_INSUFFICIENT_BUFFER);
    CHECK_EQ(FormatMessageA(SYS, NULL, ERROR_INVALID_HANDLE, 0, buf, len + 1, NULL), len);
    SetLastError(0);
    CHECK_EQ(FormatMessageW(SYS, NULL, ERROR_INVALID_HANDLE, 0, wbuf, len, NULL), 0);
    CHECK_ERR(ERROR_INSUFFICIENT_BUFFER);
    CHECK_EQ(FormatMessageW(SYS, NULL, ERROR_INVALID_HANDLE, 0, wbuf, len + 1, NULL), len);

    test_step("a NULL buffer: ERROR_INSUFFICIENT_BUFFER for small sizes, else "
              "ERROR_INVALID_PARAMETER");
    SetLastError(0);
    CHECK_EQ(FormatMessageA(SYS, NULL, ERROR_INVALID_HANDLE, 0, NULL, 0, NULL), 0);
    CHECK_ERR(ERROR_INSUFFICIENT_BUFFER);
    SetLastError(0);
    CHECK_EQ(FormatMessageA(SYS, NULL, ERROR_INVALID_HANDLE, 0, NULL, 1, NULL), 0);
    CHECK_ERR(ERROR_INSUFFICIENT_BUFFER);
    SetLastError(0);
    CHECK_EQ(FormatMessageA(SYS, NULL, ERROR_INVALID_HANDLE, 0, NULL, 256, NULL), 0);
    CHECK_ERR(ERROR_INVALID_PARAMETER);
    SetLastError(0);
    CHECK_EQ(FormatMessageW(SYS, NULL, ERROR_INVALID_HANDLE, 0, NULL, 256, NULL), 0);
    CHECK_ERR(ERROR_INVALID_PARAMETER);

    test_step("source flags: none, contradictory, FROM_STRING without a string, FROM_HMODULE");
    SetLastError(0);
    CHECK_EQ(FormatMessageA(0, NULL, ERROR_INVALID_HANDLE, 0, buf, sizeof buf, NULL), 0);
    CHECK_ERR(ERROR_INVALID_PARAMETER);
    SetLastError(0);
    CHECK_EQ(FormatMessageA(FORMAT_MESSAGE_FROM_STRING | FORMAT_MESSAGE_FROM_SYSTEM, "x", 6, 0,
                            buf, sizeof buf, NULL),
             0);
    CHECK_ERR(ERROR_INVALID_PARAMETER);
    SetLastError(0);
    CHECK_EQ(FormatMessageA(FORMAT_MESSAGE_FROM_STRING, NULL, 0, 0, buf, sizeof buf, NULL), 0);
    CHECK_ERR(ERROR_INVALID_PARAMETER);
    SetLastError(0);
    CHECK_EQ(FormatMessageA(FORMAT_MESSAGE_FROM_HMODULE | FORMAT_MESSAGE_IGNORE_INSERTS, NULL,
                            ERROR_INVALID_HANDLE, 0, buf, sizeof buf, NULL),
             0);
    CHECK_ERR(ERROR_RESOURCE_TYPE_NOT_FOUND);
    /* With FROM_SYSTEM too, the system table answers (as when the module has no such id). */
    CHECK(FormatMessageA(FORMAT_MESSAGE_FROM_HMODULE | SYS, NULL, ERROR_INVALID_HANDLE, 0, buf,
                         sizeof buf, NULL) > 0);
    CHECK_EQ(strcmp(buf, "The handle is invalid.\r\n"), 0);
}

int main(void)
{
    test_init("fmtmsg");
    system_texts();
    every_code();
    allocate_buffer();
    widths();
    from_string();
    failures();
    return test_done();
}
