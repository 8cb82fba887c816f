/*
 * The ws2tcpip names from a Winsock-style program: inet_pton/inet_ntop (and InetPtonA/InetNtopA)
 * round trips, getaddrinfo("127.0.0.1") with ADDRINFOA, and WSAAccept without a condition
 * function (as accept) and with one (refused with WSAEOPNOTSUPP, the connection left queued),
 * with its bad input. This program defines NOMINMAX, as many C++ servers do: windows.h must then
 * define no min or max, and std::min and std::max must compile.
 */
#define NOMINMAX
#include "common.h"

#ifdef __cplusplus
#include <algorithm>
#ifdef IOCPORT_MINMAX_DEFINED
#error "NOMINMAX: windows.h must not define min and max"
#endif
#else
#if defined(min) || defined(max)
#error "NOMINMAX: windows.h must not define min and max"
#endif
#endif

static void nominmax(void)
{
    test_step("NOMINMAX: no min/max from windows.h");
#ifdef __cplusplus
    CHECK_EQ(std::min(3, 4), 3);
    CHECK_EQ(std::max(3, 4), 4);
#else
    {
        /* Names of the program's own are free. */
        int min = 1, max = 2;
        CHECK_EQ(min + max, 3);
    }
#endif
}

static void pton_ntop(void)
{
    IN_ADDR a4;
    IN6_ADDR a6;
    SOCKADDR_IN sin;
    char text[INET6_ADDRSTRLEN];
    static const char *const v6[] = {"::1", "2001:db8::1", "fe80::1:2:3:4", "::"};
    size_t i;

    test_step("INET_ADDRSTRLEN and INET6_ADDRSTRLEN hold what inet_ntop writes");
    CHECK(INET_ADDRSTRLEN >= 16);
    CHECK(INET6_ADDRSTRLEN >= 46);

    test_step("inet_pton / inet_ntop round trips, IPv4 and IPv6");
    CHECK_EQ(inet_pton(AF_INET, "127.0.0.1", &a4), 1);
    CHECK_EQ(a4.s_addr, htonl(INADDR_LOOPBACK));
    CHECK(inet_ntop(AF_INET, &a4, text, sizeof text) == text);
    CHECK_EQ(strcmp(text, "127.0.0.1"), 0);
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    CHECK_EQ(inet_pton(AF_INET, "192.0.2.255", &sin.sin_addr), 1);
    CHECK_EQ(ntohl(sin.sin_addr.s_addr), 0xC00002FFu);
    for (i = 0; i < ARRAYSIZE(v6); i++) {
        CHECK_EQ(inet_pton(AF_INET6, v6[i], &a6), 1);
        CHECK(inet_ntop(AF_INET6, &a6, text, sizeof text) != NULL);
        CHECK_EQ(strcmp(text, v6[i]), 0);
    }

    test_step("InetPtonA / InetNtopA are the same functions");
    CHECK_EQ(InetPtonA(AF_INET, "10.1.2.3", &a4), 1);
    CHECK(InetNtopA(AF_INET, &a4, text, INET_ADDRSTRLEN) != NULL);
    CHECK_EQ(strcmp(text, "10.1.2.3"), 0);
    CHECK_EQ(InetPton(AF_INET6, "::ffff:1.2.3.4", &a6), 1);
    CHECK(InetNtop(AF_INET6, &a6, text, sizeof text) != NULL);
    CHECK_EQ(strcmp(text, "::ffff:1.2.3.4"), 0);

    test_step("bad input: malformed text (0), an unknown family (-1), too small a buffer");
    CHECK_EQ(inet_pton(AF_INET, "300.1.1.1", &a4), 0);
    CHECK_EQ(inet_pton(AF_INET, "1.2.3", &a4), 0);
    CHECK_EQ(inet_pton(AF_INET6, "1::2::3", &a6), 0);
    CHECK_EQ(inet_pton(AF_INET, "", &a4), 0);
    errno = 0;
    CHECK_EQ(inet_pton(12345, "1.2.3.4", &a4), -1);
    CHECK_EQ(errno, EAFNOSUPPORT);
    errno = 0;
    CHECK(inet_ntop(AF_INET, &a4, text, 4) == NULL);
    CHECK_EQ(errno, ENOSPC);
    errno = 0;
    CHECK(inet_ntop(12345, &a4, text, sizeof text) == NULL);
    CHECK_EQ(errno, EAFNOSUPPORT);
}

static void addr_info(void)
{
    ADDRINFOA hints;
    PADDRINFOA res = NULL, ai;
    int found = 0;
    char text[INET_ADDRSTRLEN];

    test_step("getaddrinfo(\"127.0.0.1\", \"8080\") with ADDRINFOA hints");
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    CHECK_EQ(getaddrinfo("127.0.0.1", "8080", &hints, &res), 0);
    CHECK(res != NULL);
    for (ai = res; ai; ai = ai->ai_next) {
        const SOCKADDR_IN *sin = (const SOCKADDR_IN *)ai->ai_addr;
        CHECK_EQ(ai->ai_family, AF_INET);
        CHECK_EQ(ai->ai_socktype, SOCK_STREAM);
        CHECK_EQ(ai->ai_addrlen, sizeof(SOCKADDR_IN));
        CHECK_EQ(ntohs(sin->sin_port), 8080);
        CHECK(inet_ntop(AF_INET, &sin->sin_addr, text, sizeof text) != NULL);
        CHECK_EQ(strcmp(text, "127.0.0.1"), 0);
        found++;
    }
    CHECK_EQ(found, 1);
    freeaddrinfo(res);

    test_step("GetAddrInfoA / FreeAddrInfoA, the passive wildcard");
    res = NULL;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    CHECK_EQ(GetAddrInfoA(NULL, "0", &hints, &res), 0);
    CHECK(res != NULL);
    if (res) {
        CHECK_EQ(((SOCKADDR_IN *)res->ai_addr)->sin_addr.s_addr, htonl(INADDR_ANY));
        FreeAddrInfoA(res);
    }

    test_step("bad input: no host and no service; a malformed numeric host");
    res = NULL;
    CHECK_EQ(getaddrinfo(NULL, NULL, &hints, &res), EAI_NONAME);
    hints.ai_flags = AI_NUMERICHOST;
    CHECK(getaddrinfo("not an address", NULL, &hints, &res) != 0);
    CHECK(gai_strerror(EAI_NONAME) != NULL);
}

static int g_condition_calls;

static int CALLBACK condition(LPWSABUF lpCallerId, LPWSABUF lpCallerData, LPQOS lpSQOS,
                              LPQOS lpGQOS, LPWSABUF lpCalleeId, LPWSABUF lpCalleeData, GROUP *g,
                              DWORD_PTR dwCallbackData)
{
    (void)lpCallerId;
    (void)lpCallerData;
    (void)lpSQOS;
    (void)lpGQOS;
    (void)lpCalleeId;
    (void)lpCalleeData;
    (void)g;
    (void)dwCallbackData;
    AADD(&g_condition_calls, 1);
    return CF_ACCEPT;
}

static void wsa_accept(void)
{
    struct sockaddr_in la, peer, ca;
    SOCKET l, c, s, s2;
    int len;
    char byte = 0;
    u_long on = 1;

    test_step("WSAAccept without a condition: accept, with the peer's address");
    l = tcp_listener(&la);
    c = tcp_socket();
    connect_to(c, &la);
    local_addr(c, &ca);
    memset(&peer, 0, sizeof peer);
    len = (int)sizeof peer;
    s = WSAAccept(l, (struct sockaddr *)&peer, &len, NULL, 0);
    CHECK(s != INVALID_SOCKET);
    CHECK(s > 2);
    CHECK_EQ(len, sizeof peer);
    CHECK(same_addr(&peer, &ca));
    send_all(c, "z", 1);
    recv_exact(s, &byte, 1);
    CHECK_EQ(byte, 'z');
    CHECK_EQ(closesocket(s), 0);
    CHECK_EQ(closesocket(c), 0);

    test_step("WSAAccept with NULL address and length");
    c = tcp_socket();
    connect_to(c, &la);
    s = WSAAccept(l, NULL, NULL, NULL, 0);
    CHECK(s != INVALID_SOCKET);
    CHECK_EQ(closesocket(s), 0);
    CHECK_EQ(closesocket(c), 0);

    test_step("a condition function: WSAEOPNOTSUPP, never called; the connection stays queued");
    c = tcp_socket();
    connect_to(c, &la);
    WSASetLastError(0);
    len = (int)sizeof peer;
    s = WSAAccept(l, (struct sockaddr *)&peer, &len, condition, 42);
    CHECK(s == INVALID_SOCKET);
    CHECK_WSAERR(WSAEOPNOTSUPP);
    CHECK_EQ(ALOAD(&g_condition_calls), 0);
    s2 = WSAAccept(l, NULL, NULL, NULL, 0);
    CHECK(s2 != INVALID_SOCKET);
    CHECK_EQ(closesocket(s2), 0);
    CHECK_EQ(closesocket(c), 0);

    test_step("bad sockets: WSAENOTSOCK (before the condition function's WSAEOPNOTSUPP)");
    {
        SOCKET bad[4];
        HANDLE port = new_port(0);
        int fds[2];
        size_t i;
        CHECK_EQ(pipe(fds), 0);
        bad[0] = INVALID_SOCKET;
        bad[1] = (SOCKET)0xbadbad00u;
        bad[2] = (SOCKET)(uintptr_t)port; /* a handle of another kind */
        bad[3] = (SOCKET)fds[0];          /* an fd that is not a socket */
        for (i = 0; i < ARRAYSIZE(bad); i++) {
            WSASetLastError(0);
            CHECK(WSAAccept(bad[i], NULL, NULL, NULL, 0) == INVALID_SOCKET);
            CHECK_WSAERR(WSAENOTSOCK);
            WSASetLastError(0);
            CHECK(WSAAccept(bad[i], NULL, NULL, condition, 0) == INVALID_SOCKET);
            CHECK_WSAERR(WSAENOTSOCK);
        }
        s = tcp_socket();
        CHECK_EQ(closesocket(s), 0);
        WSASetLastError(0);
        CHECK(WSAAccept(s, NULL, NULL, NULL, 0) == INVALID_SOCKET); /* closed */
        CHECK_WSAERR(WSAENOTSOCK);
        close(fds[0]);
        close(fds[1]);
        CHECK(CloseHandle(port));
    }

    test_step("a socket that does not listen: WSAEINVAL");
    s = tcp_socket();
    WSASetLastError(0);
    CHECK(WSAAccept(s, NULL, NULL, NULL, 0) == INVALID_SOCKET);
    CHECK_WSAERR(WSAEINVAL);
    CHECK_EQ(closesocket(s), 0);

    test_step("an address without a length, or a negative length: WSAEFAULT");
    c = tcp_socket();
    connect_to(c, &la);
    WSASetLastError(0);
    CHECK(WSAAccept(l, (struct sockaddr *)&peer, NULL, NULL, 0) == INVALID_SOCKET);
    CHECK_WSAERR(WSAEFAULT);
    len = -1;
    WSASetLastError(0);
    CHECK(WSAAccept(l, (struct sockaddr *)&peer, &len, NULL, 0) == INVALID_SOCKET);
    CHECK_WSAERR(WSAEFAULT);
    /* Still queued after the failures. */
    s = WSAAccept(l, NULL, NULL, NULL, 0);
    CHECK(s != INVALID_SOCKET);
    CHECK_EQ(closesocket(s), 0);
    CHECK_EQ(closesocket(c), 0);

    test_step("a non-blocking listener with nothing queued: WSAEWOULDBLOCK");
    CHECK_EQ(ioctlsocket(l, FIONBIO, &on), 0);
    WSASetLastError(0);
    CHECK(WSAAccept(l, NULL, NULL, NULL, 0) == INVALID_SOCKET);
    CHECK_WSAERR(WSAEWOULDBLOCK);
    CHECK_EQ(closesocket(l), 0);
}

int main(void)
{
    test_init("ws2tcpip");
    nominmax();
    pton_ntop();
    addr_info();
    wsa_startup();
    wsa_accept();
    CHECK_EQ(WSACleanup(), 0);
    return test_done();
}
