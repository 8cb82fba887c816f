/*
 * The Microsoft extensions: WSAIoctl(SIO_GET_EXTENSION_FUNCTION_POINTER) for AcceptEx,
 * GetAcceptExSockaddrs, ConnectEx and DisconnectEx; pre-posted AcceptEx with and without receive
 * data, the addresses GetAcceptExSockaddrs reads, SO_UPDATE_ACCEPT_CONTEXT; ConnectEx on unbound
 * and bound sockets, with send data, to a closed port; SO_UPDATE_CONNECT_CONTEXT; DisconnectEx.
 */
#include "common.h"

#define KEY_L 0x1157
#define KEY_A 0xacc
#define KEY_C 0xc0

#define ADDR_LEN ((DWORD)(sizeof(SOCKADDR_STORAGE) + 16))

static LPFN_ACCEPTEX pAcceptEx;
static LPFN_GETACCEPTEXSOCKADDRS pGetAcceptExSockaddrs;
static LPFN_CONNECTEX pConnectEx;
static LPFN_DISCONNECTEX pDisconnectEx;

static void *extension(SOCKET s, GUID guid)
{
    void *fn = NULL;
    DWORD bytes = 0xfeed;
    int r = WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &guid, sizeof guid, &fn, sizeof fn,
                     &bytes, NULL, NULL);
    CHECK_EQ(r, 0);
    CHECK_EQ(bytes, sizeof fn);
    CHECK(fn != NULL);
    return fn;
}

static void load_extensions(void)
{
    SOCKET s = tcp_socket();
    GUID acceptex = WSAID_ACCEPTEX;
    GUID sockaddrs = WSAID_GETACCEPTEXSOCKADDRS;
    GUID connectex = WSAID_CONNECTEX;
    GUID disconnectex = WSAID_DISCONNECTEX;
    void *p;
    test_step("WSAIoctl(SIO_GET_EXTENSION_FUNCTION_POINTER) for the four extensions");
    p = extension(s, acceptex);
    memcpy(&pAcceptEx, &p, sizeof p);
    p = extension(s, sockaddrs);
    memcpy(&pGetAcceptExSockaddrs, &p, sizeof p);
    p = extension(s, connectex);
    memcpy(&pConnectEx, &p, sizeof p);
    p = extension(s, disconnectex);
    memcpy(&pDisconnectEx, &p, sizeof p);
    CHECK_EQ(closesocket(s), 0);
}

/* Reads the addresses AcceptEx wrote and checks them. */
static void check_sockaddrs(char *buf, DWORD recv_len, const struct sockaddr_in *local,
                            const struct sockaddr_in *remote)
{
    struct sockaddr *l = NULL, *r = NULL;
    INT llen = 0, rlen = 0;
    pGetAcceptExSockaddrs(buf, recv_len, ADDR_LEN, ADDR_LEN, &l, &llen, &r, &rlen);
    CHECK(l != NULL);
    CHECK(r != NULL);
    CHECK_EQ(llen, sizeof(struct sockaddr_in));
    CHECK_EQ(rlen, sizeof(struct sockaddr_in));
    CHECK(same_addr((struct sockaddr_in *)l, local));
    CHECK(same_addr((struct sockaddr_in *)r, remote));
    /* Both areas lie in the buffer, after the receive data. */
    CHECK((char *)l >= buf + recv_len && (char *)l < buf + recv_len + 2 * ADDR_LEN);
    CHECK((char *)r >= buf + recv_len && (char *)r < buf + recv_len + 2 * ADDR_LEN);
    /* The exported function reads the same. */
    {
        struct sockaddr *l2 = NULL, *r2 = NULL;
        INT llen2 = 0, rlen2 = 0;
        GetAcceptExSockaddrs(buf, recv_len, ADDR_LEN, ADDR_LEN, &l2, &llen2, &r2, &rlen2);
        CHECK(l2 == l && r2 == r && llen2 == llen && rlen2 == rlen);
    }
}

static void accept_no_data(HANDLE port)
{
    struct sockaddr_in la, ca;
    SOCKET l = tcp_listener(&la);
    SOCKET a = tcp_socket();
    SOCKET c = tcp_socket();
    char buf[2 * (sizeof(SOCKADDR_STORAGE) + 16)];
    OVERLAPPED ov;
    DWORD bytes = 0xfeed;
    BOOL ok;

    test_step("AcceptEx with dwReceiveDataLength 0 pends, completes at connect");
    associate(HSOCK(l), port, KEY_L);
    ov_init(&ov);
    SetLastError(0);
    ok = pAcceptEx(l, a, buf, 0, ADDR_LEN, ADDR_LEN, &bytes, &ov);
    CHECK(!ok);
    CHECK_ERR(ERROR_IO_PENDING);
    CHECK_WSAERR(ERROR_IO_PENDING);
    CHECK(!HasOverlappedIoCompleted(&ov));
    EXPECT_NO_PACKET(port, 50);

    connect_to(c, &la);
    local_addr(c, &ca);
    EXPECT_PACKET(port, KEY_L, 0, &ov);
    CHECK_EQ((NTSTATUS)ov.Internal, STATUS_SUCCESS);
    CHECK_EQ(ov.InternalHigh, 0);
    check_sockaddrs(buf, 0, &la, &ca);

    test_step("SO_UPDATE_ACCEPT_CONTEXT, then the accepted socket works on its own key");
    CHECK_EQ(setsockopt(a, SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT, (char *)&l, (int)sizeof l),
             0);
    {
        struct sockaddr_in peer;
        socklen_t len = sizeof peer;
        CHECK_EQ(sys_getpeername((int)a, (struct sockaddr *)&peer, &len), 0);
        CHECK(same_addr(&peer, &ca));
    }
    associate(HSOCK(a), port, KEY_A);
    {
        char rbuf[8];
        WSABUF rb;
        OVERLAPPED rov;
        DWORD n = 0, flags = 0;
        rb.buf = rbuf;
        rb.len = sizeof rbuf;
        ov_init(&rov);
        CHECK_WSA_STARTED(WSARecv(a, &rb, 1, &n, &flags, &rov, NULL));
        send_all(c, "hi!", 3);
        EXPECT_PACKET(port, KEY_A, 3, &rov);
        CHECK(memcmp(rbuf, "hi!", 3) == 0);
    }
    CHECK_EQ(closesocket(a), 0);
    CHECK_EQ(closesocket(c), 0);
    CHECK_EQ(closesocket(l), 0);
}

static void accept_with_data(HANDLE port)
{
    struct sockaddr_in la, ca;
    SOCKET l = tcp_listener(&la);
    SOCKET a = tcp_socket();
    SOCKET c = tcp_socket();
    enum { RECV = 64 };
    char buf[RECV + 2 * (sizeof(SOCKADDR_STORAGE) + 16)];
    OVERLAPPED ov;
    DWORD bytes = 0;

    test_step("AcceptEx with dwReceiveDataLength 64 completes once the first bytes are in");
    associate(HSOCK(l), port, KEY_L);
    ov_init(&ov);
    memset(buf, 0, sizeof buf);
    CHECK_STARTED(pAcceptEx(l, a, buf, RECV, ADDR_LEN, ADDR_LEN, &bytes, &ov));
    connect_to(c, &la);
    local_addr(c, &ca);
    /* Connected but nothing sent: the accept waits. */
    EXPECT_NO_PACKET(port, 200);
    CHECK(!HasOverlappedIoCompleted(&ov));
    send_all(c, "first", 5);
    EXPECT_PACKET(port, KEY_L, 5, &ov);
    CHECK_EQ(ov.InternalHigh, 5);
    CHECK(memcmp(buf, "first", 5) == 0);
    check_sockaddrs(buf, RECV, &la, &ca);
    CHECK_EQ(setsockopt(a, SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT, (char *)&l, (int)sizeof l),
             0);
    CHECK_EQ(closesocket(a), 0);
    CHECK_EQ(closesocket(c), 0);
    CHECK_EQ(closesocket(l), 0);
}

static void accept_many(HANDLE port)
{
    enum { N = 4 };
    struct sockaddr_in la, ca[N];
    SOCKET l = tcp_listener(&la);
    SOCKET a[N], c[N];
    static char bufs[N][2 * (sizeof(SOCKADDR_STORAGE) + 16)];
    static OVERLAPPED ovs[N];
    int matched[N];
    int i, j;

    test_step("4 pre-posted AcceptEx, 4 clients: each packet once, addresses match the clients");
    associate(HSOCK(l), port, KEY_L);
    for (i = 0; i < N; i++) {
        DWORD bytes = 0;
        a[i] = tcp_socket();
        ov_init(&ovs[i]);
        CHECK_STARTED(pAcceptEx(l, a[i], bufs[i], 0, ADDR_LEN, ADDR_LEN, &bytes, &ovs[i]));
    }
    for (i = 0; i < N; i++) {
        c[i] = tcp_socket();
        connect_to(c[i], &la);
        local_addr(c[i], &ca[i]);
    }
    memset(matched, 0, sizeof matched);
    for (i = 0; i < N; i++) {
        DWORD bytes = 0xfeed;
        ULONG_PTR key = 0;
        LPOVERLAPPED ov = NULL;
        int idx, found = 0;
        struct sockaddr *lp = NULL, *rp = NULL;
        INT llen = 0, rlen = 0;
        CHECK(GetQueuedCompletionStatus(port, &bytes, &key, &ov, PACKET_WAIT_MS));
        CHECK_EQ(key, KEY_L);
        CHECK_EQ(bytes, 0);
        CHECK(ov >= &ovs[0] && ov < &ovs[N]);
        idx = (int)(ov - &ovs[0]);
        pGetAcceptExSockaddrs(bufs[idx], 0, ADDR_LEN, ADDR_LEN, &lp, &llen, &rp, &rlen);
        CHECK(same_addr((struct sockaddr_in *)lp, &la));
        for (j = 0; j < N; j++) {
            if (same_addr((struct sockaddr_in *)rp, &ca[j])) {
                CHECK_EQ(matched[j], 0);
                matched[j] = 1;
                found = 1;
            }
        }
        CHECK(found);
        {
            /* The accepted socket's peer is the client GetAcceptExSockaddrs named. */
            struct sockaddr_in peer;
            socklen_t plen = sizeof peer;
            CHECK_EQ(sys_getpeername((int)a[idx], (struct sockaddr *)&peer, &plen), 0);
            CHECK(same_addr(&peer, (struct sockaddr_in *)rp));
        }
    }
    EXPECT_NO_PACKET(port, 0);
    for (i = 0; i < N; i++) {
        CHECK_EQ(closesocket(a[i]), 0);
        CHECK_EQ(closesocket(c[i]), 0);
    }
    CHECK_EQ(closesocket(l), 0);
}

static void connect_ex(HANDLE port)
{
    struct sockaddr_in la, ba;
    SOCKET l = tcp_listener(&la);
    SOCKET c = tcp_socket();
    OVERLAPPED ov;
    DWORD sent = 0;
    char data[] = "ping";

    test_step("ConnectEx on an unbound socket: FALSE, WSAEINVAL");
    associate(HSOCK(c), port, KEY_C);
    ov_init(&ov);
    WSASetLastError(0);
    CHECK(!pConnectEx(c, (struct sockaddr *)&la, sizeof la, NULL, 0, NULL, &ov));
    CHECK_WSAERR(WSAEINVAL);
    EXPECT_NO_PACKET(port, 20);

    test_step("ConnectEx on a bound socket with 4 bytes of send data");
    bind_loopback(c, &ba);
    ov_init(&ov);
    CHECK_STARTED(pConnectEx(c, (struct sockaddr *)&la, sizeof la, data, 4, &sent, &ov));
    EXPECT_PACKET(port, KEY_C, 4, &ov);
    CHECK_EQ((NTSTATUS)ov.Internal, STATUS_SUCCESS);
    CHECK_EQ(ov.InternalHigh, 4);
    CHECK_EQ(setsockopt(c, SOL_SOCKET, SO_UPDATE_CONNECT_CONTEXT, NULL, 0), 0);
    {
        struct sockaddr_in peer;
        socklen_t len = sizeof peer;
        SOCKET s;
        char got[4];
        CHECK_EQ(sys_getpeername((int)c, (struct sockaddr *)&peer, &len), 0);
        CHECK(same_addr(&peer, &la));
        s = accept_one(l);
        {
            struct sockaddr_in sp;
            socklen_t splen = sizeof sp;
            CHECK_EQ(sys_getpeername((int)s, (struct sockaddr *)&sp, &splen), 0);
            CHECK(same_addr(&sp, &ba));
        }
        recv_exact(s, got, 4);
        CHECK(memcmp(got, "ping", 4) == 0);

        test_step("ConnectEx on a connected socket: WSAEISCONN");
        ov_init(&ov);
        WSASetLastError(0);
        CHECK(!pConnectEx(c, (struct sockaddr *)&la, sizeof la, NULL, 0, NULL, &ov));
        CHECK_WSAERR(WSAEISCONN);

        test_step("DisconnectEx: the peer sees the end of the stream");
        ov_init(&ov);
        CHECK_STARTED(pDisconnectEx(c, &ov, 0, 0));
        EXPECT_PACKET(port, KEY_C, 0, &ov);
        {
            char b;
            ssize_t n;
            wait_fd(s, POLLIN);
            n = sys_recv((int)s, &b, 1, MSG_DONTWAIT);
            CHECK_EQ(n, 0);
        }
        CHECK_EQ(closesocket(s), 0);
    }
    CHECK_EQ(closesocket(c), 0);

    test_step("ConnectEx without send data");
    c = tcp_socket();
    associate(HSOCK(c), port, KEY_C);
    bind_loopback(c, NULL);
    ov_init(&ov);
    CHECK_STARTED(pConnectEx(c, (struct sockaddr *)&la, sizeof la, NULL, 0, NULL, &ov));
    EXPECT_PACKET(port, KEY_C, 0, &ov);
    CHECK_EQ(setsockopt(c, SOL_SOCKET, SO_UPDATE_CONNECT_CONTEXT, NULL, 0), 0);
    {
        SOCKET s = accept_one(l);
        CHECK_EQ(closesocket(s), 0);
    }
    CHECK_EQ(closesocket(c), 0);
    CHECK_EQ(closesocket(l), 0);
}

static void connect_refused(HANDLE port)
{
    struct sockaddr_in dead;
    SOCKET c;
    OVERLAPPED ov;
    DWORD got = 0xfeed, flags = 0;

    test_step("ConnectEx to a port nobody listens on: ERROR_CONNECTION_REFUSED");
    {
        /* A port that was free a moment ago: bound, never listened, closed. */
        SOCKET t = tcp_socket();
        bind_loopback(t, &dead);
        CHECK_EQ(closesocket(t), 0);
    }
    c = tcp_socket();
    associate(HSOCK(c), port, KEY_C);
    bind_loopback(c, NULL);
    ov_init(&ov);
    SetLastError(0);
    if (pConnectEx(c, (struct sockaddr *)&dead, sizeof dead, NULL, 0, NULL, &ov)) {
        test_fail_(__FILE__, __LINE__, "ConnectEx to a closed port succeeded at once", NULL);
    }
    if (GetLastError() == ERROR_IO_PENDING) {
        EXPECT_FAILED_PACKET(port, KEY_C, &ov, ERROR_CONNECTION_REFUSED);
        CHECK_EQ((NTSTATUS)ov.Internal, STATUS_CONNECTION_REFUSED);
        SetLastError(0);
        CHECK(!WSAGetOverlappedResult(c, &ov, &got, FALSE, &flags));
        CHECK_WSAERR(WSAECONNREFUSED);
    } else {
        CHECK_WSAERR(WSAECONNREFUSED);
        EXPECT_NO_PACKET(port, 50);
    }
    CHECK_EQ(closesocket(c), 0);
}

static void disconnect_not_connected(HANDLE port)
{
    SOCKET c = tcp_socket();
    OVERLAPPED ov;
    test_step("DisconnectEx on a socket that is not connected: WSAENOTCONN");
    associate(HSOCK(c), port, KEY_C);
    ov_init(&ov);
    WSASetLastError(0);
    CHECK(!pDisconnectEx(c, &ov, 0, 0));
    CHECK_WSAERR(WSAENOTCONN);
    EXPECT_NO_PACKET(port, 20);
    CHECK_EQ(closesocket(c), 0);
}

static void accept_twice(HANDLE port)
{
    struct sockaddr_in la;
    SOCKET l = tcp_listener(&la);
    SOCKET a = tcp_socket();
    char buf1[2 * (sizeof(SOCKADDR_STORAGE) + 16)], buf2[sizeof buf1];
    OVERLAPPED ov1, ov2;
    DWORD bytes;
    test_step("a second AcceptEx into a socket with one pending: WSAEINVAL, the first goes on");
    associate(HSOCK(l), port, KEY_L);
    ov_init(&ov1);
    CHECK_STARTED(pAcceptEx(l, a, buf1, 0, ADDR_LEN, ADDR_LEN, &bytes, &ov1));
    ov_init(&ov2);
    WSASetLastError(0);
    CHECK(!pAcceptEx(l, a, buf2, 0, ADDR_LEN, ADDR_LEN, &bytes, &ov2));
    CHECK_WSAERR(WSAEINVAL);
    test_step("closing the listener cancels the pending AcceptEx");
    CHECK_EQ(closesocket(l), 0);
    EXPECT_FAILED_PACKET(port, KEY_L, &ov1, ERROR_OPERATION_ABORTED);
    CHECK_EQ(closesocket(a), 0);
}

int main(void)
{
    HANDLE port;
    test_init("acceptex");
    wsa_startup();
    port = new_port(0);
    load_extensions();
    accept_no_data(port);
    accept_with_data(port);
    accept_many(port);
    connect_ex(port);
    connect_refused(port);
    disconnect_not_connected(port);
    accept_twice(port);
    EXPECT_NO_PACKET(port, 0);
    CHECK(CloseHandle(port));
    CHECK_EQ(WSACleanup(), 0);
    return test_done();
}
