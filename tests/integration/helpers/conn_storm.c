/* conn_storm.c — hostile HTTP clients for test_abuse.sh: many connections opened and dropped
 * (closed, half-sent, reset), and slowloris clients that trickle one header byte a second. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Far above any limit the daemon is configured with in the tests, far below the fd limit. */
#define SLOW_MAX 1000

static const char usage[] =
    "usage: conn_storm drop ADDR PORT N [SRC]     open and drop N connections, one at a time\n"
    "       conn_storm slow ADDR PORT N SECS [SRC] hold N connections, one header byte a second\n"
    "prints one line: key=value counts\n";

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* A connected socket from src (NULL: any) to addr:port, or -1. */
static int dial(const char *addr, int port, const char *src)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (src) {
        struct sockaddr_in s = {.sin_family = AF_INET};
        if (inet_pton(AF_INET, src, &s.sin_addr) != 1 || bind(fd, (struct sockaddr *)&s, sizeof s)) {
            close(fd);
            return -1;
        }
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, addr, &a.sin_addr) != 1 || connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Three ways to walk away: close at once, close half-way through a request, reset. */
static void drop(int fd, int how)
{
    static const char partial[] = "GET /api/v1/events?limit=10 HTTP/1.1\r\nHost: x\r\nAuthor";
    if (how == 1)
        (void)!send(fd, partial, sizeof partial - 1, MSG_NOSIGNAL);
    if (how == 2) {
        struct linger l = {1, 0}; /* close sends RST instead of FIN */
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    close(fd);
}

static int run_drop(const char *addr, int port, long n, const char *src)
{
    long opened = 0, failed = 0;
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        int fd = dial(addr, port, src);
        if (fd < 0) {
            failed++;
            continue;
        }
        opened++;
        drop(fd, (int)(i % 3));
    }
    printf("opened=%ld failed=%ld seconds=%.2f\n", opened, failed, now_s() - t0);
    return 0;
}

static int run_slow(const char *addr, int port, long n, long secs, const char *src)
{
    static const char start[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
    static int fds[SLOW_MAX];
    long held = 0, refused = 0, closed = 0;
    for (long i = 0; i < n && i < SLOW_MAX; i++) {
        int fd = dial(addr, port, src);
        if (fd < 0 || send(fd, start, sizeof start - 1, MSG_NOSIGNAL) < 0) {
            refused++;
            if (fd >= 0)
                close(fd);
            continue;
        }
        fds[held++] = fd;
    }
    long alive = held;
    for (long s = 0; s < secs && alive > 0; s++) {
        sleep(1);
        for (long i = 0; i < held; i++) {
            if (fds[i] < 0)
                continue;
            char b;
            ssize_t r = recv(fds[i], &b, 1, MSG_DONTWAIT);
            /* "X" a second: a header line that never ends */
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) ||
                send(fds[i], "X", 1, MSG_NOSIGNAL) < 0) {
                close(fds[i]);
                fds[i] = -1;
                closed++;
                alive--;
            }
        }
    }
    /* A connection the server closed before this point was refused, however politely:
     * MHD accepts over-limit connections and closes them at once. */
    printf("held=%ld refused=%ld closed_by_server=%ld still_open=%ld\n", held, refused, closed,
           alive);
    for (long i = 0; i < held; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 5 && !strcmp(argv[1], "drop"))
        return run_drop(argv[2], atoi(argv[3]), atol(argv[4]), argc > 5 ? argv[5] : NULL);
    if (argc >= 6 && !strcmp(argv[1], "slow"))
        return run_slow(argv[2], atoi(argv[3]), atol(argv[4]), atol(argv[5]),
                        argc > 6 ? argv[6] : NULL);
    fputs(usage, stderr);
    return 2;
}
