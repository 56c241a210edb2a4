/* Minimal epoll loop over connected UDP sockets: the machine's limit for UDP sweeps.
 * Each probe: socket, IP_RECVERR, connect, send an empty datagram, wait for a reply or ICMP.
 * usage: udp_loop FIRST_IPV4 COUNT PORT INFLIGHT
 * Prints: probes seconds replied refused other
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 5) { fprintf(stderr, "usage: %s FIRST COUNT PORT INFLIGHT\n", argv[0]); return 2; }
    struct in_addr first;
    inet_pton(AF_INET, argv[1], &first);
    long count = atol(argv[2]), next = 0, done = 0, inflight = 0, replied = 0, refused = 0, other = 0;
    int port = atoi(argv[3]), max_inflight = atoi(argv[4]), one = 1;
    int ep = epoll_create1(0);
    struct epoll_event events[1024];
    char buf[2048];
    double start = now();
    while (done < count) {
        while (inflight < max_inflight && next < count) {
            int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
            if (fd < 0) { perror("socket"); return 1; }
            setsockopt(fd, SOL_IP, IP_RECVERR, &one, sizeof one);
            struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
            sa.sin_addr.s_addr = htonl(ntohl(first.s_addr) + next++);
            connect(fd, (struct sockaddr *)&sa, sizeof sa);
            send(fd, "", 0, 0);
            struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
            epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
            inflight++;
        }
        int n = epoll_wait(ep, events, 1024, 2000);
        if (n == 0) break;
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (recv(fd, buf, sizeof buf, 0) >= 0) replied++;
            else if (errno == ECONNREFUSED) refused++;
            else other++;
            close(fd);
            inflight--;
            done++;
        }
    }
    printf("%ld %.6f %ld %ld %ld\n", done, now() - start, replied, refused, other);
    return 0;
}
