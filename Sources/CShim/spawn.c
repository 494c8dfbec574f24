#define _GNU_SOURCE
#include "cshim.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <malloc.h>
#include <sched.h>
#include <sys/prctl.h>
#include <syslog.h>
#include <sys/resource.h>

extern int lava_close_range_refused;

/* Child side, async-signal-safe: FD_CLOEXEC on every descriptor from `first` up to the limit. */
static void child_mark_cloexec_from(int first) {
    struct rlimit limit;
    long last = 65536;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < (1 << 20))
        last = (long)limit.rlim_cur;
    for (long fd = first; fd < last; fd++) {
        int flags = fcntl((int)fd, F_GETFD);
        if (flags >= 0 && !(flags & FD_CLOEXEC)) fcntl((int)fd, F_SETFD, flags | FD_CLOEXEC);
    }
}
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* Steps reported to the parent when the child fails; indexes into step_names. */
enum { STEP_DUP = 0, STEP_SETGROUPS, STEP_SETGID, STEP_SETUID, STEP_CHDIR, STEP_EXEC, STEP_SETPGID };
static const char *const step_names[] = {
    "dup2", "setgroups", "setgid", "setuid", "chdir", "execve", "setpgid",
};

struct child_report { int step; int error; };

static void child_fail(int report_fd, int step) {
    struct child_report report = { step, errno };
    ssize_t ignored = write(report_fd, &report, sizeof report);
    (void)ignored;
    _exit(127);
}

/* Moves fd to target, or opens /dev/null there when fd is -1. */
static int child_place_fd(int fd, int target) {
    if (fd < 0) {
        int null_fd = open("/dev/null", O_RDWR);
        if (null_fd < 0) return -1;
        if (null_fd != target) {
            if (dup2(null_fd, target) < 0) return -1;
            close(null_fd);
        }
        return 0;
    }
    if (fd == target) {
        /* Clear close-on-exec, which dup2 would otherwise have done for us. */
        int flags = fcntl(fd, F_GETFD);
        return flags < 0 ? -1 : fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
    }
    return dup2(fd, target) < 0 ? -1 : 0;
}

int lava_spawn(const lava_spawn_attr *attr, pid_t *pid_out, const char **failed_step) {
    int report[2];
    if (pipe2(report, O_CLOEXEC) < 0) { *failed_step = "pipe2"; return errno; }

    /* Block every signal across fork so no handler runs in the child before it resets them. */
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);

    pid_t pid = fork();
    if (pid == 0) {
        close(report[0]);
        /* Default dispositions and an empty mask: exec keeps ignored signals and the mask. */
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        for (int sig = 1; sig < NSIG; sig++) sigaction(sig, &dfl, NULL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);

        if (attr->new_process_group && setpgid(0, 0) < 0) child_fail(report[1], STEP_SETPGID);

        /* Move the wanted fds above the standard range first, so placing one cannot clobber another. */
        int fds[3] = { attr->stdin_fd, attr->stdout_fd, attr->stderr_fd };
        for (int i = 0; i < 3; i++) {
            if (fds[i] >= 0 && fds[i] <= 2) {
                fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
                if (fds[i] < 0) child_fail(report[1], STEP_DUP);
            }
        }
        for (int i = 0; i < 3; i++)
            if (child_place_fd(fds[i], i) < 0) child_fail(report[1], STEP_DUP);
        /* Nothing else of the parent's crosses exec; close_range has no glibc wrapper before 2.34.
           Kernels before 5.11 (or a seccomp filter) refuse it: then mark each descriptor. */
        if (lava_close_range_refused || syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
            child_mark_cloexec_from(3);

        /* Order matters: groups and gid need privilege that setuid gives up. */
        if (attr->change_ids) {
            if (setgroups(attr->group_count, attr->groups) < 0) child_fail(report[1], STEP_SETGROUPS);
            if (setgid(attr->gid) < 0) child_fail(report[1], STEP_SETGID);
            if (setuid(attr->uid) < 0) child_fail(report[1], STEP_SETUID);
        }
        if (attr->cwd && chdir(attr->cwd) < 0) child_fail(report[1], STEP_CHDIR);
        execve(attr->path, attr->argv, attr->envp);
        child_fail(report[1], STEP_EXEC);
    }

    int fork_errno = errno;
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    close(report[1]);
    if (pid < 0) {
        close(report[0]);
        *failed_step = "fork";
        return fork_errno;
    }
    *pid_out = pid;

    /* EOF means exec succeeded (the pipe was close-on-exec); a report means it did not. */
    struct child_report child;
    ssize_t n;
    do { n = read(report[0], &child, sizeof child); } while (n < 0 && errno == EINTR);
    close(report[0]);
    if (n == (ssize_t)sizeof child) {
        *failed_step = step_names[child.step];
        return child.error;
    }
    return 0;
}

void lava_syslog(int priority, const char *message) {
    syslog(priority, "%s", message);
}

int lava_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

int lava_rename_exchange(int dirfd, const char *a, const char *b) {
    return renameat2(dirfd, a, dirfd, b, RENAME_EXCHANGE);
}

int lava_open_unnamed_file(const char *directory) {
    return open(directory, O_TMPFILE | O_RDWR | O_EXCL | O_CLOEXEC, 0600);
}

int lava_close_range_refused = 0;

void lava_set_close_range_refused(int refused) {
    lava_close_range_refused = refused;
}

int lava_become_subreaper(void) {
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}

int lava_affinity_cpus(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 0;
    return CPU_COUNT(&set);
}

int lava_malloc_trim(void) {
    return malloc_trim(0);
}
