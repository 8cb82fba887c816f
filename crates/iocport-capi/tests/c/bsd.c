/*
 * The BSD socket calls under their Winsock spellings, which the header routes to the library
 * (macros in C, SOCKET overloads in C++): socket, bind, listen, connect, accept, getsockname,
 * getpeername, send, recv, sendto, recvfrom, shutdown, getsockopt, setsockopt, ioctlsocket.
 * Winsock behaviour: int lengths, SOCKET_ERROR with WSAGetLastError() on failure, blocking
 * sockets by default, FIONBIO/FIONREAD, and no fd 0-2 for new sockets or files.
 */
#include "common.h"

static void calls(void)
{
    SOCKET l, c, a;
    SOCKADDR_IN la, ca, peer, name;
    int len;
    char buf[64];
    int v;

    test_step("socket, bind, listen, connect, accept with int lengths");
    l = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    CHECK(l != INVALID_SOCKET);
    CHECK(l > 2);
    v = 1;
    CHECK_EQ(setsockopt(l, SOL_SOCKET, SO_REUSEADDR, (char *)&v, sizeof v), 0);
    loopback_addr(&la, 0);
    CHECK_EQ(bind(l, (SOCKADDR *)&la, sizeof la), 0);
    len = sizeof la;
    CHECK_EQ(getsockname(l, (SOCKADDR *)&la, &len), 0);
    CHECK_EQ(len, sizeof la);
    CHECK(la.sin_port != 0);
    CHECK_EQ(listen(l, 8), 0);

    c = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(c != INVALID_SOCKET);
    CHECK_EQ(connect(c, (SOCKADDR *)&la, sizeof la), 0);
    len = sizeof ca;
    CHECK_EQ(getsockname(c, (SOCKADDR *)&ca, &len), 0);

    memset(&peer, 0, sizeof peer);
    len = sizeof peer;
    a = accept(l, (SOCKADDR *)&peer, &len);
    CHECK(a != INVALID_SOCKET);
    CHECK(a > 2);
    CHECK_EQ(len, sizeof peer);
    CHECK(same_addr(&peer, &ca));
    len = sizeof name;
    CHECK_EQ(getpeername(a, (SOCKADDR *)&name, &len), 0);
    CHECK(same_addr(&name, &ca));
    len = sizeof name;
    CHECK_EQ(getpeername(c, (SOCKADDR *)&name, &len), 0);
    CHECK(same_addr(&name, &la));

    test_step("getsockopt with an int length");
    v = 0;
    len = sizeof v;
    CHECK_EQ(getsockopt(c, SOL_SOCKET, SO_TYPE, (char *)&v, &len), 0);
    CHECK_EQ(v, SOCK_STREAM);
    CHECK_EQ(len, sizeof v);
    v = 1;
    CHECK_EQ(setsockopt(c, IPPROTO_TCP, TCP_NODELAY, (char *)&v, sizeof v), 0);
    v = 0;
    len = sizeof v;
    CHECK_EQ(getsockopt(c, IPPROTO_TCP, TCP_NODELAY, (char *)&v, &len), 0);
    CHECK(v != 0);

    test_step("send and a blocking recv (sockets block by default)");
    CHECK_EQ(send(c, "hello", 5, 0), 5);
    memset(buf, 0, sizeof buf);
    CHECK_EQ(recv(a, buf, (int)sizeof buf, 0), 5);
    CHECK(memcmp(buf, "hello", 5) == 0);

    test_step("ioctlsocket: FIONREAD counts, FIONBIO makes recv fail with WSAEWOULDBLOCK");
    {
        u_long n = 0, on = 1, off = 0;
        CHECK_EQ(send(c, "abc", 3, 0), 3);
        wait_readable_bytes(a, 3);
        CHECK_EQ(ioctlsocket(a, FIONREAD, &n), 0);
        CHECK_EQ(n, 3);
        CHECK_EQ(recv(a, buf, (int)sizeof buf, 0), 3);
        WSASetLastError(0);
        if (ioctlsocket(a, FIONBIO, &on) == 0) {
            WSASetLastError(0);
            CHECK_EQ(recv(a, buf, (int)sizeof buf, 0), SOCKET_ERROR);
            CHECK_WSAERR(WSAEWOULDBLOCK);
            CHECK_EQ(ioctlsocket(a, FIONBIO, &off), 0);
        } else {
            /* (Not going on to a recv that would block.) */
            test_fail_(__FILE__, __LINE__, "ioctlsocket(a, FIONBIO, &on) == 0", NULL);
        }
    }

    test_step("shutdown(SD_SEND): the peer's recv returns 0");
    CHECK_EQ(shutdown(c, SD_SEND), 0);
    CHECK_EQ(recv(a, buf, (int)sizeof buf, 0), 0);
    WSASetLastError(0);
    CHECK_EQ(send(c, "x", 1, 0), SOCKET_ERROR);
    CHECK_WSAERR(WSAESHUTDOWN);

    CHECK_EQ(closesocket(a), 0);
    CHECK_EQ(closesocket(c), 0);
    CHECK_EQ(closesocket(l), 0);
}

static void datagrams(void)
{
    SOCKET u1 = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP);
    SOCKET u2 = socket(AF_INET, SOCK_DGRAM, 0);
    SOCKADDR_IN a1, a2, from;
    int len, fromlen;
    char buf[32];

    test_step("sendto and recvfrom with int lengths");
    CHECK(u1 != INVALID_SOCKET && u2 != INVALID_SOCKET);
    loopback_addr(&a1, 0);
    loopback_addr(&a2, 0);
    CHECK_EQ(bind(u1, (SOCKADDR *)&a1, sizeof a1), 0);
    CHECK_EQ(bind(u2, (SOCKADDR *)&a2, sizeof a2), 0);
    len = sizeof a1;
    CHECK_EQ(getsockname(u1, (SOCKADDR *)&a1, &len), 0);
    len = sizeof a2;
    CHECK_EQ(getsockname(u2, (SOCKADDR *)&a2, &len), 0);
    CHECK_EQ(sendto(u1, "dgram", 5, 0, (SOCKADDR *)&a2, sizeof a2), 5);
    memset(&from, 0, sizeof from);
    fromlen = sizeof from;
    CHECK_EQ(recvfrom(u2, buf, (int)sizeof buf, 0, (SOCKADDR *)&from, &fromlen), 5);
    CHECK(memcmp(buf, "dgram", 5) == 0);
    CHECK_EQ(fromlen, sizeof from);
    CHECK(same_addr(&from, &a1));

    test_step("listen on a datagram socket: WSAEOPNOTSUPP");
    WSASetLastError(0);
    CHECK_EQ(listen(u1, 1), SOCKET_ERROR);
    CHECK_WSAERR(WSAEOPNOTSUPP);
    CHECK_EQ(closesocket(u1), 0);
    CHECK_EQ(closesocket(u2), 0);
}

static void failures(void)
{
    SOCKET s, t, l;
    SOCKADDR_IN a, taken;
    int len;
    char buf[4];

    test_step("failures give SOCKET_ERROR and the Winsock code");
    s = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(s != INVALID_SOCKET);

    WSASetLastError(0);
    len = sizeof a;
    CHECK_EQ(getpeername(s, (SOCKADDR *)&a, &len), SOCKET_ERROR);
    CHECK_WSAERR(WSAENOTCONN);
    WSASetLastError(0);
    CHECK_EQ(send(s, "x", 1, 0), SOCKET_ERROR);
    CHECK_WSAERR(WSAENOTCONN);
    WSASetLastError(0);
    CHECK(accept(s, NULL, NULL) == INVALID_SOCKET);
    CHECK_WSAERR(WSAEINVAL);

    /* An address in use. */
    l = tcp_listener(&taken);
    t = socket(AF_INET, SOCK_STREAM, 0);
    WSASetLastError(0);
    CHECK_EQ(bind(t, (SOCKADDR *)&taken, sizeof taken), SOCKET_ERROR);
    CHECK_WSAERR(WSAEADDRINUSE);
    CHECK_EQ(closesocket(t), 0);

    /* A refused connection (a port bound but never listening). */
    {
        SOCKADDR_IN dead;
        SOCKET d = socket(AF_INET, SOCK_STREAM, 0);
        loopback_addr(&dead, 0);
        CHECK_EQ(bind(d, (SOCKADDR *)&dead, sizeof dead), 0);
        len = sizeof dead;
        CHECK_EQ(getsockname(d, (SOCKADDR *)&dead, &len), 0);
        WSASetLastError(0);
        CHECK_EQ(connect(s, (SOCKADDR *)&dead, sizeof dead), SOCKET_ERROR);
        CHECK_WSAERR(WSAECONNREFUSED);
        CHECK_EQ(closesocket(d), 0);
    }

    /* A short address. */
    loopback_addr(&a, 0);
    t = socket(AF_INET, SOCK_STREAM, 0);
    WSASetLastError(0);
    CHECK_EQ(bind(t, (SOCKADDR *)&a, 4), SOCKET_ERROR);
    CHECK_WSAERR(WSAEFAULT);
    CHECK_EQ(closesocket(t), 0);

    /* Not sockets. */
    WSASetLastError(0);
    CHECK_EQ(bind(INVALID_SOCKET, (SOCKADDR *)&a, sizeof a), SOCKET_ERROR);
    CHECK_WSAERR(WSAENOTSOCK);
    WSASetLastError(0);
    CHECK_EQ(recv((SOCKET)0xbadbad00u, buf, (int)sizeof buf, 0), SOCKET_ERROR);
    CHECK_WSAERR(WSAENOTSOCK);
    {
        HANDLE port = new_port(0);
        WSASetLastError(0);
        CHECK_EQ(listen((SOCKET)(uintptr_t)port, 1), SOCKET_ERROR);
        CHECK_WSAERR(WSAENOTSOCK);
        CHECK(CloseHandle(port));
    }
    CHECK_EQ(closesocket(s), 0);
    CHECK_EQ(closesocket(l), 0);
}

static void no_low_fds(void)
{
    int saved = dup(0);
    SOCKET s, w, a, c, l;
    HANDLE f;
    char path[256];
    SOCKADDR_IN la;

    test_step("with fd 0 free, new sockets and files still never get fds 0-2");
    CHECK(saved > 2);
    l = tcp_listener(&la);
    c = tcp_socket();
    CHECK_EQ(close(0), 0);
    s = socket(AF_INET, SOCK_STREAM, 0);
    w = WSASocketW(AF_INET, SOCK_DGRAM, IPPROTO_UDP, NULL, 0, WSA_FLAG_OVERLAPPED);
    temp_path(path, sizeof path, "lowfd");
    f = CreateFileA(path, GENERIC_READ | GENERIC_WRITE, 0, NULL, CREATE_NEW, FILE_FLAG_OVERLAPPED,
                    NULL);
    connect_to(c, &la);
    a = accept(l, NULL, NULL);
    /* Put stdin back before checking, so a failure leaves the process sane. */
    CHECK_EQ(dup2(saved, 0), 0);
    close(saved);
    CHECK(s != INVALID_SOCKET && s > 2);
    CHECK(w != INVALID_SOCKET && w > 2);
    CHECK(f != INVALID_HANDLE_VALUE && (uintptr_t)f > 2);
    CHECK(a != INVALID_SOCKET && a > 2);
    CHECK_EQ(closesocket(s), 0);
    CHECK_EQ(closesocket(w), 0);
    CHECK_EQ(closesocket(a), 0);
    CHECK_EQ(closesocket(c), 0);
    CHECK_EQ(closesocket(l), 0);
    CHECK(CloseHandle(f));
    unlink(path);
}

static void associated_nonblocking(void)
{
    SOCKET c, s;
    HANDLE port = new_port(0);
    u_long on = 1;
    char buf[8];
    test_step("an associated socket the program made non-blocking: recv says WSAEWOULDBLOCK");
    tcp_pair(&c, &s);
    associate(HSOCK(s), port, 1);
    CHECK_EQ(ioctlsocket(s, FIONBIO, &on), 0);
    WSASetLastError(0);
    CHECK_EQ(recv(s, buf, (int)sizeof buf, 0), SOCKET_ERROR);
    CHECK_WSAERR(WSAEWOULDBLOCK);
    test_step("CloseHandle(INVALID_HANDLE_VALUE), the process pseudo-handle, succeeds");
    CHECK(CloseHandle(INVALID_HANDLE_VALUE));
    CHECK_EQ(closesocket(s), 0);
    CHECK_EQ(closesocket(c), 0);
    CHECK(CloseHandle(port));
}

int main(void)
{
    test_init("bsd");
    wsa_startup();
    calls();
    datagrams();
    failures();
    no_low_fds();
    associated_nonblocking();
    CHECK_EQ(WSACleanup(), 0);
    return test_done();
}
