#ifndef LAVA_CSHIM_H
#define LAVA_CSHIM_H

#include <stddef.h>
#include <sys/types.h>

/// What the child side of fork must do before execve. Everything here is plain data prepared by
/// the parent, so the child runs no Swift and allocates nothing.
typedef struct {
    const char *path;          /* executable, used as is (no PATH search) */
    char *const *argv;         /* NULL-terminated */
    char *const *envp;         /* NULL-terminated */
    const char *cwd;           /* NULL: inherit */
    int stdin_fd;              /* -1: /dev/null */
    int stdout_fd;             /* -1: /dev/null */
    int stderr_fd;             /* -1: /dev/null */
    int change_ids;            /* non-zero: setgroups(groups), setgid(gid), setuid(uid) */
    uid_t uid;
    gid_t gid;
    const gid_t *groups;
    size_t group_count;
    int new_process_group;     /* non-zero: setpgid(0, 0), so a signal can reach the whole tree */
} lava_spawn_attr;

/// Forks and execs. Returns 0 and the child's pid, or an errno value when fork failed or the
/// child could not exec (then *failed_step names the step, and the child has already exited:
/// the caller's reaper still collects it).
int lava_spawn(const lava_spawn_attr *attr, pid_t *pid, const char **failed_step);

/// pipe2(O_CLOEXEC); glibc declares pipe2 only under _GNU_SOURCE, which Swift's import lacks.
int lava_pipe_cloexec(int fds[2]);

/// renameat2(RENAME_EXCHANGE): swaps two paths atomically, so a release being replaced
/// never disappears from under a link to it.
int lava_rename_exchange(int dirfd, const char *a, const char *b);

/// open(directory, O_TMPFILE | O_RDWR | O_EXCL): an unnamed file that no other process can
/// reach or replace, gone when closed (O_TMPFILE is a macro Swift does not import).
int lava_open_unnamed_file(const char *directory);

/// prctl(PR_SET_CHILD_SUBREAPER): processes a daemon leaves behind become this process's
/// children, so its reaper collects them (whatever init does) and nothing turns zombie.
int lava_become_subreaper(void);

/// malloc_trim(0): glibc's malloc.h is not part of Swift's Glibc module.
int lava_malloc_trim(void);

/// CPUs in this process's affinity mask (taskset, cpusets); 0 when it cannot be read.
int lava_affinity_cpus(void);

/// For tests: behave as if the kernel refused close_range, so the fallback runs.
void lava_set_close_range_refused(int refused);

/// syslog(3) is variadic; this passes one preformatted message.
void lava_syslog(int priority, const char *message);

#endif
