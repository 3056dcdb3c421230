/* A node's program that binds nothing itself (tests/binding.rs): it listens on a wildcard
 * port, connects over TCP to a peer, sends unconnected and connected UDP to it, sends from an
 * address it binds explicitly, and connects to loopback. It prints its own addresses as
 * "what ip:port". Usage: peer PEER_IP TCP_PORT UDP_PORT EXPLICIT_IP TAG LISTEN_PORT */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct sockaddr_in at(const char *ip, int port) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

static void show(const char *what, int fd) {
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    char ip[INET_ADDRSTRLEN];
    getsockname(fd, (struct sockaddr *)&a, &len);
    inet_ntop(AF_INET, &a.sin_addr, ip, sizeof ip);
    printf("%s %s:%d\n", what, ip, ntohs(a.sin_port));
}

static void fail(const char *what) {
    perror(what);
    exit(1);
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: peer PEER_IP TCP_PORT UDP_PORT EXPLICIT_IP TAG LISTEN_PORT\n");
        return 2;
    }
    const char *peer = argv[1], *explicit_ip = argv[4], *tag = argv[5];
    int tcp_port = atoi(argv[2]), udp_port = atoi(argv[3]), listen_port = atoi(argv[6]);
    int one = 1;

    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in any = at("0.0.0.0", listen_port);
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(l, (struct sockaddr *)&any, sizeof any) || listen(l, 4)) fail("listen");
    show("listen", l);

    /* The peer may still be starting: retry for up to 10 s. */
    struct sockaddr_in to = at(peer, tcp_port);
    int t = -1;
    for (int i = 0; i < 200; i++) {
        t = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(t, (struct sockaddr *)&to, sizeof to) == 0) break;
        close(t);
        t = -1;
        usleep(50000);
    }
    if (t < 0) fail("tcp connect");
    show("tcp", t);
    close(t);

    char msg[64];
    struct sockaddr_in udp = at(peer, udp_port);
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    snprintf(msg, sizeof msg, "%s-unconnected", tag);
    if (sendto(u, msg, strlen(msg), 0, (struct sockaddr *)&udp, sizeof udp) < 0) fail("sendto");

    int c = socket(AF_INET, SOCK_DGRAM, 0);
    if (connect(c, (struct sockaddr *)&udp, sizeof udp)) fail("udp connect");
    show("udp-connected", c);
    snprintf(msg, sizeof msg, "%s-connected", tag);
    if (send(c, msg, strlen(msg), 0) < 0) fail("send");

    int e = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in mine = at(explicit_ip, 0);
    if (bind(e, (struct sockaddr *)&mine, sizeof mine)) fail("explicit bind");
    snprintf(msg, sizeof msg, "%s-explicit", tag);
    if (sendto(e, msg, strlen(msg), 0, (struct sockaddr *)&udp, sizeof udp) < 0) fail("sendto");

    /* Loopback: connect to our own listener on 127.0.0.1. */
    int ll = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in lo = at("127.0.0.1", listen_port + 1);
    if (bind(ll, (struct sockaddr *)&lo, sizeof lo) || listen(ll, 4)) fail("loopback listen");
    int lc = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(lc, (struct sockaddr *)&lo, sizeof lo)) fail("loopback connect");
    show("loopback", lc);
    return 0;
}
