/* Minimal epoll TCP connect loop: the machine's limit for connect() sweeps.
 * usage: connect_loop FIRST_IPV4 COUNT PORT INFLIGHT
 * Prints: probes seconds open closed other
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
    long count = atol(argv[2]), next = 0, done = 0, inflight = 0, open_ = 0, closed = 0, other = 0;
    int port = atoi(argv[3]), max_inflight = atoi(argv[4]);
    int ep = epoll_create1(0);
    struct epoll_event events[1024];
    double start = now();
    while (done < count) {
        while (inflight < max_inflight && next < count) {
            int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            if (fd < 0) { perror("socket"); return 1; }
            struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
            sa.sin_addr.s_addr = htonl(ntohl(first.s_addr) + next++);
            if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) { open_++; done++; close(fd); continue; }
            if (errno != EINPROGRESS) { if (errno == ECONNREFUSED) closed++; else other++; done++; close(fd); continue; }
            struct epoll_event ev = {.events = EPOLLOUT, .data.fd = fd};
            epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
            inflight++;
        }
        int n = epoll_wait(ep, events, 1024, 2000);
        if (n == 0) break; /* nothing answers: stop rather than hang */
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd, err = 0;
            socklen_t len = sizeof err;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err == 0) open_++; else if (err == ECONNREFUSED) closed++; else other++;
            close(fd);
            inflight--;
            done++;
        }
    }
    printf("%ld %.6f %ld %ld %ld\n", done, now() - start, open_, closed, other);
    return 0;
}
