/* berth-shim: the per-container monitor, in C to keep it at a few hundred KB.
 *
 * Same job and arguments as shim.py (which is the fallback when no C compiler exists):
 * parent of the container's init; writes stdout/stderr as JSON lines with timestamps
 * (Docker's json-file format); serves attach clients on a unix socket; records the exit
 * atomically; applies the restart policy by exec'ing the Python respawner in its own
 * process. A slow attach client is dropped: the container never waits for a reader.
 *
 * Stop grace: a stop that does not wait (runtime/container/grace.py) writes {"kill_at": T}
 * (T on CLOCK_MONOTONIC) into the stop-flag file and sends us SIGURG; we SIGKILL the init
 * at T if it is still alive, so nobody else has to sit out the grace period.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS 16
#define MAX_LINE 16384

struct stream {
    int fd;
    const char *name;
    char buf[MAX_LINE];
    size_t len;
    int open;
};

static volatile sig_atomic_t stop_asked;
static const char *stop_flag_path = "";

static void on_sigurg(int sig) {
    (void)sig;
    stop_asked = 1;
}

static double monotonic_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The kill deadline the runtime armed in the stop-flag file, or 0 when there is none. */
static double read_kill_at(void) {
    char buf[256];
    int fd = open(stop_flag_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    char *at = strstr(buf, "\"kill_at\"");
    if (at == NULL || (at = strchr(at, ':')) == NULL) return 0;
    return strtod(at + 1, NULL);
}

static int log_fd = -1, input_fd = -1, listen_fd = -1, winsize_fd = -1, pty_master = -1;
static int clients[MAX_CLIENTS];
static struct stream streams[2];
static int nstreams;

static const char *opt(int argc, char **argv, const char *name, const char *fallback) {
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0) return argv[i + 1];
    return fallback;
}

static void now_iso(char *out, size_t size) {
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, size - n, ".%09ldZ", ts.tv_nsec);
}

/* Append `s` as a JSON string body: quotes, backslashes and control bytes escaped. Bytes
 * above 0x7f pass through; the reader decodes them with surrogateescape, losslessly. */
static size_t json_escape(char *out, const char *s, size_t len) {
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)sprintf(out + o, "\\u%04x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    return o;
}

static void write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return;
        }
        buf += n;
        len -= (size_t)n;
    }
}

static void log_line(const char *stream, const char *data, size_t len) {
    static char out[MAX_LINE * 6 + 256];
    char stamp[64];
    now_iso(stamp, sizeof stamp);
    size_t o = (size_t)sprintf(out, "{\"log\":\"");
    o += json_escape(out + o, data, len);
    o += (size_t)sprintf(out + o, "\",\"stream\":\"%s\",\"time\":\"%s\"}\n", stream, stamp);
    write_all(log_fd, out, o);
}

static void log_data(struct stream *s, const char *data, size_t len) {
    for (size_t i = 0; i < len; i++) {
        s->buf[s->len++] = data[i];
        if (data[i] == '\n' || s->len == MAX_LINE) {
            log_line(s->name, s->buf, s->len);
            s->len = 0;
        }
    }
}

static void drop_client(int i) {
    close(clients[i]);
    clients[i] = -1;
}

static void forward(const char *data, size_t len) {
    for (int i = 0; i < MAX_CLIENTS; i++) {
        if (clients[i] < 0) continue;
        ssize_t n = send(clients[i], data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n != (ssize_t)len) drop_client(i);
    }
}

/* Returns 0 at EOF (or EIO from a pty without slave), 1 otherwise. */
static int read_stream(struct stream *s) {
    char buf[65536];
    ssize_t n = read(s->fd, buf, sizeof buf);
    if (n < 0) return (errno == EAGAIN || errno == EINTR) ? 1 : 0;
    if (n == 0) return 0;
    log_data(s, buf, (size_t)n);
    forward(buf, (size_t)n);
    return 2;
}

static void write_exit(const char *path, int code, int restart_count) {
    char tmp[4096], stamp[64], body[256];
    now_iso(stamp, sizeof stamp);
    snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return;
    int n = snprintf(body, sizeof body, "{\"exit_code\": %d, \"finished_at\": \"%s\", \"restart_count\": %d}", code,
                     stamp, restart_count);
    write_all(fd, body, (size_t)n);
    close(fd);
    rename(tmp, path);
}

/* A window size (two native uint16: rows, cols) from `attach` or the web terminal: set it on
 * the pty, and the kernel sends SIGWINCH to the program in the foreground. */
static void resize_pty(void) {
    unsigned short size[2];
    while (recv(winsize_fd, size, sizeof size, MSG_DONTWAIT) == (ssize_t)sizeof size) {
        struct winsize ws = {.ws_row = size[0], .ws_col = size[1]};
        if (pty_master >= 0 && ws.ws_row > 0 && ws.ws_col > 0) ioctl(pty_master, TIOCSWINSZ, &ws);
    }
}

static int monitor(pid_t pid) {
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    struct pollfd fds[4 + MAX_CLIENTS];
    int status = 0;
    double kill_at = 0;
    int killed = 0;
    /* SIGURG stays blocked except inside ppoll: no wake-up is lost between check and wait. */
    sigset_t urg, waitmask;
    sigemptyset(&urg);
    sigaddset(&urg, SIGURG);
    sigprocmask(SIG_BLOCK, &urg, &waitmask);
    sigdelset(&waitmask, SIGURG);
    struct sigaction sa = {.sa_handler = on_sigurg};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGURG, &sa, NULL);
    /* A stop armed before the handler was in place: its SIGURG was ignored, its file is not. */
    kill_at = read_kill_at();
    for (;;) {
        if (stop_asked) {
            stop_asked = 0;
            kill_at = read_kill_at();
        }
        struct timespec wait_for, *timeout = NULL;
        if (kill_at > 0 && !killed) {
            double left = kill_at - monotonic_now();
            if (left <= 0) {
                kill(pid, SIGKILL); /* the PID namespace's init: every process in it dies */
                killed = 1;
            } else {
                wait_for.tv_sec = (time_t)left;
                wait_for.tv_nsec = (long)((left - (double)wait_for.tv_sec) * 1e9);
                timeout = &wait_for;
            }
        }
        int n = 0;
        fds[n++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
        fds[n++] = (struct pollfd){.fd = listen_fd, .events = POLLIN};
        for (int i = 0; i < nstreams; i++)
            fds[n++] = (struct pollfd){.fd = streams[i].open ? streams[i].fd : -1, .events = POLLIN};
        for (int i = 0; i < MAX_CLIENTS; i++) fds[n++] = (struct pollfd){.fd = clients[i], .events = POLLIN};
        int winsize_at = n;
        fds[n++] = (struct pollfd){.fd = winsize_fd, .events = POLLIN};
        int ready = ppoll(fds, (nfds_t)n, timeout, &waitmask);
        if (ready < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (ready == 0) continue; /* the kill deadline: handled at the top of the loop */
        /* Accept first: a client that connected before start must see the first output. */
        while (fds[1].revents & POLLIN) {
            int c = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (c >= 0) {
                int slot = -1;
                for (int i = 0; i < MAX_CLIENTS && slot < 0; i++)
                    if (clients[i] < 0) slot = i;
                if (slot < 0) close(c);
                else clients[slot] = c;
            } else {
                break;
            }
        }
        for (int i = 0; i < nstreams; i++)
            if (fds[2 + i].revents && read_stream(&streams[i]) == 0) streams[i].open = 0;
        for (int i = 0; i < MAX_CLIENTS; i++) {
            struct pollfd *p = &fds[2 + nstreams + i];
            if (clients[i] < 0 || p->fd != clients[i] || !p->revents) continue;
            char buf[4096];
            ssize_t got = recv(clients[i], buf, sizeof buf, MSG_DONTWAIT);
            if (got > 0) {
                if (input_fd >= 0) write_all(input_fd, buf, (size_t)got);
            } else if (got == 0 || errno != EAGAIN) {
                drop_client(i);
            }
        }
        if (fds[winsize_at].revents & POLLIN) resize_pty();
        if (fds[0].revents & POLLIN) {
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            }
            break;
        }
    }
    /* What we exec next (respawner, post-exit hook) must not inherit a blocked SIGURG. */
    sigprocmask(SIG_UNBLOCK, &urg, NULL);
    /* Every process of the PID namespace is gone once its init is reaped; drain what they
     * left in the pipes (we hold the write ends too, so stop when nothing is readable). */
    for (int i = 0; i < nstreams; i++) {
        struct pollfd p = {.fd = streams[i].fd, .events = POLLIN};
        while (streams[i].open && poll(&p, 1, 0) > 0 && read_stream(&streams[i]) == 2) {
        }
        if (streams[i].len) log_line(streams[i].name, streams[i].buf, streams[i].len);
    }
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

static int recv_fd(int sock) {
    char byte;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        struct cmsghdr hdr;
        char buf[CMSG_SPACE(sizeof(int))];
    } control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                         .msg_controllen = sizeof control.buf};
    int fd = -1;
    ssize_t n;
    while ((n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {
    }
    struct cmsghdr *c = n > 0 ? CMSG_FIRSTHDR(&msg) : NULL;
    if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) memcpy(&fd, CMSG_DATA(c), sizeof fd);
    close(sock);
    return fd;
}

static int should_restart(const char *policy, int max, int count, int code, const char *stop_flag) {
    if (access(stop_flag, F_OK) == 0) return 0;
    if (strcmp(policy, "always") == 0 || strcmp(policy, "unless-stopped") == 0) return 1;
    if (strcmp(policy, "on-failure") == 0) return code != 0 && (max == 0 || count < max);
    return 0;
}

/* The container is gone for good: start the post-exit hook (a short-lived Python process that
 * releases its port maps, or removes it for --rm) detached, so nobody waits for it. Skipped
 * when an API call (stop, delete) does that work itself. */
static void post_exit(int argc, char **argv) {
    const char *code = opt(argc, argv, "--post-exit-code", NULL);
    if (code == NULL) return;
    int auto_remove = atoi(opt(argc, argv, "--auto-remove", "0"));
    if (!auto_remove && access(opt(argc, argv, "--caller-cleans", "/nonexistent"), F_OK) == 0) return;
    /* We made the container's PID namespace, whose init is dead: children we fork would land
     * there (and fork fails). Point them back at our own namespace first. */
    int ns = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
    if (ns >= 0) {
        setns(ns, CLONE_NEWPID);
        close(ns);
    }
    pid_t child = fork();
    if (child == 0) {
        setsid();
        if (fork() == 0) {
            for (int fd = 3; fd < 1024; fd++) close(fd);
            const char *python = opt(argc, argv, "--python", "python3");
            char *args[] = {(char *)python, "-I", "-c", (char *)code, (char *)opt(argc, argv, "--args", "{}"),
                            (char *)opt(argc, argv, "--project", "."), NULL};
            execv(python, args);
        }
        _exit(0);
    }
    if (child > 0)
        while (waitpid(child, NULL, 0) < 0 && errno == EINTR) {
        }
}

/* Set the fields one by one: assigning a whole struct would zero its 16 KB line buffer, and
 * those pages would then count against every idle container (issue 19). */
static void add_stream(int fd, const char *name) {
    struct stream *s = &streams[nstreams++];
    s->fd = fd;
    s->name = name;
    s->len = 0;
    s->open = 1;
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    pid_t pid = (pid_t)atoi(opt(argc, argv, "--pid", "0"));
    int tty = atoi(opt(argc, argv, "--tty", "0"));
    listen_fd = atoi(opt(argc, argv, "--listen", "-1"));
    input_fd = atoi(opt(argc, argv, "--input", "-1"));
    int count = atoi(opt(argc, argv, "--restart-count", "0"));
    const char *policy = opt(argc, argv, "--restart", "no");
    int max = atoi(opt(argc, argv, "--max-retries", "0"));
    const char *stop_flag = opt(argc, argv, "--stop-flag", "");
    stop_flag_path = stop_flag;
    log_fd = open(opt(argc, argv, "--log", "/dev/null"), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    for (int i = 0; i < MAX_CLIENTS; i++) clients[i] = -1;
    if (tty) {
        /* The container's init makes its pty inside its own devpts and sends us the master. */
        int master = recv_fd(atoi(opt(argc, argv, "--pty-socket", "-1")));
        if (master >= 0) {
            add_stream(master, "stdout");
            input_fd = master;
            pty_master = master;
            winsize_fd = atoi(opt(argc, argv, "--winsize", "-1"));
        }
    } else {
        add_stream(atoi(opt(argc, argv, "--out", "-1")), "stdout");
        add_stream(atoi(opt(argc, argv, "--err", "-1")), "stderr");
    }
    for (int i = 0; i < nstreams; i++) fcntl(streams[i].fd, F_SETFL, fcntl(streams[i].fd, F_GETFL) | O_NONBLOCK);
    fcntl(listen_fd, F_SETFL, fcntl(listen_fd, F_GETFL) | O_NONBLOCK);

    int code = monitor(pid);
    write_exit(opt(argc, argv, "--exit-file", "/dev/null"), code, count);
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (clients[i] >= 0) drop_client(i);
    if (should_restart(policy, max, count, code, stop_flag)) {
        int shift = count < 6 ? count : 6;
        long ms = 100L << shift;
        if (ms > 5000) ms = 5000;
        struct timespec delay = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&delay, NULL);
        if (access(stop_flag, F_OK) != 0) {
            char next[32];
            snprintf(next, sizeof next, "%d", count + 1);
            const char *python = opt(argc, argv, "--python", "python3");
            char *args[] = {(char *)python, "-I", "-c", (char *)opt(argc, argv, "--respawn-code", ""),
                            (char *)opt(argc, argv, "--args", "{}"), (char *)opt(argc, argv, "--project", "."), next, NULL};
            execv(python, args);
        }
    }
    unlink(opt(argc, argv, "--shim-file", "/nonexistent"));
    post_exit(argc, argv);
    return 0;
}
