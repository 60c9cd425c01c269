/*
 * rusage OUT PROGRAM [ARGS...]: runs PROGRAM and writes one line to the file OUT:
 *
 *   wall_ns user_us sys_us maxrss_kib exit_status
 *
 * from wait4(2): user and system time include every descendant the program waited for (mkimage's
 * mkfs, losetup ...), and maxrss is the largest resident set among the program and those
 * descendants (Linux folds the children's maxrss into the rusage wait4 returns). The wall time
 * runs from just before posix_spawn to just after wait4, so the runner's own cost is not in it.
 * GNU time gives the same numbers rounded to 10 ms; bench/run.js falls back to it without a C
 * compiler.
 */
#include <spawn.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: rusage OUT PROGRAM [ARGS...]\n");
    return 2;
  }
  struct timespec a, b;
  struct rusage ru;
  pid_t pid;
  int status;
  clock_gettime(CLOCK_MONOTONIC, &a);
  int e = posix_spawnp(&pid, argv[2], NULL, NULL, argv + 2, environ);
  if (e != 0) {
    fprintf(stderr, "rusage: cannot run %s: error %d\n", argv[2], e);
    return 127;
  }
  if (wait4(pid, &status, 0, &ru) < 0) {
    perror("rusage: wait4");
    return 127;
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  long long wall = (long long)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
  long long user = (long long)ru.ru_utime.tv_sec * 1000000LL + ru.ru_utime.tv_usec;
  long long sys = (long long)ru.ru_stime.tv_sec * 1000000LL + ru.ru_stime.tv_usec;
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  FILE *out = fopen(argv[1], "w");
  if (!out) {
    perror("rusage: output");
    return 127;
  }
  fprintf(out, "%lld %lld %lld %ld %d\n", wall, user, sys, ru.ru_maxrss, code);
  fclose(out);
  return code;
}
