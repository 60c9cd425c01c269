/*
 * mkimage-init: PID 1 of a guest booted from an image made with `mkimage --from` (installed in the
 * image as /.mkimage/init, kernel argument init=/.mkimage/init). It runs the container image's
 * entrypoint as a container runtime would, then powers the guest off.
 *
 * It must work in an image with no shell and no libc: it is a static binary (built by
 * scripts/build-guest-init.mjs with `gcc -static -Os`), it reads passwd/group files itself (static
 * glibc cannot use NSS) and it parses /.mkimage/config.json with the small JSON reader below.
 *
 *  1. mounts proc on /proc, sysfs on /sys, devtmpfs on /dev, tmpfs on /tmp, each unless something
 *     is already mounted there (an initramfs moves its /proc, /sys, /dev); a missing mount point is
 *     created, or on a read-only root (erofs) reported as a warning and skipped.
 *  2. reads /.mkimage/config.json: config.Entrypoint, Cmd, Env, WorkingDir, User (OCI image config).
 *     The kernel's words after `--` (this program's argv[1..]) replace Entrypoint + Cmd when given,
 *     like `docker run --entrypoint ARGV1 IMAGE ARGV2...`.
 *  3. forks; the child: environment = config Env (+ PATH=OCI default and HOME from /etc/passwd or
 *     "/" when absent); User: numeric uid[:gid] or names from the image's /etc/passwd and
 *     /etc/group (supplementary groups from /etc/group); chdir WorkingDir (created when missing,
 *     default /); argv[0] without '/' is looked up in the environment's PATH; execve.
 *  4. reaps every child until the entrypoint has exited, then prints ONE line on the console:
 *        mkimage-init: exit status N          (the entrypoint exited with N)
 *        mkimage-init: killed by signal N (NAME)
 *     Failures of init itself are `mkimage-init: error: ...` lines followed by an exit status line
 *     with the status a container runtime gives: 125 (bad or missing config, no command), 126
 *     (found but cannot be run, bad user, bad working directory), 127 (command not found).
 *  5. sends SIGKILL to every other process, reaps them, syncs, remounts / read-only and calls
 *     reboot(RB_POWER_OFF). It never returns (PID 1 exiting would panic the kernel).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define CONFIG_PATH "/.mkimage/config.json"
#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define MAX_CONFIG_BYTES (4 << 20)

static void say(const char *fmt, ...) {
  char buf[4096];
  va_list ap;
  int n = snprintf(buf, sizeof buf, "mkimage-init: ");
  va_start(ap, fmt);
  n += vsnprintf(buf + n, sizeof buf - n - 1, fmt, ap);
  va_end(ap);
  if (n > (int)sizeof buf - 2) n = sizeof buf - 2;
  buf[n++] = '\n';
  (void)!write(2, buf, n);
}

static void *xalloc(size_t n) {
  void *p = calloc(1, n ? n : 1);
  if (!p) {
    say("error: out of memory");
    _exit(125);
  }
  return p;
}

/* ---- string lists ------------------------------------------------------------------------- */
struct strv {
  char **v;
  size_t n, cap;
};
static void strv_push(struct strv *s, char *x) {
  if (s->n + 2 > s->cap) {
    s->cap = s->cap ? s->cap * 2 : 8;
    char **nv = xalloc(s->cap * sizeof *nv);
    if (s->n) memcpy(nv, s->v, s->n * sizeof *nv);
    free(s->v);
    s->v = nv;
  }
  s->v[s->n++] = x;
  s->v[s->n] = NULL;
}

/* ---- a JSON reader for the config's shape --------------------------------------------------- */
struct json {
  const char *p, *end;
  const char *err;
};
static void ws(struct json *j) {
  while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}
static int fail(struct json *j, const char *why) {
  if (!j->err) j->err = why;
  return -1;
}
static int hex4(struct json *j, unsigned *out) {
  unsigned v = 0;
  if (j->end - j->p < 4) return fail(j, "short \\u escape");
  for (int i = 0; i < 4; i++) {
    char c = *j->p++;
    v <<= 4;
    if (c >= '0' && c <= '9') v |= c - '0';
    else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
    else return fail(j, "bad \\u escape");
  }
  *out = v;
  return 0;
}
static size_t utf8(unsigned cp, char *o) {
  if (cp < 0x80) { o[0] = cp; return 1; }
  if (cp < 0x800) { o[0] = 0xc0 | cp >> 6; o[1] = 0x80 | (cp & 0x3f); return 2; }
  if (cp < 0x10000) { o[0] = 0xe0 | cp >> 12; o[1] = 0x80 | (cp >> 6 & 0x3f); o[2] = 0x80 | (cp & 0x3f); return 3; }
  o[0] = 0xf0 | cp >> 18; o[1] = 0x80 | (cp >> 12 & 0x3f); o[2] = 0x80 | (cp >> 6 & 0x3f); o[3] = 0x80 | (cp & 0x3f);
  return 4;
}
/* Reads a string; *out (when out is not NULL) gets a NUL-terminated copy. A \u0000 is refused:
 * no argument, variable or path can hold a NUL. */
static int jstring(struct json *j, char **out) {
  ws(j);
  if (j->p >= j->end || *j->p != '"') return fail(j, "expected a string");
  j->p++;
  char *buf = out ? xalloc(j->end - j->p + 1) : NULL;
  size_t n = 0;
  while (j->p < j->end && *j->p != '"') {
    unsigned char c = *j->p++;
    if (c < 0x20) return fail(j, "control character in a string");
    if (c != '\\') {
      if (buf) buf[n++] = c;
      continue;
    }
    if (j->p >= j->end) break;
    char e = *j->p++;
    char tmp[4];
    size_t k = 1;
    switch (e) {
      case '"': tmp[0] = '"'; break;
      case '\\': tmp[0] = '\\'; break;
      case '/': tmp[0] = '/'; break;
      case 'b': tmp[0] = '\b'; break;
      case 'f': tmp[0] = '\f'; break;
      case 'n': tmp[0] = '\n'; break;
      case 'r': tmp[0] = '\r'; break;
      case 't': tmp[0] = '\t'; break;
      case 'u': {
        unsigned cp, lo;
        if (hex4(j, &cp)) return -1;
        if (cp >= 0xd800 && cp < 0xdc00) {
          if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u') return fail(j, "lone surrogate");
          j->p += 2;
          if (hex4(j, &lo)) return -1;
          if (lo < 0xdc00 || lo > 0xdfff) return fail(j, "bad surrogate pair");
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        } else if (cp >= 0xdc00 && cp < 0xe000) {
          return fail(j, "lone surrogate");
        }
        if (cp == 0) return fail(j, "\\u0000 in a string");
        k = utf8(cp, tmp);
        break;
      }
      default: return fail(j, "bad escape");
    }
    if (buf) memcpy(buf + n, tmp, k), n += k;
  }
  if (j->p >= j->end) return fail(j, "unterminated string");
  j->p++;
  if (out) *out = buf;
  return 0;
}
static int jskip(struct json *j, int depth);
static int jlit(struct json *j, const char *lit) {
  size_t n = strlen(lit);
  if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n)) return fail(j, "bad literal");
  j->p += n;
  return 0;
}
/* Skips any value. */
static int jskip(struct json *j, int depth) {
  if (depth > 64) return fail(j, "nested too deeply");
  ws(j);
  if (j->p >= j->end) return fail(j, "unexpected end");
  char c = *j->p;
  if (c == '"') return jstring(j, NULL);
  if (c == 't') return jlit(j, "true");
  if (c == 'f') return jlit(j, "false");
  if (c == 'n') return jlit(j, "null");
  if (c == '-' || (c >= '0' && c <= '9')) {
    while (j->p < j->end && strchr("+-0123456789.eE", *j->p)) j->p++;
    return 0;
  }
  if (c == '[' || c == '{') {
    char close = c == '[' ? ']' : '}';
    j->p++;
    ws(j);
    if (j->p < j->end && *j->p == close) return j->p++, 0;
    for (;;) {
      if (c == '{') {
        if (jstring(j, NULL)) return -1;
        ws(j);
        if (j->p >= j->end || *j->p++ != ':') return fail(j, "expected ':'");
      }
      if (jskip(j, depth + 1)) return -1;
      ws(j);
      if (j->p < j->end && *j->p == ',') { j->p++; continue; }
      if (j->p < j->end && *j->p == close) return j->p++, 0;
      return fail(j, "expected ',' or a closing bracket");
    }
  }
  return fail(j, "unexpected character");
}
/* An array of strings, or null (left empty). *present says whether it was an array. */
static int jstrings(struct json *j, struct strv *out, int *present) {
  ws(j);
  if (j->p < j->end && *j->p == 'n') return jlit(j, "null");
  if (j->p >= j->end || *j->p != '[') return fail(j, "expected an array of strings");
  *present = 1;
  j->p++;
  ws(j);
  if (j->p < j->end && *j->p == ']') return j->p++, 0;
  for (;;) {
    char *s;
    if (jstring(j, &s)) return -1;
    strv_push(out, s);
    ws(j);
    if (j->p < j->end && *j->p == ',') { j->p++; continue; }
    if (j->p < j->end && *j->p == ']') return j->p++, 0;
    return fail(j, "expected ',' or ']'");
  }
}
/* Calls each(key) for every member of an object; each() reads the value. */
static int jobject(struct json *j, int (*each)(struct json *, const char *, void *), void *ctx) {
  ws(j);
  if (j->p >= j->end || *j->p != '{') return fail(j, "expected an object");
  j->p++;
  ws(j);
  if (j->p < j->end && *j->p == '}') return j->p++, 0;
  for (;;) {
    char *key;
    if (jstring(j, &key)) return -1;
    ws(j);
    if (j->p >= j->end || *j->p++ != ':') return fail(j, "expected ':'");
    int r = each(j, key, ctx);
    free(key);
    if (r) return -1;
    ws(j);
    if (j->p < j->end && *j->p == ',') { j->p++; continue; }
    if (j->p < j->end && *j->p == '}') return j->p++, 0;
    return fail(j, "expected ',' or '}'");
  }
}

struct config {
  struct strv entrypoint, cmd, env;
  int has_entrypoint, has_cmd, has_env;
  char *workdir, *user;
};
static int jopt_string(struct json *j, char **out) {
  ws(j);
  if (j->p < j->end && *j->p == 'n') return jlit(j, "null");
  return jstring(j, out);
}
static int config_member(struct json *j, const char *key, void *ctx) {
  struct config *c = ctx;
  if (!strcmp(key, "Entrypoint")) return jstrings(j, &c->entrypoint, &c->has_entrypoint);
  if (!strcmp(key, "Cmd")) return jstrings(j, &c->cmd, &c->has_cmd);
  if (!strcmp(key, "Env")) return jstrings(j, &c->env, &c->has_env);
  if (!strcmp(key, "WorkingDir")) return jopt_string(j, &c->workdir);
  if (!strcmp(key, "User")) return jopt_string(j, &c->user);
  return jskip(j, 1);
}
static int top_member(struct json *j, const char *key, void *ctx) {
  if (!strcmp(key, "config")) return jobject(j, config_member, ctx);
  return jskip(j, 1);
}

/* ---- files ---------------------------------------------------------------------------------- */
static char *read_file(const char *path, size_t max, size_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NULL;
  char *buf = xalloc(max + 1);
  size_t n = 0;
  for (;;) {
    ssize_t r = read(fd, buf + n, max - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) { int e = errno; close(fd); free(buf); errno = e; return NULL; }
    if (r == 0) break;
    n += r;
    if (n == max) { close(fd); free(buf); errno = EFBIG; return NULL; }
  }
  close(fd);
  buf[n] = 0;
  *len = n;
  return buf;
}

/* Finds the line of a passwd/group file whose field `key_field` equals `key`; returns its fields
 * (split on ':') in f[0..max-1] (pointers into a copy), the count, or 0. */
static int colon_lookup(const char *path, int key_field, const char *key, char **f, int max) {
  size_t len;
  char *buf = read_file(path, 1 << 20, &len);
  if (!buf) return 0;
  for (char *line = buf, *next; line && *line; line = next) {
    next = strchr(line, '\n');
    if (next) *next++ = 0;
    int n = 0;
    char *s = line;
    while (n < max) {
      f[n++] = s;
      s = strchr(s, ':');
      if (!s) break;
      *s++ = 0;
    }
    if (n > key_field && !strcmp(f[key_field], key)) return n; /* buf is kept: f points into it */
  }
  free(buf);
  return 0;
}
static int is_number(const char *s) {
  if (!*s) return 0;
  for (; *s; s++)
    if (*s < '0' || *s > '9') return 0;
  return 1;
}

/* ---- mounts --------------------------------------------------------------------------------- */
static void mount_one(const char *src, const char *dir, const char *type, unsigned long flags, const char *data) {
  struct stat st, root;
  if (stat(dir, &st) != 0) {
    if (mkdir(dir, 0755) != 0) {
      say("warning: %s is missing and cannot be created (%s): %s not mounted", dir, strerror(errno), type);
      return;
    }
    if (stat(dir, &st) != 0) return;
  }
  if (stat("/", &root) == 0 && st.st_dev != root.st_dev) return; /* already a mount point */
  if (mount(src, dir, type, flags, data) != 0) say("warning: mount %s on %s: %s", type, dir, strerror(errno));
}

static void console_stdio(void) {
  if (fcntl(1, F_GETFD) != -1 && fcntl(2, F_GETFD) != -1) return;
  int fd = open("/dev/console", O_RDWR | O_NOCTTY);
  if (fd < 0) return;
  for (int i = 0; i < 3; i++)
    if (fcntl(i, F_GETFD) == -1) dup2(fd, i);
  if (fd > 2) close(fd);
}

/* ---- the command ---------------------------------------------------------------------------- */
static const char *env_get(struct strv *env, const char *name) {
  size_t n = strlen(name);
  for (size_t i = 0; i < env->n; i++)
    if (!strncmp(env->v[i], name, n) && env->v[i][n] == '=') return env->v[i] + n + 1;
  return NULL;
}

/* PATH lookup as execvp does it, with the container's PATH; returns a malloc'd path or NULL with
 * errno (ENOENT: not found; EACCES: found but not executable). */
static char *find_program(const char *name, const char *path) {
  if (strchr(name, '/')) return strdup(name);
  int saw_eacces = 0;
  const char *p = path;
  for (;;) {
    const char *colon = strchr(p, ':');
    size_t dl = colon ? (size_t)(colon - p) : strlen(p);
    char *full = xalloc(dl + strlen(name) + 3);
    if (dl == 0) strcpy(full, name); /* an empty element is the working directory */
    else sprintf(full, "%.*s/%s", (int)dl, p, name);
    struct stat st;
    if (stat(full, &st) == 0 && S_ISREG(st.st_mode)) {
      if (access(full, X_OK) == 0) return full;
      saw_eacces = 1;
    }
    free(full);
    if (!colon) break;
    p = colon + 1;
  }
  errno = saw_eacces ? EACCES : ENOENT;
  return NULL;
}

static int mkdir_p(const char *path) {
  char *p = strdup(path);
  for (char *s = p + 1; *s; s++) {
    if (*s != '/') continue;
    *s = 0;
    if (mkdir(p, 0755) != 0 && errno != EEXIST) { free(p); return -1; }
    *s = '/';
  }
  int r = mkdir(p, 0755);
  free(p);
  return r != 0 && errno != EEXIST ? -1 : 0;
}

/* Resolves User as runc does; returns 0 or the status to exit with (after saying why). */
static int resolve_user(const char *user, uid_t *uid, gid_t *gid, gid_t *groups, int *ngroups, char **home) {
  *uid = 0, *gid = 0, *ngroups = 0, *home = NULL;
  if (!user || !*user) user = "0";
  char *u = strdup(user), *g = strchr(u, ':');
  if (g) *g++ = 0;
  char *f[8];
  const char *uname = NULL;
  int n = is_number(u) ? colon_lookup("/etc/passwd", 2, u, f, 8) : colon_lookup("/etc/passwd", 0, u, f, 8);
  if (n >= 4) {
    *uid = strtoul(f[2], NULL, 10);
    *gid = strtoul(f[3], NULL, 10);
    uname = f[0];
    if (n >= 6 && *f[5]) *home = f[5];
  } else if (is_number(u)) {
    *uid = strtoul(u, NULL, 10);
  } else {
    say("error: user \"%s\" not found in /etc/passwd", u);
    return 126;
  }
  if (g && *g) {
    if (is_number(g)) *gid = strtoul(g, NULL, 10);
    else if (colon_lookup("/etc/group", 0, g, f, 4) >= 3) *gid = strtoul(f[2], NULL, 10);
    else {
      say("error: group \"%s\" not found in /etc/group", g);
      return 126;
    }
  } else if (uname) {
    /* supplementary groups: every group of /etc/group that lists the user */
    size_t len;
    char *buf = read_file("/etc/group", 1 << 20, &len);
    for (char *line = buf, *next; line && *line && *ngroups < 64; line = next) {
      next = strchr(line, '\n');
      if (next) *next++ = 0;
      char *gf[4];
      int k = 0;
      char *s = line;
      while (k < 4) {
        gf[k++] = s;
        s = strchr(s, ':');
        if (!s) break;
        *s++ = 0;
      }
      if (k < 4) continue;
      for (char *m = strtok(gf[3], ","); m; m = strtok(NULL, ","))
        if (!strcmp(m, uname)) { groups[(*ngroups)++] = strtoul(gf[2], NULL, 10); break; }
    }
    free(buf);
  }
  return 0;
}

/* Runs in the child: never returns. */
static void run_child(struct strv *argv, struct strv *env, const char *workdir, const char *user) {
  uid_t uid;
  gid_t gid, groups[65];
  int ngroups;
  char *home;
  setsid();
  int st = resolve_user(user, &uid, &gid, groups, &ngroups, &home);
  if (st) _exit(st);
  if (!env_get(env, "PATH")) strv_push(env, DEFAULT_PATH);
  if (!env_get(env, "HOME")) {
    char *h = xalloc(strlen(home ? home : "/") + 6);
    sprintf(h, "HOME=%s", home ? home : "/");
    strv_push(env, h);
  }
  const char *wd = workdir && *workdir ? workdir : "/";
  if (chdir(wd) != 0 && (mkdir_p(wd) != 0 || chdir(wd) != 0)) {
    say("error: cannot use the working directory %s: %s", wd, strerror(errno));
    _exit(126);
  }
  groups[ngroups++] = gid;
  if (setgroups(ngroups, groups) != 0 || setgid(gid) != 0 || setuid(uid) != 0) {
    say("error: cannot switch to uid %u gid %u: %s", (unsigned)uid, (unsigned)gid, strerror(errno));
    _exit(126);
  }
  char *prog = find_program(argv->v[0], env_get(env, "PATH"));
  if (!prog) {
    int e = errno;
    say("error: cannot run \"%s\": %s (PATH=%s)", argv->v[0], e == ENOENT ? "not found" : strerror(e), env_get(env, "PATH"));
    _exit(e == ENOENT ? 127 : 126);
  }
  sigset_t all;
  sigemptyset(&all);
  sigprocmask(SIG_SETMASK, &all, NULL);
  execve(prog, argv->v, env->v);
  int e = errno;
  say("error: cannot run \"%s\": %s", prog, strerror(e));
  _exit(e == ENOENT ? 127 : 126);
}

static pid_t main_pid;
static void forward(int sig) {
  if (main_pid > 0) kill(main_pid, sig);
}

static void power_off(void) {
  sync();
  mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY, NULL);
  sync();
  reboot(RB_POWER_OFF);
  say("error: power-off failed: %s", strerror(errno));
  for (;;) pause();
}

static void report_and_stop(int status) {
  /* Other processes of the "container" die with its main process, as in a runtime. */
  kill(-1, SIGKILL);
  while (waitpid(-1, NULL, 0) > 0 || errno == EINTR) {
  }
  if (WIFEXITED(status)) say("exit status %d", WEXITSTATUS(status));
  else if (WIFSIGNALED(status)) say("killed by signal %d (SIG%s)", WTERMSIG(status), sigabbrev_np(WTERMSIG(status)) ? sigabbrev_np(WTERMSIG(status)) : "?");
  else say("exit status 125");
  power_off();
}

int main(int argc, char **argv) {
  if (getpid() != 1) {
    say("error: must run as PID 1 (the kernel's init=), not as PID %d", (int)getpid());
    return 125;
  }
  umask(022);
  /* ctrl-alt-del sends SIGINT to PID 1 instead of rebooting at once */
  reboot(RB_DISABLE_CAD);
  mount_one("devtmpfs", "/dev", "devtmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755");
  console_stdio();
  mount_one("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  mount_one("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  mount_one("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");

  struct config c = {0};
  size_t len;
  char *text = read_file(CONFIG_PATH, MAX_CONFIG_BYTES, &len);
  if (!text) {
    say("error: cannot read %s: %s", CONFIG_PATH, strerror(errno));
    report_and_stop(125 << 8);
  }
  struct json j = {text, text + len, NULL};
  if (jobject(&j, top_member, &c) != 0) {
    say("error: %s: %s at byte %ld", CONFIG_PATH, j.err ? j.err : "invalid JSON", (long)(j.p - text));
    report_and_stop(125 << 8);
  }

  struct strv cmd = {0};
  if (argc > 1) {
    for (int i = 1; i < argc; i++) strv_push(&cmd, argv[i]);
  } else {
    for (size_t i = 0; i < c.entrypoint.n; i++) strv_push(&cmd, c.entrypoint.v[i]);
    for (size_t i = 0; i < c.cmd.n; i++) strv_push(&cmd, c.cmd.v[i]);
  }
  if (cmd.n == 0) {
    say("error: %s has no Entrypoint or Cmd, and the kernel command line gave none after --", CONFIG_PATH);
    report_and_stop(125 << 8);
  }
  struct strv env = {0};
  for (size_t i = 0; i < c.env.n; i++) strv_push(&env, c.env.v[i]);

  struct sigaction sa = {0};
  sa.sa_handler = forward;
  sigemptyset(&sa.sa_mask);
  int fwd[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
  for (size_t i = 0; i < sizeof fwd / sizeof *fwd; i++) sigaction(fwd[i], &sa, NULL);

  pid_t pid = fork();
  if (pid < 0) {
    say("error: fork: %s", strerror(errno));
    report_and_stop(125 << 8);
  }
  if (pid == 0) run_child(&cmd, &env, c.workdir, c.user);
  main_pid = pid;
  for (;;) {
    int status;
    pid_t r = waitpid(-1, &status, 0);
    if (r == pid) report_and_stop(status);
    if (r < 0 && errno != EINTR) {
      say("error: wait: %s", strerror(errno));
      report_and_stop(125 << 8);
    }
  }
}
